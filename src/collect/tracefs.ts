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
// per_cpu/cpuN/trace one CPU at a time (bounded memory; each kept as trace-cpuN.txt), attribute events
// to steps by the markers (or, when a marker itself was lost, by the stats' now ts read at that step
// boundary), emit the per-step rows, then disable every event and rmdir the instance — also after a
// failure, and also when start() fails half-way.
//
// Filters (kernel-side, to keep the buffer for the VM's events; the same rules are applied again while
// parsing, so an event the kernel could not filter is never counted for the VM):
//   sched:sched_switch      prev_pid == T || next_pid == T (T: every QEMU thread) || CPU == P (P: a
//                           pCPU a vCPU is pinned to, so all switches there are kept)
//   sched:sched_wakeup*     pid == T || comm ~ "rcuc/*"   (common_pid is the waker, not the wakee)
//   everything else         common_pid == T || CPU == P   (kvm:* fire in the vCPU thread's context)
// Filters are rewritten at a step start when the thread set changed (hot-plug). A filter longer than
// the kernel accepts (one page) is not set: that event is recorded unfiltered and filtered while parsing.
//
// Rows per step (only for enabled events; zeros are measurements, loss is reported beside them):
//   trace.events            entity <event>            events recorded in the step (any thread)
//   trace.exits             entity vcpuN              kvm_exit of that vCPU, all reasons
//   trace.exits.<reason>    entity vcpuN              per reason, lower-cased; VMX HLT, MWAIT_INSTRUCTION,
//                                                     MONITOR_INSTRUCTION, PAUSE_INSTRUCTION and SVM hlt,
//                                                     mwait, monitor, pause all become hlt, mwait, monitor,
//                                                     pause (those four always get a row, 0 if none)
//   trace.vcpu_wakeups      entity vcpuN              kvm_vcpu_wakeup (blocked or polled halts that ended)
//   trace.vcpu_wakeups_polled entity vcpuN            … of them ended by halt polling ("poll")
//   trace.userspace_exits   entity vcpuN              kvm_userspace_exit
//   trace.sched_switch      entity pcpuN              every context switch on pCPU N, for pCPUs a vCPU is pinned to
//   trace.switches_out      entity vcpuN|emulator     context switches away from that thread
//   trace.preemptions       entity vcpuN|emulator     … of them while it was runnable (prev_state R/R+)
//   trace.sched_wakeups     entity vcpuN|emulator     sched_wakeup of that thread
//   trace.rcuc_wakeups      entity pcpuN              sched_wakeup of rcuc/N (pinned pCPUs always, 0 if none)
//   trace.rcuc_preemptions  entity pcpuN              a vCPU thread switched out for rcuc/N on pCPU N
//   trace.events_lost       entity pcpuN and all      overrun + commit overrun + dropped events during the step
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostFacts } from '../model/host-facts.js';
import { parseCpuList } from '../model/cpulist.js';
import type { ThreadMap } from '../model/threads.js';
import { parseTaskStatus } from '../formats/procfs.js';
import { countTraceEvents, scanMarkers, type TraceMarker } from '../formats/tracefs/trace-stream.js';
import { parsePerCpuStats, type PerCpuStats } from '../formats/tracefs/per-cpu-stats.js';
import { parseEventFields } from '../formats/tracefs/event-fields.js';
import { MARKER_EVENT, type TraceLine } from '../formats/tracefs/trace-line.js';
import { parseEventFormat, type EventFormat } from '../formats/tracefs/event-format.js';
import type { Collector, CollectorContext, CollectorKind } from './collector.js';

export interface TracefsOptions {
  events: string[];
  buffer_kb: number;
}

export const TRACEFS_ROOTS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];
/** The kernel refuses filter strings of a page or more. */
const MAX_FILTER_CHARS = 4000;
/** The idle exits the list threads are about: a row for each on every vCPU, 0 when none happened. */
export const ALWAYS_REASONS = ['hlt', 'mwait', 'monitor', 'pause'];

// ---- pure parts ----------------------------------------------------------------------------------

export function markerText(step: string, phase: 'start' | 'end'): string {
  return `kvmlab step=${step} phase=${phase}`;
}

/** kvm_exit reason as a metric word: vendor names of the idle exits made the same. */
export function normalizeExitReason(reason: string): string {
  const r = reason.trim();
  const vmx: Record<string, string> = { HLT: 'hlt', MWAIT_INSTRUCTION: 'mwait', MONITOR_INSTRUCTION: 'monitor', PAUSE_INSTRUCTION: 'pause' };
  const v = vmx[r];
  if (v) return v;
  const w = r.toLowerCase().replace(/[^a-z0-9_]+/g, '_').replace(/^_+|_+$/g, '');
  return w === '' ? 'unknown' : w;
}

