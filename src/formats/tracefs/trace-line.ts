// One line of `trace`/`trace_pipe` text (default trace_options, with or without the record-tgid
// column). A hand-written scanner, no regular expressions on the hot path: traces run to hundreds of MB.
import { TraceParseError } from './errors.js';

export interface TraceLine {
  /** Task name; may contain spaces and dashes ("CPU 0/KVM", "qemu-system-x86", "<idle>"). */
  comm: string;
  pid: number;
  /** From the `(  TGID)` column (options/record-tgid); absent without it, or when shown as "(-------)". */
  tgid?: number;
  cpu: number;
  /** The irq-info column ("d..2.", "....."): irqs-off, need-resched, hardirq/softirq, preempt depth, migrate-disable. */
  flags?: string;
  /** Seconds for the ns-based clocks (local, global, mono, boot…); the raw count for counter/x86-tsc. */
  timestamp: number;
  /** Event name as printed ("sched_switch", "kvm_exit"); writes to trace_marker print as "tracing_mark_write". */
  event: string;
  /** Everything after "event: "; for trace_marker lines, the message written. */
  body: string;
}

/** Name the kernel prints for `ftrace:print` events, i.e. writes to `trace_marker`. */
export const MARKER_EVENT = 'tracing_mark_write';

export const SP = 32;
const TAB = 9;
export const DASH = 45;
const DOT = 46;
const COLON = 58;
const RBRACK = 93;
const RPAREN = 41;
const HASH = 35;

export function isDigitCode(c: number): boolean {
  return c >= 48 && c <= 57;
}

/**
 * Parse one line of `trace`/`trace_pipe` text (default trace_options; `irq-info` and `record-tgid`
 * may be on or off). Returns null for blank lines, `#` header/comment lines and the
 * "CPU:N [LOST M EVENTS]" notices (see parseLostEventsLine); throws TraceParseError otherwise
 * when the line is not in that shape (e.g. `latency-format` output or a truncated line).
 */
export function parseTraceLine(line: string): TraceLine | null {
  const r = scanTraceLine(line);
  if (r === undefined) throw new TraceParseError('trace line', 'not "COMM-PID [CPU] FLAGS TIMESTAMP: EVENT: BODY"', line);
  return r;
}

/** `CPU:3 [LOST 1234 EVENTS]` → { cpu: 3, lost: 1234 }; null for any other line. */
export function parseLostEventsLine(line: string): { cpu: number; lost: number } | null {
  if (!line.startsWith('CPU:')) return null;
  const m = /^CPU:(\d+) \[LOST (\d+) EVENTS\]\s*$/.exec(line);
  return m ? { cpu: Number(m[1]), lost: Number(m[2]) } : null;
}

/** Parse a run of decimal digits at [from, to) without allocating. Caller guarantees digits only. */
function digitsValue(s: string, from: number, to: number): number {
  let v = 0;
  for (let k = from; k < to; k++) v = v * 10 + (s.charCodeAt(k) - 48);
  return v;
}

/**
 * The scanner behind parseTraceLine: TraceLine, null (not an event line), or undefined (malformed).
 * It anchors on the "[CPU]" column: the first "[digits]" that is preceded by "-PID" (and optionally
 * "(TGID)") — so a comm containing '-', ' ', '[' or digits is still split correctly.
 */
