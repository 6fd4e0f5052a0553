// Pure parsers for tracefs: event `format` files, the text of `trace`/`trace_pipe` (default
// trace_options, with or without the record-tgid column), event bodies, and `per_cpu/cpuN/stats`.
// Tested on text captured from a real host (test/fixtures/tracefs/).
//
// The line parser is a hand-written scanner (no regular expressions on the hot path) because the
// collector feeds it traces of hundreds of MB; countTraceEvents() aggregates without keeping lines.

export class TraceParseError extends Error {
  constructor(what: string, problem: string, text?: string) {
    super(`cannot parse ${what}: ${problem}${text === undefined ? '' : ` (input: ${JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text)})`}`);
    this.name = 'TraceParseError';
  }
}

// ---------------------------------------------------------------------------------------------
// events/<sys>/<event>/format

export interface EventField {
  name: string;
  /** C type as declared, without the name and array suffix ("unsigned int", "char", "const char *", "__data_loc char[]"). */
  type: string;
  offset: number;
  size: number;
  signed: boolean;
  /** True for the `common_*` header fields every event carries (the block before the blank line). */
  common: boolean;
  /** Fixed (`char comm[16]`), flexible (`char buf[]`) or dynamic (`__data_loc char[] name`) array. */
  isArray?: boolean;
  /** Element count of a fixed array (`16` for `char comm[16]`). */
  arrayLength?: number;
  /** `__data_loc` / `__rel_loc` field: the record holds offset/length of data stored after it. */
  isDynamic?: boolean;
}

export interface EventFormat {
  name: string;
  id: number;
  fields: EventField[];
  /** The whole `print fmt:` text: the C format literal followed by its arguments. */
  printFmt: string;
  /** The C format string itself, with escapes decoded and adjacent literals joined. */
  printFmtTemplate: string;
  /** The argument expressions after the format string, split at top-level commas. */
  printArgs: string[];
}

/** Parse an `events/<sys>/<event>/format` file. */
export function parseEventFormat(text: string): EventFormat {
  const what = 'event format';
  let name: string | undefined;
  let id: number | undefined;
  let printFmt: string | undefined;
  const fields: EventField[] = [];
  let inFormat = false;
  let common = true;
  for (const line of text.split('\n')) {
    if (line.startsWith('name:')) {
      name = line.slice(5).trim();
    } else if (line.startsWith('ID:')) {
      const s = line.slice(3).trim();
      if (!/^\d+$/.test(s)) throw new TraceParseError(what, `ID is not a number: ${JSON.stringify(s)}`);
      id = Number(s);
    } else if (line.startsWith('format:')) {
      inFormat = true;
    } else if (line.startsWith('print fmt:')) {
      printFmt = line.slice('print fmt:'.length).trim();
      inFormat = false;
    } else if (inFormat) {
      if (line.trim() === '') {
        // The kernel separates the common_* header fields from the event's own with a blank line.
        if (fields.length > 0) common = false;
        continue;
      }
      fields.push(parseFieldLine(line, common));
    } else if (line.trim() !== '') {
      throw new TraceParseError(what, `unexpected line ${JSON.stringify(line)}`);
    }
  }
  if (name === undefined || name === '') throw new TraceParseError(what, 'no "name:" line', text);
  if (id === undefined) throw new TraceParseError(what, 'no "ID:" line', text);
  if (printFmt === undefined) throw new TraceParseError(what, 'no "print fmt:" line', text);
  const { template, args } = splitPrintFmt(printFmt);
  return { name, id, fields, printFmt, printFmtTemplate: template, printArgs: args };
}

function parseFieldLine(line: string, commonBlock: boolean): EventField {
  const what = 'event format field';
  const attrs = new Map<string, string>();
  for (const part of line.split(';')) {
    const p = part.trim();
    if (p === '') continue;
    const colon = p.indexOf(':');
    if (colon <= 0) throw new TraceParseError(what, `attribute without "key:" in ${JSON.stringify(line)}`);
    attrs.set(p.slice(0, colon), p.slice(colon + 1).trim());
  }
  const decl = attrs.get('field');
  const offset = attrs.get('offset');
  const size = attrs.get('size');
  if (decl === undefined || offset === undefined || size === undefined || !/^\d+$/.test(offset) || !/^\d+$/.test(size)) {
    throw new TraceParseError(what, 'expected "field:TYPE NAME; offset:N; size:N;"', line);
  }
  // The name is the last identifier, optionally followed by an array suffix: "char prev_comm[16]",
  // "char buf[]", "const char * s", "__data_loc char[] name".
  const m = /([A-Za-z_][A-Za-z0-9_]*)\s*(\[[^\]]*\])?\s*$/.exec(decl);
  if (!m || m.index === 0) throw new TraceParseError(what, `cannot split type and name in ${JSON.stringify(decl)}`, line);
  const fieldName = m[1]!;
  const suffix = m[2];
  const type = decl.slice(0, m.index).trim();
  const signedText = attrs.get('signed');
  const field: EventField = {
    name: fieldName,
    type,
    offset: Number(offset),
    size: Number(size),
    signed: signedText === '1',
    common: commonBlock || fieldName.startsWith('common_'),
  };
  const dynamic = /^__(data|rel)_loc\b/.test(type);
  if (suffix !== undefined || dynamic || type.endsWith('[]')) {
    field.isArray = true;
    const len = suffix?.slice(1, -1).trim();
    if (len !== undefined && /^\d+$/.test(len)) field.arrayLength = Number(len);
  }
  if (dynamic) field.isDynamic = true;
  return field;
}

