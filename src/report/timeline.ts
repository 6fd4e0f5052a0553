// A run as a Chrome/Perfetto trace-event file (timeline.json): one process per repetition, a
// "steps" thread with a complete ("X") event per step, a counter ("C") track of host CPU % per vCPU
// thread derived from the vcpu-cpu samples (the samples give CPU time per interval, not the exact
// on-CPU intervals, so a counter is what is true), and guest exits as instant ("i") events on the
// vCPU threads when a trace text file with kvm_exit lines and step markers is present.
// Open it at ui.perfetto.dev or chrome://tracing.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { scanTraceLine } from '../formats/tracefs/trace-line.js';
import { forEachLineWith, scanMarkers, type TraceMarker } from '../formats/tracefs/trace-stream.js';
import type { LoadedResults, RepetitionData } from './load.js';
import type { StepRecord } from '../results/records.js';
import { cpuSeries, repStart } from './series.js';

export interface TraceEvent {
  name: string;
  ph: 'X' | 'C' | 'i' | 'M';
  ts: number;
  pid: number;
  tid: number;
  dur?: number;
  cat?: string;
  s?: 't' | 'p' | 'g';
  args?: Record<string, unknown>;
}

export interface Timeline {
  traceEvents: TraceEvent[];
  displayTimeUnit: 'ms';
  otherData: Record<string, string>;
}

const MAX_EXIT_EVENTS = 50_000;

/**
 * Trace clock → epoch seconds from a step marker: the tracefs collector writes
 * "kvmlab step=<name> phase=start|end" at each step boundary the runner also stamped in steps.jsonl.
 */
function markerOffset(m: TraceMarker, steps: ReadonlyMap<string, StepRecord>): number | undefined {
  const found = /kvmlab step=(\S+) phase=(start|end)/.exec(m.text);
  if (!found) return undefined;
  const s = steps.get(found[1]!);
  if (!s) return undefined;
  return (found[2] === 'end' ? s.end : s.start!) - m.timestamp;
}

/** "exit MWAIT_INSTRUCTION": one string per reason, however many events carry it. */
const exitNames = new Map<string, string>();
function exitName(reason: string): string {
  let name = exitNames.get(reason);
  if (name === undefined) exitNames.set(reason, (name = `exit ${reason}`));
  return name;
}

/**
 * kvm_exit instants from trace text, as instant events on their vCPU threads, aligned to the epoch by
 * a marker naming a step. Each exit is made into its event as its line is read: a storm gives tens of
 * thousands a repetition, and objects between line and event cost more than the parsing.
 */
async function exitEvents(rep: RepetitionData, pid: number, us: (t: number) => number): Promise<{ events: TraceEvent[]; note?: string }> {
  if (!rep.traceFiles.length) return { events: [] };
  const stepStarts = new Map(rep.steps.filter((s) => typeof s.start === 'number').map((s) => [s.step, s]));
  // ts holds the trace clock until the offset to the epoch is known
  const events: TraceEvent[] = [];
  let offset: number | undefined;
  let truncated = false;
  for (const f of rep.traceFiles) {
    const text = await readFile(join(rep.dir, f), 'utf8').catch(() => '');
    // only exits and markers matter here: the other lines are not even split out
    if (offset === undefined) for (const m of scanMarkers(text).markers) offset ??= markerOffset(m, stepStarts);
    if (truncated) continue;
    forEachLineWith(text, 'kvm_exit:', (line) => {
      const l = scanTraceLine(line);
      if (!l || l.event !== 'kvm_exit') return;
      if (events.length >= MAX_EXIT_EVENTS) {
        truncated = true;
        return false;
      }
      events.push({ name: exitName(/reason\s+(\S+)/.exec(l.body)?.[1] ?? 'exit'), ph: 'i', s: 't', ts: l.timestamp, pid, tid: l.pid, cat: 'exit' });
    });
  }
  if (!events.length) return { events: [] };
  if (offset === undefined) return { events: [], note: `${rep.variant} rep ${rep.repetition}: ${events.length} kvm_exit lines but no "kvmlab step=… phase=…" trace marker, so their clock cannot be placed; left out` };
  for (const e of events) e.ts = us(e.ts + offset);
  return { events, note: truncated ? `${rep.variant} rep ${rep.repetition}: only the first ${MAX_EXIT_EVENTS} kvm_exit events are in the timeline` : undefined };
}