export interface StepWindow {
  step: string;
  start: number;
  end: number;
  /** Where the bounds came from: the trace markers, or the stats' clock when a marker was lost. */
  source: 'markers' | 'stats-clock' | 'mixed';
}

/**
 * Step windows on the trace clock from the markers found in the trace; `fallback` holds the clock
 * read at each boundary (per_cpu stats "now ts") for steps whose marker was lost.
 */
export function stepWindows(steps: readonly string[], markers: readonly Pick<TraceMarker, 'timestamp' | 'text'>[], fallback: ReadonlyMap<string, { start?: number; end?: number }>): StepWindow[] {
  const at = new Map<string, number>();
  for (const m of markers) {
    const t = m.text.trim();
    if (t.startsWith('kvmlab step=') && !at.has(t)) at.set(t, m.timestamp);
  }
  const out: StepWindow[] = [];
  for (const step of steps) {
    const ms = at.get(markerText(step, 'start'));
    const me = at.get(markerText(step, 'end'));
    const fb = fallback.get(step) ?? {};
    const start = ms ?? fb.start;
    const end = me ?? fb.end;
    if (start === undefined || end === undefined || end < start) continue;
    out.push({ step, start, end, source: ms !== undefined && me !== undefined ? 'markers' : ms === undefined && me === undefined ? 'stats-clock' : 'mixed' });
  }
  return out.sort((a, b) => a.start - b.start);
}

/** Index of the window containing ts (windows sorted, not overlapping), or -1. */
export function windowOf(windows: readonly StepWindow[], ts: number): number {
  let lo = 0;
  let hi = windows.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const w = windows[mid]!;
    if (ts < w.start) hi = mid - 1;
    else if (ts > w.end) lo = mid + 1;
    else return mid;
  }
  return -1;
}

export interface ThreadInfo {
  /** TID → "vcpuN" or "emulator". */
  entity: Map<number, string>;
  /** TIDs of vCPU threads. */
  vcpuTids: Set<number>;
}

export function threadInfo(maps: Iterable<ThreadMap>): ThreadInfo {
  const entity = new Map<number, string>();
  const vcpuTids = new Set<number>();
  for (const m of maps) {
    for (const t of m.others) if (!entity.has(t)) entity.set(t, 'emulator');
    for (const v of m.vcpus) {
      entity.set(v.tid, `vcpu${v.index}`);
      vcpuTids.add(v.tid);
    }
  }
  return { entity, vcpuTids };
}

/** The kernel filter for one event, or undefined when none fits (record unfiltered, filter while parsing). */
export function eventFilter(sysEvent: string, format: EventFormat, tids: readonly number[], pinned: readonly number[]): string | undefined {
  const has = (f: string) => format.fields.some((x) => x.name === f);
  const cpuTerms = pinned.map((p) => `CPU == ${p}`);
  let terms: string[];
  if (sysEvent === 'sched:sched_switch' && has('prev_pid') && has('next_pid')) {
    terms = [...tids.flatMap((t) => [`prev_pid == ${t}`, `next_pid == ${t}`]), ...cpuTerms];
  } else if (/^sched:sched_wak/.test(sysEvent) && has('pid') && has('comm')) {
    terms = [...tids.map((t) => `pid == ${t}`), 'comm ~ "rcuc/*"'];
  } else {
    terms = [...tids.map((t) => `common_pid == ${t}`), ...cpuTerms];
  }
  if (terms.length === 0) return undefined;
  const text = terms.join(' || ');
  return text.length > MAX_FILTER_CHARS ? undefined : text;
}

type Counts = Map<string, number>; // "metric\u0000entity" → count

/** Bodies remembered per memo: past this the memo starts again (bodies that never repeat). */
const MEMO_MAX = 4096;

function remember<V>(memo: Map<string, V>, body: string, value: V): void {
  if (memo.size >= MEMO_MAX) memo.clear();
  // a copy: a slice would pin the whole chunk of trace text it came from
  memo.set(Buffer.from(body).toString(), value);
}

export class TraceAggregator {
  readonly perStep: Counts[];
  /** Events outside every step window (between steps, before the first). */
  outside = 0;
  /** Exit reason by event body: a storm repeats a handful of bodies, so each is parsed once. */
  private readonly exitMetric = new Map<string, string>();
  /** Whether a kvm_vcpu_wakeup body is a polled wakeup, likewise. */
  private readonly polled = new Map<string, boolean>();