/** Split `"fmt" "more", ARG, ARG` into the decoded format string and the top-level arguments. */
function splitPrintFmt(printFmt: string): { template: string; args: string[] } {
  let i = 0;
  const n = printFmt.length;
  let template = '';
  let sawLiteral = false;
  for (;;) {
    while (i < n && (printFmt[i] === ' ' || printFmt[i] === '\t')) i++;
    if (printFmt[i] !== '"') break;
    sawLiteral = true;
    i++;
    while (i < n && printFmt[i] !== '"') {
      const c = printFmt[i]!;
      if (c === '\\' && i + 1 < n) {
        const e = printFmt[i + 1]!;
        template += e === 'n' ? '\n' : e === 't' ? '\t' : e;
        i += 2;
      } else {
        template += c;
        i++;
      }
    }
    if (i >= n) throw new TraceParseError('print fmt', 'unterminated string literal', printFmt);
    i++; // closing quote
  }
  if (!sawLiteral) throw new TraceParseError('print fmt', 'does not start with a string literal', printFmt);
  const args: string[] = [];
  const rest = printFmt.slice(i).trim();
  if (rest !== '') {
    if (rest[0] !== ',') throw new TraceParseError('print fmt', 'expected "," after the format string', printFmt);
    let depth = 0;
    let start = 1;
    let inStr = false;
    for (let k = 1; k < rest.length; k++) {
      const c = rest[k]!;
      if (inStr) {
        if (c === '\\') k++;
        else if (c === '"') inStr = false;
      } else if (c === '"') inStr = true;
      else if (c === '(' || c === '{' || c === '[') depth++;
      else if (c === ')' || c === '}' || c === ']') depth--;
      else if (c === ',' && depth === 0) {
        args.push(rest.slice(start, k).trim());
        start = k + 1;
      }
    }
    args.push(rest.slice(start).trim());
  }
  return { template, args };
}

// ---------------------------------------------------------------------------------------------
// trace / trace_pipe text lines

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

const SP = 32;
const TAB = 9;
const DASH = 45;
const DOT = 46;
const COLON = 58;
const LBRACK = 91;
const RBRACK = 93;
const LPAREN = 40;
const RPAREN = 41;
const HASH = 35;

