// events/<sys>/<event>/format: an event's fields and its `print fmt`, as the running kernel declares
// them (fields change between kernels, so every event is read by its own format).
import { TraceParseError } from './errors.js';

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
