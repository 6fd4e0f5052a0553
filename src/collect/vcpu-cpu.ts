// vcpu-cpu: per-thread CPU time of the QEMU process, keyed by vCPU index, from
// /proc/PID/task/TID/schedstat (ns on CPU, ns waiting on a run queue, timeslices) and …/stat (guest
// time, last CPU). Samples at a fixed interval into vcpu-cpu.csv; per step it writes CPU %, run-queue
// wait %, guest %, timeslices and migrations per vCPU, the emulator threads together, and the whole
// QEMU process (pidusage on a real host).
import { VCPU_SAMPLES } from '../results/layout.js';
import { VcpuSampleWriter, type VcpuCounters } from '../results/records.js';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { parseSchedstat, parseTaskStatCpu } from '../formats/procfs.js';
import type { ThreadMap } from '../model/threads.js';
import type { OpenFile } from '../backend/backend.js';
import type { Collector, CollectorContext, CollectorKind } from './collector.js';

const TICK_NS = 1e7; // USER_HZ = 100
/** How a read fails for a thread that exited (unplugged vCPU, finished worker) between listing and reading. */
const THREAD_GONE = new Set(['ENOENT', 'ESRCH']);

/** One thread read at one moment: what a row of vcpu-cpu.csv holds of it. */
type Sample = VcpuCounters;

/** A thread to read: "vcpuN" or "emulator", and its tid. */
interface Target {
  entity: string;
  tid: number;
}

/** Every thread read at one moment, `t` (ms on the backend's clock), by tid. */
interface Snapshot {
  t: number;
  threads: Map<number, Sample & Target>;
}

/** Where a thread last ran, and how often it has changed CPU since the window began. */
interface Moves {
  last: number;
  moves: number;
}

interface Window {
  start: Snapshot;
  /** By thread id. */
  cpus: Map<number, Moves>;
}

/** Rows go to vcpu-cpu.csv in batches of this many ticks (and at every step's end and at stop): one write a second at 10 Hz. */
const TICKS_PER_WRITE = 10;

export class VcpuCpuCollector implements Collector {
  readonly name = 'vcpu-cpu';
  private ctx!: CollectorContext;
  private stopTimer: (() => void) | undefined;
  /** The first sample that failed for a reason other than a thread going away: it fails the step. */
  private failure: Error | undefined;
  private window: Window | undefined;
  /** vcpu-cpu.csv, one row per thread and sample: held open, written a batch at a time. */
  private raw: WriteStream | undefined;
  private rows: VcpuSampleWriter | undefined;
  private readonly files = new Map<number, { schedstat: OpenFile; stat: OpenFile }>();
  private ticks = 0;
  /** The threads to read, derived from the thread map it was made from (a new map replaces the old on hot-plug). */
  private targets: { from: ThreadMap; list: Target[] } | undefined;
  private readonly scratch: Sample = { runNs: 0, waitNs: 0, slices: 0, guestNs: 0, lastCpu: 0 };
  /** Where each file's bytes are read to (a thread's stat is about 300 bytes). */
  private readonly bytes = new Uint8Array(4096);

  constructor(private readonly intervalMs: number) {}

  async start(ctx: CollectorContext): Promise<void> {
    this.ctx = ctx;
    this.raw = createWriteStream(join(ctx.dir, VCPU_SAMPLES));
    this.raw.on('error', (e) => (this.failure ??= e));
    const raw = this.raw;
    this.rows = new VcpuSampleWriter((bytes) => raw.write(bytes));
    this.stopTimer = ctx.clock.every(this.intervalMs, () => {
      try {
        this.tick();
      } catch (e) {
        this.failure ??= e instanceof Error ? e : new Error(String(e));
      }
    });
  }

  /** A sampling failure since the last check ends the step with it: no rows from a broken host. */
  private check(): void {
    const e = this.failure;
    this.failure = undefined;
    if (e) throw new Error(`sampling failed: ${e.message}`);
  }

  async stepStart(): Promise<void> {
    this.check();
    const now = this.snapshot();
    this.window = { start: now, cpus: new Map([...now.threads].map(([tid, s]) => [tid, { last: s.lastCpu, moves: 0 }])) };
  }