function isDigitCode(c: number): boolean {
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
function scanTraceLine(line: string): TraceLine | null | undefined {
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

// ---------------------------------------------------------------------------------------------
// Event bodies

export type EventFields = Record<string, string | number>;

/**
 * Turn an event body into fields.
 *
 * With the event's format, the body is matched against the `print fmt` template: each conversion's
 * text is stored under the label printed before it ("vcpu 0" → vcpu, "prev_pid=5" → prev_pid,
 * "rip 0x…" → rip) and, when the argument is `REC->field` (or an expression over exactly one field),
 * also under that field's name (vcpu_id, guest_rip) unless that key is taken; conversions with
 * neither get `argN` (N = conversion index). Adjacent conversions with no text between ("%s%s")
 * are split after a number, otherwise the first takes the whole text.
 *
 * Without a format, or if the body does not fit it (format from another kernel), a generic
 * tokenizer handles `key=value` bodies (values may contain spaces: "prev_comm=CPU 0/KVM") and
 * `key value` bodies ("vcpu 0 reason HLT rip 0x…"), preferring the format's field names as keys.
 *
 * Values: %d/%i/%u conversions (and bare decimal tokens) become numbers when exactly representable,
 * else decimal strings; %x conversions become "0x…" strings (64-bit addresses do not fit a double);
 * everything else stays text, trimmed. ftrace `print` (trace_marker) bodies give `{ buf: body }`.
 */
export function parseEventFields(body: string, format?: EventFormat): EventFields {
  if (format === undefined) return parseGenericFields(body, undefined);
  if (format.name === 'print') return { buf: body };
  let compiled = compiledCache.get(format);
  if (compiled === undefined) {
    compiled = compileBodyTemplate(format);
    compiledCache.set(format, compiled);
  }
  return matchTemplate(body, compiled) ?? parseGenericFields(body, compiled.fieldNames);
}

type ConvKind = 'int' | 'hex' | 'text';

interface Conversion {
  kind: ConvKind;
  /** Keys this conversion's value is stored under, label first. */
  keys: string[];
}

type Segment = { lit: string } | { conv: Conversion };

interface CompiledTemplate {
  segments: Segment[];
  fieldNames: Set<string>;
}

const compiledCache = new WeakMap<EventFormat, CompiledTemplate>();

const IDENT_LABEL = /(?:^|[^A-Za-z0-9_])([A-Za-z_][A-Za-z0-9_]*)(?:=|: ?| )$/;

function compileBodyTemplate(format: EventFormat): CompiledTemplate {
  const fieldNames = new Set(format.fields.filter((f) => !f.common).map((f) => f.name));
  const t = format.printFmtTemplate;
  const segments: Segment[] = [];
  let lit = '';
  let argIndex = 0;
  let convIndex = 0;
  for (let i = 0; i < t.length; ) {
    const c = t[i]!;
    if (c !== '%') {
      lit += c;
      i++;
      continue;
    }
    if (t[i + 1] === '%') {
      lit += '%';
      i += 2;
      continue;
    }
    // %[flags][width][.prec][length]conv — '*' width/precision consumes an argument.
    let k = i + 1;
    while (k < t.length && '-+ #0'.includes(t[k]!)) k++;
    if (t[k] === '*') {
      argIndex++;
      k++;
    } else while (k < t.length && /[0-9]/.test(t[k]!)) k++;
    if (t[k] === '.') {
      k++;
      if (t[k] === '*') {
        argIndex++;
        k++;
      } else while (k < t.length && /[0-9]/.test(t[k]!)) k++;
    }
    while (k < t.length && 'hlLqjzt'.includes(t[k]!)) k++;
    const conv = t[k] ?? '';
    k++;
    if (conv === 'p') while (k < t.length && /[A-Za-z0-9]/.test(t[k]!)) k++; // %ps, %pI4, %pS …
    const kind: ConvKind = 'diu'.includes(conv) && conv !== '' ? 'int' : 'xX'.includes(conv) && conv !== '' ? 'hex' : 'text';

    // Label: the word printed just before the value ("vcpu ", "prev_pid=", "gsi: 0x").
    const before = lit.endsWith('0x') ? lit.slice(0, -2) : lit;
    const labelMatch = IDENT_LABEL.exec(before);
    const keys: string[] = [];
    if (labelMatch) keys.push(labelMatch[1]!);
    const field = argField(format.printArgs[argIndex], fieldNames);
    if (field !== undefined && !keys.includes(field)) keys.push(field);
    if (keys.length === 0) keys.push(`arg${convIndex}`);
    if (lit !== '') segments.push({ lit });
    lit = '';
    segments.push({ conv: { kind, keys } });
    argIndex++;
    convIndex++;
    i = k;
  }
  if (lit !== '') segments.push({ lit });
  return { segments, fieldNames };
}

/** The field an argument expression shows: `REC->x`, `__get_str(x)`, or the one field a longer expression reads. */
function argField(arg: string | undefined, fieldNames: Set<string>): string | undefined {
  if (arg === undefined) return undefined;
  const refs = new Set<string>();
  for (const m of arg.matchAll(/REC->([A-Za-z_][A-Za-z0-9_]*)|__get_(?:str|dynamic_array|bitmask|rel_str|sockaddr)\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)/g)) {
    refs.add((m[1] ?? m[2])!);
  }
  if (refs.size !== 1) return undefined;
  const [only] = refs;
  return only !== undefined && (fieldNames.has(only) || fieldNames.size === 0) ? only : undefined;
}

function matchTemplate(body: string, tpl: CompiledTemplate): EventFields | undefined {
  const out: EventFields = {};
  const segs = tpl.segments;
  let pos = 0;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    if ('lit' in seg) {
      if (!body.startsWith(seg.lit, pos)) return undefined;
      pos += seg.lit.length;
      continue;
    }
    const next = segs[i + 1];
    let end: number;
    if (next === undefined) {
      end = body.length;
    } else if ('lit' in next) {
      // The value runs to the next occurrence of the following literal; the last literal of the
      // template must end the body, so search for it from the end.
      end = i + 2 === segs.length ? body.length - next.lit.length : body.indexOf(next.lit, pos);
      if (end < pos) return undefined;
    } else if (seg.conv.kind !== 'text') {
      end = numberEnd(body, pos, seg.conv.kind);
    } else {
      // "%s%s…" with nothing between: the first takes all up to the next literal; the rest get "".
      let j = i + 1;
      while (j < segs.length && !('lit' in segs[j]!)) j++;
      const after = segs[j];
      const afterLit = after !== undefined && 'lit' in after ? after.lit : '';
      end = after === undefined ? body.length : j + 1 === segs.length ? body.length - afterLit.length : body.indexOf(afterLit, pos);
      if (end < pos) return undefined;
      store(out, seg.conv, body.slice(pos, end));
      pos = end;
      i = j - 1; // the absorbed conversions get no key of their own
      continue;
    }
    store(out, seg.conv, body.slice(pos, end));
    pos = end;
  }
  return pos === body.length ? out : undefined;
}

