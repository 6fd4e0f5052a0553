// tracefs: the host kernel's own account of what the VM's threads did — why each vCPU exited, when it
// blocked and woke, who preempted it — recorded in a private tracefs instance so the global tracing
// setup is never touched.
//
// Lifecycle. start(): mkdir instances/kvmlab-<pid>-<random>, tracing_on 0, buffer_size_kb, no-overwrite
// mode (options/overwrite 0: when the buffer is full new events are dropped and counted, so the steps
// already recorded stay complete), trace_clock mono (one clock across CPUs), the configured events
// (globs like kvm:* expanded from events/<sys>/) each with a filter for the VM's threads, tracing_on 1.
// Every stepStart/stepEnd writes `kvmlab step=<name> phase=start|end` into the instance's trace_marker
// and reads per_cpu/cpuN/stats (loss counters and the clock's "now ts"). stop(): tracing_on 0, read
// per_cpu/cpuN/trace one CPU at a time (each kept as trace-cpuN.txt; at most 64 Mi characters of text
// held between the passes, the rest read back), attribute events to steps by the markers (or, when a
// marker itself was lost, by the stats' now ts read at that step boundary), emit the per-step rows,
// then disable every event and rmdir the instance — also after a failure, and also when start() fails
// half-way.
//
// What each event counts for, and the rows per step, are in tracefs-attribution.ts.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { instanceName, ownerOf } from '../host/journal.js';
import type { HostFacts } from '../model/host-facts.js';
import { parseCpuList } from '../model/cpulist.js';
import type { ThreadMap } from '../model/threads.js';
import { parseTaskStatus } from '../formats/procfs.js';
import { countTraceEvents, scanMarkers, type TraceMarker } from '../formats/tracefs/trace-stream.js';
import { parsePerCpuStats, type PerCpuStats } from '../formats/tracefs/per-cpu-stats.js';
import { parseEventFormat, type EventFormat } from '../formats/tracefs/event-format.js';
import { tracefsInstances, type Collector, type CollectorContext, type CollectorKind } from './collector.js';
import { eventFilter, markerText, stepRows, stepWindows, threadInfo, TraceAggregator, type StepFacts } from './tracefs-attribution.js';

export interface TracefsOptions {
  events: string[];
  buffer_kb: number;
}

interface Boundary {
  stats: Map<number, PerCpuStats>;
  /** Latest "now ts" among CPUs. */
  now: number | undefined;
}

/** Trace text kept in memory between the two passes, at most: past it, files are read back. */
const KEEP_TEXT_CHARS = 64 * 1024 * 1024;

export class TracefsCollector implements Collector {
  readonly name = 'tracefs';
  private ctx!: CollectorContext;
  private root = '';
  private inst = '';
  private cpus: number[] = [];
  /** "sys:event" → format. */
  private readonly formats = new Map<string, EventFormat>();
  private readonly filters = new Map<string, string | undefined>();
  private readonly maps: ThreadMap[] = [];
  private tidsKey = '';
  private pinned: number[] = [];
  private readonly steps: { name: string; facts: StepFacts; start?: number; end?: number }[] = [];
  private current: { name: string; facts: StepFacts; start?: number; end?: number } | undefined;
  private clock = 'local';
  private readonly notes: string[] = [];
  private stopped = false;
  private created = false;
  private truncated: string | undefined;

  constructor(private readonly opts: TracefsOptions) {}

