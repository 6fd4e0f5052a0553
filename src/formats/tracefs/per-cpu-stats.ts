// per_cpu/cpuN/stats of a tracefs instance: entries, overruns, dropped events (the loss kvmlab reports).
import { TraceParseError } from './errors.js';

export interface PerCpuStats {
  /** Events in the buffer now. */
  entries: number;
  /** Events lost by overwriting (overwrite mode). */
  overrun: number;
  /** Events lost because a writer wrapped the buffer while an event was being committed. */
  commitOverrun: number;
  bytes: number;
  /** Seconds for ns clocks (raw count for counter clocks). */
  oldestEventTs: number;
  nowTs: number;
  /** Events lost because the buffer was full (no-overwrite mode). */
  droppedEvents: number;
  /** Events consumed (trace_pipe); reading `trace` does not consume. */
  readEvents: number;
}

const PER_CPU_KEYS: ReadonlyArray<readonly [string, keyof PerCpuStats]> = [
  ['entries', 'entries'],
  ['overrun', 'overrun'],
  ['commit overrun', 'commitOverrun'],
  ['bytes', 'bytes'],
  ['oldest event ts', 'oldestEventTs'],
  ['now ts', 'nowTs'],
  ['dropped events', 'droppedEvents'],
  ['read events', 'readEvents'],
];

/** Parse `per_cpu/cpuN/stats` of a tracefs instance. Every key is required. */
export function parsePerCpuStats(text: string): PerCpuStats {
  const what = 'per_cpu stats';
  const seen = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new TraceParseError(what, `line without "key:"`, line);
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (!/^\d+(\.\d+)?$/.test(value)) throw new TraceParseError(what, `${key} is not a number: ${JSON.stringify(value)}`, line);
    seen.set(key, Number(value));
  }
  const out = {} as PerCpuStats;
  for (const [key, prop] of PER_CPU_KEYS) {
    const v = seen.get(key);
    if (v === undefined) throw new TraceParseError(what, `no "${key}:" line`, text);
    out[prop] = v;
  }
  return out;
}
