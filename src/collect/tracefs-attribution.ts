// What a traced event counts for: the step it falls in (by the trace markers, or the stats' clock
// when a marker was lost), the VM thread or pCPU it is about, and the per-step rows. Pure: tested on
// captured traces (test/unit/collectors.test.ts).
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
//   trace.rcu_ticks         entity pcpuN              RCU's scheduler-tick hook ran on pinned pCPU N
//                                                     (rcu_utilization "Start scheduler-tick": where
//                                                     rcu_pending() decides whether rcuc/N must run)
//   trace.rcuc_tick_wakeups entity pcpuN              … of the rcuc/N wakeups, those raised inside that
//                                                     hook on CPU N itself ("woken from the tick")
//   trace.rcuc_other_wakeups entity pcpuN             … and those raised anywhere else
//   trace.events_lost       entity pcpuN and all      overrun + commit overrun + dropped events during the step
import { exitReasonWord } from '../model/metrics.js';
import type { ThreadMap } from '../model/threads.js';
import { parseEventFields } from '../formats/tracefs/event-fields.js';
import type { EventFormat } from '../formats/tracefs/event-format.js';
import { MARKER_EVENT, type TraceLine } from '../formats/tracefs/trace-line.js';
import type { TraceMarker } from '../formats/tracefs/trace-stream.js';

/** The kernel refuses filter strings of a page or more. */
const MAX_FILTER_CHARS = 4000;
/** The idle exits the list threads are about: a row for each on every vCPU, 0 when none happened. */
export const ALWAYS_REASONS = ['hlt', 'mwait', 'monitor', 'pause'];
export function markerText(step: string, phase: 'start' | 'end'): string {
  return `kvmlab step=${step} phase=${phase}`;
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

/** What `compute` gives for this event body, computed once per body while the memo holds it. */
function memo<V>(memo: Map<string, V>, body: string, compute: () => V): V {
  const known = memo.get(body);
  if (known !== undefined) return known;
  const value = compute();
  if (memo.size >= MEMO_MAX) memo.clear();
  // a copy: a slice would pin the whole chunk of trace text it came from
  memo.set(Buffer.from(body).toString(), value);
  return value;
}

export class TraceAggregator {
  readonly perStep: Counts[];
  /** Events outside every step window (between steps, before the first). */
  outside = 0;
  /** Exit reason by event body: a storm repeats a handful of bodies, so each is parsed once. */
  private readonly exitMetric = new Map<string, string>();
  /** Whether a kvm_vcpu_wakeup body is a polled wakeup, likewise. */
  private readonly polled = new Map<string, boolean>();
  /** CPUs inside RCU's scheduler-tick hook: between its Start and End scheduler-tick events, which each CPU's stream keeps in order. */
  private readonly inTick = new Set<number>();

  constructor(
    private readonly windows: readonly StepWindow[],
    private readonly formats: ReadonlyMap<string, EventFormat>,
    private readonly threads: ThreadInfo,
  ) {
    this.perStep = windows.map(() => new Map());
  }

  /** Counts keys by metric and entity, made once: an event adds to two or three of them. */
  private readonly keys = new Map<string, Map<string, string>>();

  private add(c: Counts, metric: string, entity: string, by = 1): void {
    let byEntity = this.keys.get(metric);
    if (!byEntity) this.keys.set(metric, (byEntity = new Map()));
    let key = byEntity.get(entity);
    if (key === undefined) byEntity.set(entity, (key = `${metric}\u0000${entity}`));
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
    if (ev.event === 'rcu_utilization') {
      if (ev.body === 'Start scheduler-tick') {
        this.inTick.add(ev.cpu);
        this.add(c, 'trace.rcu_ticks', `pcpu${ev.cpu}`);
      } else if (ev.body === 'End scheduler-tick') this.inTick.delete(ev.cpu);
      return;
    }
    const fmt = this.formats.get(ev.event);
    const th = this.threads;
    switch (ev.event) {
      case 'kvm_exit': {
        const who = th.vcpuTids.has(ev.pid) ? th.entity.get(ev.pid)! : undefined;
        if (!who) return;
        const metric = memo(this.exitMetric, ev.body, () => {
          const f = parseEventFields(ev.body, fmt);
          return `trace.exits.${exitReasonWord(String(f.reason ?? f.exit_reason ?? 'unknown'))}`;
        });
        this.add(c, 'trace.exits', who);
        this.add(c, metric, who);
        return;
      }
      case 'kvm_vcpu_wakeup': {
        const who = th.vcpuTids.has(ev.pid) ? th.entity.get(ev.pid)! : undefined;
        if (!who) return;
        const polled = memo(this.polled, ev.body, () => {
          const f = parseEventFields(ev.body, fmt);
          return f.waited === 'poll' || f.waited === 0;
        });
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
        if (m) {
          this.add(c, 'trace.rcuc_wakeups', `pcpu${m[1]}`);
          if (Number(m[1]) === ev.cpu && this.inTick.has(ev.cpu)) this.add(c, 'trace.rcuc_tick_wakeups', `pcpu${ev.cpu}`);
        }
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
  if (enabled.has('rcu:rcu_utilization')) {
    for (const p of facts.pinned) put('trace.rcu_ticks', `pcpu${p}`, 0);
    if (enabled.has('sched:sched_wakeup')) for (const p of facts.pinned) put('trace.rcuc_tick_wakeups', `pcpu${p}`, 0);
  }
  const pinned = new Set(facts.pinned.map((p) => `pcpu${p}`));
  for (const [key, value] of counts ?? []) {
    const [metric, entity] = key.split('\u0000') as [string, string];
    // context switches are a per-pCPU metric only where vCPUs are pinned; elsewhere they mix every task
    if ((metric === 'trace.sched_switch' || metric === 'trace.rcu_ticks') && !pinned.has(entity)) continue;
    put(metric, entity, value);
  }
  if (enabled.has('rcu:rcu_utilization') && enabled.has('sched:sched_wakeup')) {
    for (const p of facts.pinned) {
      const n = (m: string) => rows.get(`${m}\u0000pcpu${p}`)?.value ?? 0;
      put('trace.rcuc_other_wakeups', `pcpu${p}`, n('trace.rcuc_wakeups') - n('trace.rcuc_tick_wakeups'));
    }
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