  async stepEnd(step: string): Promise<void> {
    this.flush();
    const w = this.window;
    this.window = undefined;
    this.check();
    if (!w) return;
    const end = this.snapshot();
    // Every entity's window is the time between the two snapshots: one clock reading each.
    const dtNs = (end.t - w.start.t) * 1e6;
    // Deltas per thread, summed per entity over the threads alive at both ends of the window.
    const per = new Map<string, { dtNs: number; run: number; wait: number; guest: number; slices: number; migrations: number; lastCpu: number }>();
    for (const [tid, last] of end.threads) {
      const first = w.start.threads.get(tid);
      if (first?.entity !== last.entity) continue; // appeared mid-step (hot-plug): no baseline for this window
      const entity = last.entity;
      const seen = w.cpus.get(tid);
      const agg = per.get(entity) ?? { dtNs, run: 0, wait: 0, guest: 0, slices: 0, migrations: seen ? seen.moves + (seen.last !== last.lastCpu ? 1 : 0) : 0, lastCpu: last.lastCpu };
      agg.run += last.runNs - first.runNs;
      agg.wait += last.waitNs - first.waitNs;
      agg.guest += last.guestNs - first.guestNs;
      agg.slices += last.slices - first.slices;
      per.set(entity, agg);
    }
    const e = this.ctx.emit;
    for (const [entity, a] of per) {
      if (a.dtNs <= 0) continue;
      const pct = (ns: number) => (ns / a.dtNs) * 100;
      e({ step, entity, metric: 'vcpu.cpu_pct', value: pct(a.run), unit: '%' });
      e({ step, entity, metric: 'vcpu.wait_pct', value: pct(a.wait), unit: '%' });
      e({ step, entity, metric: 'vcpu.guest_pct', value: pct(a.guest), unit: '%' });
      e({ step, entity, metric: 'vcpu.timeslices', value: a.slices, unit: 'count' });
      if (entity !== 'emulator') {
        e({ step, entity, metric: 'vcpu.migrations', value: a.migrations, unit: 'count' });
        e({ step, entity, metric: 'vcpu.last_cpu', value: a.lastCpu, unit: 'cpu' });
      }
    }
    try {
      const usage = await this.ctx.host.processUsage(this.ctx.vm.pid);
      e({ step, entity: 'qemu', metric: 'qemu.cpu_pct', value: usage.cpuPct, unit: '%' });
      e({ step, entity: 'qemu', metric: 'qemu.rss_bytes', value: usage.rssBytes, unit: 'bytes' });
    } catch {
      // the process is gone; the runner reports that
    }
  }

  async stop(): Promise<void> {
    this.stopTimer?.();
    this.flush();
    for (const tid of [...this.files.keys()]) this.close(tid);
    const raw = this.raw;
    this.raw = undefined;
    this.rows = undefined;
    if (raw) await new Promise<void>((resolve) => raw.end(resolve));
    this.check();
  }

  /** One sample of every thread, a row each for vcpu-cpu.csv; where each thread ran feeds the window's migrations. */
  private tick(): void {
    const rows = this.rows!;
    rows.instant(this.ctx.clock.now() / 1000);
    const cpus = this.window?.cpus;
    this.read((entity, tid, s) => {
      const m = cpus?.get(tid);
      if (!m) cpus?.set(tid, { last: s.lastCpu, moves: 0 });
      else if (m.last !== s.lastCpu) {
        m.moves++;
        m.last = s.lastCpu;
      }
      rows.row(entity, tid, s);
    });
    if (++this.ticks % TICKS_PER_WRITE === 0) this.flush();
  }

  /** The rows not yet in vcpu-cpu.csv, written now. */
  private flush(): void {
    this.rows?.flush();
  }

  /** Read every thread now. */
  private snapshot(): Snapshot {
    const t = this.ctx.clock.now();
    const threads = new Map<number, Sample & Target>();
    this.read((entity, tid, s) => threads.set(tid, { entity, tid, ...s }));
    return { t, threads };
  }

  /**
   * Read every thread of the current thread map, once each, handing each sample to `take` (one
   * object, refilled for each thread: `take` copies what it keeps). A thread that exited between
   * listing and reading (unplugged vCPU, finished worker) is skipped and its files closed; any other
   * failure is a broken host and throws.
   */
  private read(take: (entity: string, tid: number, s: Readonly<Sample>) => void): void {
    const map = this.ctx.threads();
    if (this.targets?.from !== map) {
      this.targets = { from: map, list: [...map.vcpus.map((v) => ({ entity: `vcpu${v.index}`, tid: v.tid })), ...map.others.map((tid) => ({ entity: 'emulator', tid }))] };
    }
    const s = this.scratch;
    for (const { entity, tid } of this.targets.list) {
      try {
        const files = this.files.get(tid) ?? this.open(map.pid, tid);
        const sched = parseSchedstat(this.bytes, files.schedstat.read(this.bytes));
        const st = parseTaskStatCpu(this.bytes, files.stat.read(this.bytes));
        s.runNs = sched.runNs;
        s.waitNs = sched.waitNs;
        s.slices = sched.timeslices;
        s.guestNs = st.guestTimeTicks * TICK_NS;
        s.lastCpu = st.processor;
      } catch (e) {
        if (!THREAD_GONE.has((e as NodeJS.ErrnoException).code ?? '')) throw e; // a broken host, not a gone thread
        this.close(tid);
        continue;
      }
      take(entity, tid, s);
    }
  }

  /** Files stay open between samples: one pread each instead of open/read/close (see test/bench). */
  private open(pid: number, tid: number): { schedstat: OpenFile; stat: OpenFile } {
    const base = `/proc/${pid}/task/${tid}`;
    const schedstat = this.ctx.host.openFile(`${base}/schedstat`);
    let stat: OpenFile;
    try {
      stat = this.ctx.host.openFile(`${base}/stat`);
    } catch (e) {
      schedstat.close();
      throw e;
    }
    const files = { schedstat, stat };
    this.files.set(tid, files);
    return files;
  }

  private close(tid: number): void {
    const files = this.files.get(tid);
    files?.schedstat.close();
    files?.stat.close();
    this.files.delete(tid);
  }
}

export const vcpuCpu: CollectorKind<{ interval: number }> = {
  name: 'vcpu-cpu',
  unmet: () => undefined,
  create: (o) => new VcpuCpuCollector(o.interval),
};