export async function buildTimeline(r: LoadedResults): Promise<Timeline> {
  // time zero: the first thing recorded (vcpu-cpu samples start during boot, before the first step),
  // so every event has ts >= 0 and the metadata events (ts 0) lead
  let t0 = Infinity;
  for (const rep of r.reps) {
    const first = repStart(rep);
    if (first !== undefined) t0 = Math.min(t0, first);
    for (const s of rep.samples) t0 = Math.min(t0, s.t);
  }
  if (!Number.isFinite(t0)) t0 = 0;
  const us = (t: number) => Math.round((t - t0) * 1e6);
  const meta: TraceEvent[] = [];
  const events: TraceEvent[] = [];
  const notes: string[] = [];
  for (const [i, rep] of r.reps.entries()) {
    const pid = i + 1;
    meta.push({ name: 'process_name', ph: 'M', ts: 0, pid, tid: 0, args: { name: `${rep.variant} rep ${rep.repetition}${r.summary.simulated ? ' (simulated)' : ''}` } });
    meta.push({ name: 'process_sort_index', ph: 'M', ts: 0, pid, tid: 0, args: { sort_index: pid } });
    meta.push({ name: 'thread_name', ph: 'M', ts: 0, pid, tid: 0, args: { name: 'steps' } });
    for (const s of rep.steps) {
      if (s.step === 'teardown' || typeof s.start !== 'number') {
        events.push({ name: s.step, ph: 'i', s: 't', ts: us(s.end), pid, tid: 0, cat: 'step', args: s.how ? { how: s.how } : {} });
        continue;
      }
      events.push({ name: s.step, ph: 'X', ts: us(s.start), dur: Math.max(1, Math.round((s.end - s.start) * 1e6)), pid, tid: 0, cat: 'step', args: { kind: s.kind, ok: s.ok, ...(s.error ? { error: s.error } : {}) } });
    }
    const threads = new Map<number, string>();
    for (const s of rep.samples) if (!threads.has(s.tid)) threads.set(s.tid, s.entity);
    for (const [tid, entity] of threads) meta.push({ name: 'thread_name', ph: 'M', ts: 0, pid, tid, args: { name: `${entity} (tid ${tid})` } });
    for (const p of cpuSeries(rep.samples, t0)) events.push({ name: `host CPU % ${p.entity}`, ph: 'C', ts: Math.round(p.t * 1e6), pid, tid: 0, cat: 'vcpu-cpu', args: { pct: p.pct } });
    const exits = await exitEvents(rep, pid, us);
    if (exits.note) notes.push(exits.note);
    for (const e of exits.events) events.push(e);
  }
  // traced exits may predate the first sample (tracing starts with the collectors): keep ts >= 0
  const shift = events.reduce((m, e) => Math.min(m, e.ts), 0);
  if (shift < 0) for (const e of events) e.ts -= shift;
  events.sort((a, b) => a.ts - b.ts);
  return {
    traceEvents: [...meta, ...events],
    displayTimeUnit: 'ms',
    otherData: {
      experiment: r.summary.experiment,
      simulated: String(r.summary.simulated),
      t0: new Date(t0 * 1000).toISOString(),
      cpu: 'vCPU CPU use is a counter track per thread (host CPU % between vcpu-cpu samples), not exact on-CPU intervals',
      ...(notes.length ? { notes: notes.join('; ') } : {}),
    },
  };
}