  async start(ctx: CollectorContext): Promise<void> {
    this.ctx = ctx;
    const h = ctx.host;
    try {
      this.root = await tracefsInstances(ctx);
      await this.removeStale();
      this.inst = `${this.root}/instances/${instanceName()}`;
      await h.mkdir(this.inst);
      this.created = true;
      await h.writeFile(`${this.inst}/tracing_on`, '0');
      await h.writeFile(`${this.inst}/buffer_size_kb`, String(this.opts.buffer_kb));
      await h.writeFile(`${this.inst}/options/overwrite`, '0').catch((e: unknown) => this.notes.push(`options/overwrite stays 1 (${String(e)}): loss shows as overrun, oldest events first`));
      for (const clock of ['mono', 'global']) {
        const ok = await h.writeFile(`${this.inst}/trace_clock`, clock).then(() => true, () => false);
        if (ok) {
          this.clock = clock;
          break;
        }
      }
      if (this.clock === 'local') this.notes.push('trace_clock stays local: per-CPU clocks, step bounds may be off by the CPUs\' skew');
      this.cpus = (await h.readdir(`${this.inst}/per_cpu`)).map((d) => /^cpu(\d+)$/.exec(d)).filter((m): m is RegExpExecArray => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b);
      await this.expandEvents();
      await this.observeThreads(true);
      for (const key of this.formats.keys()) {
        const [sys, ev] = key.split(':') as [string, string];
        await h.writeFile(`${this.inst}/events/${sys}/${ev}/enable`, '1');
      }
      await h.writeFile(`${this.inst}/tracing_on`, '1');
    } catch (e) {
      await this.cleanup().catch(() => undefined);
      throw new Error(`tracefs: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Instances a crashed kvmlab left behind (its pid is gone). */
  private async removeStale(): Promise<void> {
    const h = this.ctx.host;
    const names = await h.readdir(`${this.root}/instances`).catch(() => [] as string[]);
    for (const n of names) {
      const owner = ownerOf(n, 'instance');
      if (owner === undefined || owner === process.pid) continue;
      if (await h.exists(`/proc/${owner}`)) continue;
      const dir = `${this.root}/instances/${n}`;
      await h.writeFile(`${dir}/tracing_on`, '0').catch(() => undefined);
      await h.writeFile(`${dir}/events/enable`, '0').catch(() => undefined);
      await h.rmdir(dir).then(() => this.notes.push(`removed stale instance ${n} (pid ${owner} is gone)`), () => undefined);
    }
  }

  private async expandEvents(): Promise<void> {
    const h = this.ctx.host;
    for (const spec of this.opts.events) {
      const [sys, pattern] = spec.split(':') as [string, string];
      let names: string[];
      if (pattern.includes('*')) {
        const entries = await h.readdir(`${this.inst}/events/${sys}`).catch(() => {
          throw new Error(`tracefs has no event system "${sys}" (see ${this.root}/available_events)`);
        });
        const re = new RegExp(`^${pattern.replace(/\*/g, '.*')}$`);
        names = entries.filter((n) => n !== 'enable' && n !== 'filter' && re.test(n));
        if (names.length === 0) throw new Error(`no tracefs event matches ${spec}`);
      } else names = [pattern];
      for (const ev of names) {
        const text = await h.readFile(`${this.inst}/events/${sys}/${ev}/format`).catch(() => {
          throw new Error(`tracefs event ${sys}:${ev} does not exist on this host (see ${this.root}/available_events)`);
        });
        this.formats.set(`${sys}:${ev}`, parseEventFormat(text));
      }
    }
  }

  /** Record the current thread map and pinning; rewrite the filters when the thread set changed. */
  private async observeThreads(first = false): Promise<void> {
    const map = this.ctx.threads();
    this.maps.push(map);
    const h = this.ctx.host;
    const online = await h.readFile('/sys/devices/system/cpu/online').then((t) => parseCpuList(t.trim()), () => undefined);
    const pinned = new Set<number>();
    for (const v of map.vcpus) {
      const allowed = await h.readFile(`/proc/${map.pid}/task/${v.tid}/status`).then((t) => parseTaskStatus(t).cpusAllowedList, () => undefined);
      if (allowed && online && allowed.length < online.length) for (const c of allowed) pinned.add(c);
    }
    this.pinned = [...pinned].sort((a, b) => a - b);
    const tids = [...threadInfo(this.maps).entity.keys()].sort((a, b) => a - b);
    const key = `${tids.join(',')}|${this.pinned.join(',')}`;
    if (!first && key === this.tidsKey) return;
    this.tidsKey = key;
    for (const [sysEvent, fmt] of this.formats) {
      const [sys, ev] = sysEvent.split(':') as [string, string];
      const path = `${this.inst}/events/${sys}/${ev}/filter`;
      let filter = eventFilter(sysEvent, fmt, tids, this.pinned);
      if (filter !== undefined) {
        const ok = await h.writeFile(path, filter).then(() => true, () => false);
        if (!ok) {
          // an older kernel without the CPU field in filters: keep the thread terms
          filter = eventFilter(sysEvent, fmt, tids, []);
          const ok2 = filter !== undefined && (await h.writeFile(path, filter).then(() => true, () => false));
          if (!ok2) {
            filter = undefined;
            await h.writeFile(path, '0').catch(() => undefined);
          }
        }
      } else await h.writeFile(path, '0').catch(() => undefined);
      if (filter === undefined && !this.filters.has(sysEvent)) this.notes.push(`${sysEvent}: recorded unfiltered (no kernel filter fits); filtered while parsing`);
      this.filters.set(sysEvent, filter);
    }
  }

  private async boundary(): Promise<Boundary> {
    const stats = new Map<number, PerCpuStats>();
    let now: number | undefined;
    for (const cpu of this.cpus) {
      try {
        const s = parsePerCpuStats(await this.ctx.host.readFile(`${this.inst}/per_cpu/cpu${cpu}/stats`));
        stats.set(cpu, s);
        now = now === undefined ? s.nowTs : Math.max(now, s.nowTs);
      } catch {
        // a CPU went offline: no counters for it at this boundary
      }
    }
    return { stats, now };
  }

  private static lost(s: PerCpuStats): number {
    return s.overrun + s.commitOverrun + s.droppedEvents;
  }

  async stepStart(step: string): Promise<void> {
    await this.observeThreads();
    const b = await this.boundary();
    const map = this.ctx.threads();
    const entities = [...new Set([...map.vcpus.map((v) => `vcpu${v.index}`), ...(map.others.length ? ['emulator'] : [])])];
    const facts: StepFacts = {
      vcpus: map.vcpus.map((v) => `vcpu${v.index}`),
      entities,
      pinned: [...this.pinned],
      lossStart: new Map([...b.stats].map(([c, s]) => [c, TracefsCollector.lost(s)])),
      lossEnd: new Map(),
    };
    this.current = { name: step, facts, start: b.now };
    await this.ctx.host.writeFile(`${this.inst}/trace_marker`, markerText(step, 'start'));
  }

  async stepEnd(step: string): Promise<void> {
    const cur = this.current;
    this.current = undefined;
    if (!cur || cur.name !== step) return;
    await this.ctx.host.writeFile(`${this.inst}/trace_marker`, markerText(step, 'end')).catch(() => undefined);
    const b = await this.boundary();
    cur.end = b.now;
    cur.facts.lossEnd = new Map([...b.stats].map(([c, s]) => [c, TracefsCollector.lost(s)]));
    this.steps.push(cur);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      await this.ctx.host.writeFile(`${this.inst}/tracing_on`, '0');
      await this.noteTruncation();
      await this.analyse();
    } finally {
      await this.cleanup();
    }
  }

  caveat(): string | undefined {
    return this.truncated;
  }

  /**
   * The trace is bounded by its buffer (buffer_kb per CPU, no overwrite): a CPU whose buffer filled
   * kept its first events and dropped the rest. Said once, in words, with the counts, beside the
   * per-step trace.events_lost rows.
   */
  private async noteTruncation(): Promise<void> {
    const cut: string[] = [];
    for (const [cpu, s] of (await this.boundary()).stats) {
      const lost = TracefsCollector.lost(s);
      if (lost > 0) cut.push(`CPU ${cpu} kept ${s.entries.toLocaleString('en-US')} events and lost ${lost.toLocaleString('en-US')}`);
    }
    if (!cut.length) return;
    this.truncated = `trace truncated at the ${this.opts.buffer_kb} KiB per-CPU buffer: ${cut.join('; ')} (counts from then on are lower bounds; the kvm-exits collector counts exits without a buffer)`;
    this.notes.push(this.truncated);
  }

  private async analyse(): Promise<void> {
    const h = this.ctx.host;
    // Pass 1: each CPU's buffer to a raw file, collecting the markers (they are on any CPU). A file is
    // written while the next CPU is read; its text is kept for pass 2 while all kept stay under
    // KEEP_TEXT_CHARS, and read back from the file past that.
    const markers: TraceMarker[] = [];
    let lostNotices = 0;
    const files: { file: string; written: Promise<void>; text?: string }[] = [];
    let kept = 0;
    for (const cpu of this.cpus) {
      const text = await h.readFile(`${this.inst}/per_cpu/cpu${cpu}/trace`).catch(() => undefined);
      if (text === undefined) continue;
      const file = join(this.ctx.dir, `trace-cpu${cpu}.txt`);
      const written = writeFile(file, text);
      written.catch(() => undefined); // awaited below: a failed write fails the analysis there
      const keep = kept + text.length <= KEEP_TEXT_CHARS;
      if (keep) kept += text.length;
      files.push({ file, written, text: keep ? text : undefined });
      const scan = scanMarkers(text);
      markers.push(...scan.markers);
      lostNotices += scan.lostEvents;
    }
    const fallback = new Map(this.steps.map((s) => [s.name, { start: s.start, end: s.end }]));
    const windows = stepWindows(this.steps.map((s) => s.name), markers, fallback);
    const byName = new Map<string, EventFormat>();
    for (const [key, fmt] of this.formats) byName.set(key.split(':')[1]!, fmt);
    const agg = new TraceAggregator(windows, byName, threadInfo(this.maps));
    // Pass 2: every event attributed to its step, a CPU's text at a time. A text is split in memory:
    // streaming a file back in chunks cost twice the CPU for no less memory than pass 1 holds.
    let malformed = 0;
    for (const f of files) {
      await f.written;
      const text = f.text ?? (await readFile(f.file, 'utf8'));
      f.text = undefined;
      malformed += (await countTraceEvents(text, { onEvent: (ev) => agg.event(ev) })).malformed;
    }
    const enabled = new Set(this.formats.keys());
    const winIndex = new Map(windows.map((w, i) => [w.step, i]));
    for (const s of this.steps) {
      const i = winIndex.get(s.name);
      if (i === undefined) {
        this.notes.push(`step ${s.name}: no window (its markers and clock readings are missing); no rows`);
        continue;
      }
      for (const r of stepRows(s.name, agg.perStep[i], s.facts, enabled)) this.ctx.emit(r);
    }
    await writeFile(
      join(this.ctx.dir, 'tracefs.json'),
      `${JSON.stringify({ instance: this.inst, clock: this.clock, events: [...this.formats.keys()], filters: Object.fromEntries(this.filters), windows, eventsOutsideSteps: agg.outside, lostNoticesInText: lostNotices, malformedLines: malformed, notes: this.notes }, null, 2)}\n`,
    );
  }

  /** Disable every event of the instance, then remove it. Safe to call twice. */
  private async cleanup(): Promise<void> {
    if (!this.created) return;
    const h = this.ctx.host;
    await h.writeFile(`${this.inst}/tracing_on`, '0').catch(() => undefined);
    await h.writeFile(`${this.inst}/events/enable`, '0').catch(() => undefined);
    let last: unknown;
    for (let i = 0; i < 5; i++) {
      try {
        await h.rmdir(this.inst);
        this.created = false;
        return;
      } catch (e) {
        last = e;
        if ((e as { code?: string }).code === 'ENOENT') {
          this.created = false;
          return;
        }
        await this.ctx.clock.sleep(200);
      }
    }
    throw new Error(`tracefs: cannot remove ${this.inst}: ${String(last)}`);
  }
}

export const tracefs: CollectorKind<TracefsOptions> = {
  name: 'tracefs',
  unmet: (facts: HostFacts) => {
    if (!facts.tracefs.path) return 'tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)';
    if (!facts.root) return 'tracefs instances need root';
    if (!facts.tracefs.writable) return `tracefs at ${facts.tracefs.path} is not writable`;
    return undefined;
  },
  create: (o) => new TracefsCollector(o),
};
