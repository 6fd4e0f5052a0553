// Whole traces without holding them in memory: chunks split into lines, counted by event, thread and
// marker as they stream (countTraceEvents), or parsed line by line (parseTraceText).
import { MARKER_EVENT, parseLostEventsLine, parseTraceLine, scanTraceLine, type TraceLine } from './trace-line.js';

export type TraceChunks = AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>;

/**
 * Splits text arriving in chunks (strings or UTF-8 bytes, cut anywhere) into lines, calling onLine
 * for each, without its trailing "\n" or "\r\n". Call end() once after the last chunk.
 */
export class LineSplitter {
  private rest = '';
  private readonly decoder = new TextDecoder('utf-8');
  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: string | Uint8Array): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    let start = 0;
    let nl = text.indexOf('\n');
    if (nl < 0) {
      this.rest += text;
      return;
    }
    if (this.rest !== '') {
      this.emit(this.rest + text.slice(0, nl));
      this.rest = '';
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    while (nl >= 0) {
      this.emit(text.slice(start, nl));
      start = nl + 1;
      nl = text.indexOf('\n', start);
    }
    this.rest = text.slice(start);
  }

  end(): void {
    const tail = this.rest + this.decoder.decode();
    this.rest = '';
    if (tail !== '') this.emit(tail);
  }

  private emit(line: string): void {
    this.onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
  }
}

export interface TraceMarker {
  timestamp: number;
  cpu: number;
  pid: number;
  comm: string;
  text: string;
}

export interface TraceCounts {
  /** All lines seen, including headers and blank lines. */
  lines: number;
  /** Event lines parsed. */
  events: number;
  /** Event lines per event name. */
  byEvent: Map<string, number>;
  /** Lines that were neither events, comments nor LOST notices (first few kept in malformedSamples). */
  malformed: number;
  malformedSamples: string[];
  /** Sum of "CPU:N [LOST M EVENTS]" notices. */
  lostEvents: number;
  firstTimestamp?: number;
  lastTimestamp?: number;
  /** trace_marker lines, in order (assumed few: phase boundaries written by the collector). */
  markers: TraceMarker[];
}

export interface CountOptions {
  /** Called for every event line (after counting); the object must not be kept past the call if memory matters. */
  onEvent?: (ev: TraceLine) => void;
  /** How many malformed lines to keep as samples (default 5). */
  malformedSamples?: number;
}

/** Incremental counter behind countTraceEvents, for callers that push lines themselves. */
export class TraceCounter {
  readonly counts: TraceCounts = { lines: 0, events: 0, byEvent: new Map(), malformed: 0, malformedSamples: [], lostEvents: 0, markers: [] };
  private readonly maxSamples: number;
  constructor(private readonly options: CountOptions = {}) {
    this.maxSamples = options.malformedSamples ?? 5;
  }

  line(line: string): void {
    const c = this.counts;
    c.lines++;
    const ev = scanTraceLine(line);
    if (ev === undefined) {
      c.malformed++;
      if (c.malformedSamples.length < this.maxSamples) c.malformedSamples.push(line.length > 200 ? `${line.slice(0, 200)}…` : line);
      return;
    }
    if (ev === null) {
      const lost = line.startsWith('CPU:') ? parseLostEventsLine(line) : null;
      if (lost) c.lostEvents += lost.lost;
      return;
    }
    c.events++;
    const seen = c.byEvent.get(ev.event);
    // Strings kept past this call are copied: a slice would pin the whole input chunk in memory.
    c.byEvent.set(seen === undefined ? detach(ev.event) : ev.event, (seen ?? 0) + 1);
    if (c.firstTimestamp === undefined) c.firstTimestamp = ev.timestamp;
    c.lastTimestamp = ev.timestamp;
    if (ev.event === MARKER_EVENT) {
      c.markers.push({ timestamp: ev.timestamp, cpu: ev.cpu, pid: ev.pid, comm: detach(ev.comm), text: detach(ev.body) });
    }
    this.options.onEvent?.(ev);
  }
}

/**
 * The trace_marker lines and LOST notices of a trace, found without parsing the other lines: the
 * first pass of a two-pass analysis, which needs the step boundaries before it attributes events.
 */
