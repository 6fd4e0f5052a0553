// Event bodies as fields, by the event's `print fmt` where it is known, else by a generic tokenizer.
import type { EventFormat } from './event-format.js';
import { DASH, isDigitCode, SP } from './trace-line.js';

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