  constructor(
    private readonly windows: readonly StepWindow[],
    private readonly formats: ReadonlyMap<string, EventFormat>,
    private readonly threads: ThreadInfo,
  ) {
    this.perStep = windows.map(() => new Map());
  }

  private add(c: Counts, metric: string, entity: string, by = 1): void {
    const key = `${metric}\u0000${entity}`;
    c.set(key, (c.get(key) ?? 0) + by);
  }

  event(ev: TraceLine): void {
    if (ev.event === MARKER_EVENT) return;
    const w = windowOf(this.windows, ev.timestamp);
    if (w < 0) {
      this.outside++;
      return;
    }
    const c = this.perStep[w]!;
    this.add(c, 'trace.events', ev.event);
    const fmt = this.formats.get(ev.event);
    const th = this.threads;
    switch (ev.event) {
      case 'kvm_exit': {
        const who = th.vcpuTids.has(ev.pid) ? th.entity.get(ev.pid)! : undefined;
        if (!who) return;
        let metric = this.exitMetric.get(ev.body);
        if (metric === undefined) {
          const f = parseEventFields(ev.body, fmt);
          metric = `trace.exits.${normalizeExitReason(String(f.reason ?? f.exit_reason ?? 'unknown'))}`;
          remember(this.exitMetric, ev.body, metric);
        }
        this.add(c, 'trace.exits', who);
        this.add(c, metric, who);
        return;
      }
      case 'kvm_vcpu_wakeup': {
        const who = th.vcpuTids.has(ev.pid) ? th.entity.get(ev.pid)! : undefined;
        if (!who) return;
        let polled = this.polled.get(ev.body);
        if (polled === undefined) {
          const f = parseEventFields(ev.body, fmt);
          polled = f.waited === 'poll' || f.waited === 0;
          remember(this.polled, ev.body, polled);
        }
        this.add(c, 'trace.vcpu_wakeups', who);
        if (polled) this.add(c, 'trace.vcpu_wakeups_polled', who);
        return;
      }
      case 'kvm_userspace_exit': {
        const who = th.vcpuTids.has(ev.pid) ? th.entity.get(ev.pid)! : undefined;
        if (who) this.add(c, 'trace.userspace_exits', who);
        return;
      }
      case 'sched_switch': {
        const f = parseEventFields(ev.body, fmt);
        this.add(c, 'trace.sched_switch', `pcpu${ev.cpu}`);
        const prev = Number(f.prev_pid);
        const prevWho = th.entity.get(prev);
        if (prevWho) {
          this.add(c, 'trace.switches_out', prevWho);
          if (String(f.prev_state ?? '').startsWith('R')) this.add(c, 'trace.preemptions', prevWho);
          const m = /^rcuc\/(\d+)$/.exec(String(f.next_comm ?? ''));
          if (m && th.vcpuTids.has(prev)) this.add(c, 'trace.rcuc_preemptions', `pcpu${ev.cpu}`);
        }
        return;
      }
      case 'sched_wakeup': {
        const f = parseEventFields(ev.body, fmt);
        const m = /^rcuc\/(\d+)$/.exec(String(f.comm ?? ''));
        if (m) this.add(c, 'trace.rcuc_wakeups', `pcpu${m[1]}`);
        const who = th.entity.get(Number(f.pid));
        if (who) this.add(c, 'trace.sched_wakeups', who);
        return;
      }
    }
  }
}

export interface StepFacts {
  /** vCPU entities alive at the step start. */
  vcpus: string[];
  /** Thread entities (vcpuN, emulator) alive at the step start. */
  entities: string[];
  /** pCPUs vCPUs were pinned to at the step start. */
  pinned: number[];
  /** Per CPU: loss counters at the step's start and end. */
  lossStart: Map<number, number>;
  lossEnd: Map<number, number>;
}

export interface Row {
  step: string;
  entity: string;
  metric: string;
  value: number;
  unit: string;
}