export function scanTraceLine(line: string): TraceLine | null | undefined {
  const n = line.length;
  let s = 0;
  while (s < n && (line.charCodeAt(s) === SP || line.charCodeAt(s) === TAB)) s++;
  if (s === n) return null;
  const first = line.charCodeAt(s);
  if (first === HASH) return null;
  if (first === 67 /* C */ && line.startsWith('CPU:', s) && parseLostEventsLine(line.slice(s)) !== null) return null;

  let b = line.indexOf('[', s);
  for (; b >= 0; b = line.indexOf('[', b + 1)) {
    // "[digits]"
    let k = b + 1;
    while (k < n && isDigitCode(line.charCodeAt(k))) k++;
    if (k === b + 1 || k >= n || line.charCodeAt(k) !== RBRACK) continue;
    // back over spaces, an optional "(  TGID)" and spaces, then "-PID"
    let j = b - 1;
    if (j < s || line.charCodeAt(j) !== SP) continue;
    while (j >= s && line.charCodeAt(j) === SP) j--;
    let tgid: number | undefined;
    if (j >= s && line.charCodeAt(j) === RPAREN) {
      const open = line.lastIndexOf('(', j);
      if (open < s) continue;
      let t0 = open + 1;
      while (t0 < j && line.charCodeAt(t0) === SP) t0++;
      let allDigits = t0 < j;
      let allDashes = t0 < j;
      for (let q = t0; q < j; q++) {
        const c = line.charCodeAt(q);
        if (!isDigitCode(c)) allDigits = false;
        if (c !== DASH) allDashes = false;
      }
      if (!allDigits && !allDashes) continue;
      if (allDigits) tgid = digitsValue(line, t0, j);
      j = open - 1;
      if (j < s || line.charCodeAt(j) !== SP) continue;
      while (j >= s && line.charCodeAt(j) === SP) j--;
    }
    const pidEnd = j + 1;
    while (j >= s && isDigitCode(line.charCodeAt(j))) j--;
    if (j + 1 === pidEnd || j < s || line.charCodeAt(j) !== DASH) continue;
    const comm = line.slice(s, j);
    const pid = digitsValue(line, j + 1, pidEnd);
    const cpu = digitsValue(line, b + 1, k);

    // After "]": optional flags token, then "TIMESTAMP:"
    let p = k + 1;
    while (p < n && line.charCodeAt(p) === SP) p++;
    let tokEnd = p;
    while (tokEnd < n && line.charCodeAt(tokEnd) !== SP) tokEnd++;
    let flags: string | undefined;
    if (!isTimestampToken(line, p, tokEnd)) {
      flags = line.slice(p, tokEnd);
      p = tokEnd;
      while (p < n && line.charCodeAt(p) === SP) p++;
      tokEnd = p;
      while (tokEnd < n && line.charCodeAt(tokEnd) !== SP) tokEnd++;
      if (!isTimestampToken(line, p, tokEnd)) return undefined;
    }
    const timestamp = Number(line.slice(p, tokEnd - 1));
    // " EVENT: BODY" — the event name is the text up to the next ':'; some tracers print no name.
    let e = tokEnd;
    while (e < n && line.charCodeAt(e) === SP) e++;
    let c = e;
    while (c < n) {
      const ch = line.charCodeAt(c);
      if (ch === COLON || ch === SP) break;
      c++;
    }
    let event: string;
    let body: string;
    if (c < n && line.charCodeAt(c) === COLON && c > e) {
      event = line.slice(e, c);
      let bs = c + 1;
      if (bs < n && line.charCodeAt(bs) === SP) bs++;
      body = line.slice(bs);
    } else {
      event = '';
      body = line.slice(e);
    }
    const out: TraceLine = { comm, pid, cpu, timestamp, event, body };
    if (tgid !== undefined) out.tgid = tgid;
    if (flags !== undefined) out.flags = flags;
    return out;
  }
  return undefined;
}

/** "123.456789:" or "123456789:" (counter clocks), the ':' included in [from, to). */
function isTimestampToken(s: string, from: number, to: number): boolean {
  if (to - from < 2 || s.charCodeAt(to - 1) !== COLON) return false;
  let dots = 0;
  for (let k = from; k < to - 1; k++) {
    const c = s.charCodeAt(k);
    if (c === DOT) {
      if (++dots > 1) return false;
    } else if (!isDigitCode(c)) return false;
  }
  return isDigitCode(s.charCodeAt(from)) && isDigitCode(s.charCodeAt(to - 2));
}