export function scanMarkers(text: string): { markers: TraceMarker[]; lostEvents: number } {
  const counter = new TraceCounter();
  for (const needle of [`${MARKER_EVENT}:`, '[LOST ']) forEachLineWith(text, needle, (line) => counter.line(line));
  const { markers, lostEvents } = counter.counts;
  return { markers: markers.sort((a, b) => a.timestamp - b.timestamp), lostEvents };
}

/**
 * Calls fn with each line of text that contains `needle` (without its "\n" or "\r\n"), in order,
 * found by searching for the needle instead of splitting every line; fn returns false to stop.
 */
export function forEachLineWith(text: string, needle: string, fn: (line: string) => boolean | void): void {
  for (let at = text.indexOf(needle); at >= 0; ) {
    const start = text.lastIndexOf('\n', at) + 1;
    const nl = text.indexOf('\n', at);
    const end = nl < 0 ? text.length : nl;
    if (fn(text.slice(start, end > start && text.charCodeAt(end - 1) === 13 ? end - 1 : end)) === false || nl < 0) return;
    at = text.indexOf(needle, nl + 1);
  }
}

/** A copy of s that does not share storage with the (large) string it was sliced from. */
function detach(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

/**
 * Count a whole trace (a string, or chunks from e.g. fs.createReadStream) line by line without
 * keeping lines: memory stays flat whatever the size. `firstTimestamp`/`lastTimestamp` are of the
 * first and last lines in file order (the `trace` file merges CPUs in time order).
 */
export async function countTraceEvents(input: string | TraceChunks, options: CountOptions = {}): Promise<TraceCounts> {
  const counter = new TraceCounter(options);
  const onLine = (l: string): void => counter.line(l);
  if (typeof input === 'string') {
    forEachLine(input, onLine);
    return counter.counts;
  }
  const splitter = new LineSplitter(onLine);
  if (Symbol.asyncIterator in input) {
    for await (const chunk of input) splitter.push(chunk);
  } else {
    for (const chunk of input) splitter.push(chunk);
  }
  splitter.end();
  return counter.counts;
}

/** Call fn for each line of text (no trailing empty line for a final "\n"). */
export function forEachLine(text: string, fn: (line: string) => void): void {
  const splitter = new LineSplitter(fn);
  splitter.push(text);
  splitter.end();
}

/**
 * Iterate the events of a trace: a string gives a synchronous generator, chunks (a stream) an async
 * one. Comment, blank and LOST lines are skipped; malformed lines throw TraceParseError.
 */
export function parseTraceText(input: string): Generator<TraceLine, void, undefined>;
export function parseTraceText(input: AsyncIterable<string | Uint8Array>): AsyncGenerator<TraceLine, void, undefined>;
export function parseTraceText(
  input: string | AsyncIterable<string | Uint8Array>,
): Generator<TraceLine, void, undefined> | AsyncGenerator<TraceLine, void, undefined> {
  return typeof input === 'string' ? parseTraceString(input) : parseTraceChunks(input);
}

function* parseTraceString(text: string): Generator<TraceLine, void, undefined> {
  let start = 0;
  while (start < text.length) {
    let nl = text.indexOf('\n', start);
    if (nl < 0) nl = text.length;
    let line = text.slice(start, nl);
    if (line.endsWith('\r')) line = line.slice(0, -1);
    start = nl + 1;
    const ev = parseTraceLine(line);
    if (ev !== null) yield ev;
  }
}

async function* parseTraceChunks(chunks: AsyncIterable<string | Uint8Array>): AsyncGenerator<TraceLine, void, undefined> {
  let pending: string[] = [];
  const splitter = new LineSplitter((l) => pending.push(l));
  const drain = function* (): Generator<TraceLine, void, undefined> {
    const batch = pending;
    pending = [];
    for (const l of batch) {
      const ev = parseTraceLine(l);
      if (ev !== null) yield ev;
    }
  };
  for await (const chunk of chunks) {
    splitter.push(chunk);
    yield* drain();
  }
  splitter.end();
  yield* drain();
}