/** Rows of one step: the counts, the zeros that are measurements, and the loss. */
export function stepRows(step: string, counts: Counts | undefined, facts: StepFacts, enabled: ReadonlySet<string>): Row[] {
  const rows = new Map<string, Row>();
  const put = (metric: string, entity: string, value: number) => {
    const key = `${metric}\u0000${entity}`;
    rows.set(key, { step, entity, metric, value, unit: 'count' });
  };
  // zeros first, overwritten by the counts
  if (enabled.has('kvm:kvm_exit')) {
    for (const v of facts.vcpus) {
      put('trace.exits', v, 0);
      for (const r of ALWAYS_REASONS) put(`trace.exits.${r}`, v, 0);
    }
  }
  if (enabled.has('kvm:kvm_vcpu_wakeup')) for (const v of facts.vcpus) for (const m of ['trace.vcpu_wakeups', 'trace.vcpu_wakeups_polled']) put(m, v, 0);
  if (enabled.has('kvm:kvm_userspace_exit')) for (const v of facts.vcpus) put('trace.userspace_exits', v, 0);
  if (enabled.has('sched:sched_switch')) {
    for (const e of facts.entities) for (const m of ['trace.switches_out', 'trace.preemptions']) put(m, e, 0);
    for (const p of facts.pinned) {
      put('trace.sched_switch', `pcpu${p}`, 0);
      put('trace.rcuc_preemptions', `pcpu${p}`, 0);
    }
  }
  if (enabled.has('sched:sched_wakeup')) {
    for (const e of facts.entities) put('trace.sched_wakeups', e, 0);
    for (const p of facts.pinned) put('trace.rcuc_wakeups', `pcpu${p}`, 0);
  }
  const pinned = new Set(facts.pinned.map((p) => `pcpu${p}`));
  for (const [key, value] of counts ?? []) {
    const [metric, entity] = key.split('\u0000') as [string, string];
    // context switches are a per-pCPU metric only where vCPUs are pinned; elsewhere they mix every task
    if ((metric === 'trace.sched_switch') && !pinned.has(entity)) continue;
    put(metric, entity, value);
  }
  let lost = 0;
  for (const [cpu, end] of facts.lossEnd) {
    const d = Math.max(0, end - (facts.lossStart.get(cpu) ?? end));
    lost += d;
    put('trace.events_lost', `pcpu${cpu}`, d);
  }
  put('trace.events_lost', 'all', lost);
  return [...rows.values()];
}

// ---- the collector -------------------------------------------------------------------------------

interface Boundary {
  stats: Map<number, PerCpuStats>;
  /** Latest "now ts" among CPUs. */
  now: number | undefined;
}

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

  constructor(private readonly opts: TracefsOptions) {}

  async start(ctx: CollectorContext): Promise<void> {
    this.ctx = ctx;
    const h = ctx.host;
    try {
      for (const r of TRACEFS_ROOTS) {
        if (await h.exists(`${r}/instances`)) {
          this.root = r;
          break;
        }
      }
      if (!this.root) throw new Error(`no tracefs with instances/ at ${TRACEFS_ROOTS.join(' or ')} (mount -t tracefs nodev /sys/kernel/tracing)`);
      await this.removeStale();
      this.inst = `${this.root}/instances/kvmlab-${process.pid}-${randomBytes(4).toString('hex')}`;
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
      const m = /^kvmlab-(\d+)-[0-9a-f]+$/.exec(n);
      if (!m || Number(m[1]) === process.pid) continue;
      if (await h.exists(`/proc/${m[1]}`)) continue;
      const dir = `${this.root}/instances/${n}`;
      await h.writeFile(`${dir}/tracing_on`, '0').catch(() => undefined);
      await h.writeFile(`${dir}/events/enable`, '0').catch(() => undefined);
      await h.rmdir(dir).then(() => this.notes.push(`removed stale instance ${n} (pid ${m[1]} is gone)`), () => undefined);
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
      await this.analyse();
    } finally {
      await this.cleanup();
    }
  }

  private async analyse(): Promise<void> {
    const h = this.ctx.host;
    // Pass 1: each CPU's buffer to a raw file, collecting the markers (they are on any CPU).
    const markers: TraceMarker[] = [];
    let lostNotices = 0;
    const files: string[] = [];
    for (const cpu of this.cpus) {
      const text = await h.readFile(`${this.inst}/per_cpu/cpu${cpu}/trace`).catch(() => undefined);
      if (text === undefined) continue;
      const file = join(this.ctx.dir, `trace-cpu${cpu}.txt`);
      await writeFile(file, text);
      files.push(file);
      const scan = scanMarkers(text);
      markers.push(...scan.markers);
      lostNotices += scan.lostEvents;
    }
    const fallback = new Map(this.steps.map((s) => [s.name, { start: s.start, end: s.end }]));
    const windows = stepWindows(this.steps.map((s) => s.name), markers, fallback);
    const byName = new Map<string, EventFormat>();
    for (const [key, fmt] of this.formats) byName.set(key.split(':')[1]!, fmt);
    const agg = new TraceAggregator(windows, byName, threadInfo(this.maps));
    // Pass 2: stream the raw files back and attribute every event to its step.
    let malformed = 0;
    for (const file of files) {
      const c = await countTraceEvents(createReadStream(file), { onEvent: (ev) => agg.event(ev) });
      malformed += c.malformed;
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