function numberEnd(s: string, from: number, kind: ConvKind): number {
  let k = from;
  while (k < s.length && s.charCodeAt(k) === SP) k++;
  if (s.charCodeAt(k) === DASH) k++;
  while (k < s.length) {
    const c = s.charCodeAt(k);
    const ok = isDigitCode(c) || (kind === 'hex' && ((c >= 97 && c <= 102) || (c >= 65 && c <= 70)));
    if (!ok) break;
    k++;
  }
  return k;
}

function store(out: EventFields, conv: Conversion, raw: string): void {
  const text = raw.trim();
  let value: string | number = text;
  if (conv.kind === 'int') value = decimalValue(text);
  else if (conv.kind === 'hex' && /^[0-9a-fA-F]+$/.test(text)) value = `0x${text}`;
  for (const key of conv.keys) if (!(key in out)) out[key] = value;
}

function decimalValue(text: string): string | number {
  if (!/^-?\d+$/.test(text)) return text;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}

const KEY_EQ = /^[[(]?([A-Za-z_][A-Za-z0-9_.]*)=(.*?)[\])]?$/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PUNCT_ONLY = /^[^A-Za-z0-9_]+$/;

/**
 * Generic body tokenizer (no format, or the format did not fit):
 * - `key=value` style when any token looks like `key=`: a value runs until the next `key=` token,
 *   so "prev_comm=CPU 0/KVM prev_pid=7052" keeps the space; pure punctuation ("==>") is dropped;
 * - otherwise `key value` pairs: if the tokens (trailing ',' or ':' dropped) alternate identifier,
 *   value to the end, all are paired; else a key is an identifier followed by a value-looking token
 *   (a number, 0x…, an UPPER_CASE symbol) — or by anything when the key is one of the format's
 *   field names. Unpaired words are skipped.
 */
function parseGenericFields(body: string, knownKeys: Set<string> | undefined): EventFields {
  const tokens = body.split(' ').filter((t) => t !== '');
  const out: EventFields = {};
  if (tokens.some((t) => KEY_EQ.test(t))) {
    let key: string | undefined;
    let parts: string[] = [];
    const flush = (): void => {
      if (key !== undefined && !(key in out)) out[key] = decimalValue(parts.join(' '));
    };
    for (const tok of tokens) {
      const m = KEY_EQ.exec(tok);
      if (m) {
        flush();
        key = m[1]!;
        parts = m[2] === '' ? [] : [m[2]!];
      } else if (!PUNCT_ONLY.test(tok)) {
        parts.push(tok);
      }
    }
    flush();
    return out;
  }
  const clean = tokens.map((t) => t.replace(/[,:]$/, ''));
  // "vcpu 1 reason hlt rip 0xfff0 …": an even number of tokens with an identifier at every even
  // position is read as pairs throughout, whatever the values look like.
  const allPairs = clean.length % 2 === 0 && clean.every((t, i) => i % 2 === 1 || IDENT.test(t));
  for (let i = 0; i + 1 < clean.length; ) {
    const k = clean[i]!;
    const v = clean[i + 1]!;
    if (IDENT.test(k) && !(k in out) && (allPairs || knownKeys?.has(k) === true || looksLikeValue(v))) {
      out[k] = decimalValue(v);
      i += 2;
    } else {
      i++;
    }
  }
  return out;
}

function looksLikeValue(tok: string): boolean {
  return /^-?\d/.test(tok) || /^[A-Z][A-Z0-9_]*$/.test(tok) || /^\(?-?\d+\)?$/.test(tok);
}

// ---------------------------------------------------------------------------------------------
// per_cpu/cpuN/stats

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

// ---------------------------------------------------------------------------------------------
// Streaming: whole traces without holding them in memory

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
