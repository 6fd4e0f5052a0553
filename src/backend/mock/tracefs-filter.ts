// Event filters of the simulated tracefs: the subset of the kernel's filter grammar kvmlab writes
// (field comparisons, globs with ~, && and ||), parsed against the event's format file and refused
// where the kernel would refuse them, then evaluated per simulated event.
import type { EventFormat } from '../../formats/tracefs/event-format.js';
import { globMatch } from '../../util/glob.js';

export type Value = string | number;
export type FilterNode = { op: '&&' | '||'; l: FilterNode; r: FilterNode } | { field: string; cmp: string; value: Value };

export function parseFilter(text: string, format: EventFormat): FilterNode | undefined {
  const src = text.trim();
  if (src === '' || src === '0') return undefined;
  const toks: string[] = [];
  const re = /\s*(\|\||&&|==|!=|<=|>=|[<>~()]|"[^"]*"|[A-Za-z_][A-Za-z0-9_]*|0x[0-9a-fA-F]+|-?\d+|[^\s])/y;
  let m: RegExpExecArray | null;
  while (re.lastIndex < src.length && (m = re.exec(src))) toks.push(m[1]!);
  if (re.lastIndex < src.length && src.slice(re.lastIndex).trim() !== '') throw new Error('bad token');
  const fields = new Map(format.fields.map((f) => [f.name, f]));
  let i = 0;
  // operands joined by `op`, left to right: || of &&-chains of primaries, as the kernel binds them
  const chain = (op: '&&' | '||', operand: () => FilterNode) => (): FilterNode => {
    let l = operand();
    while (toks[i] === op) {
      i++;
      l = { op, l, r: operand() };
    }
    return l;
  };
  const expr = (): FilterNode => chain('||', chain('&&', primary))();
  const primary = (): FilterNode => {
    if (toks[i] === '(') {
      i++;
      const e = expr();
      if (toks[i++] !== ')') throw new Error('missing )');
      return e;
    }
    const field = toks[i++];
    const cmp = toks[i++];
    const raw = toks[i++];
    if (field === undefined || cmp === undefined || raw === undefined) throw new Error('incomplete predicate');
    const special = ['CPU', 'cpu', 'COMM', 'comm'].includes(field);
    const f = fields.get(field);
    if (!f && !special) throw new Error(`no field ${field}`);
    if (!['==', '!=', '<', '<=', '>', '>=', '~'].includes(cmp)) throw new Error(`bad operator ${cmp}`);
    const isString = f ? f.type === 'char' || f.isArray === true : field === 'COMM' || field === 'comm';
    if (isString && !['==', '!=', '~'].includes(cmp)) throw new Error('bad string operator');
    if (!isString && cmp === '~') throw new Error('~ on a number');
    const value: Value = isString ? raw.replace(/^"|"$/g, '') : Number(raw);
    if (!isString && !Number.isFinite(value as number)) throw new Error('not a number');
    return { field, cmp, value };
  };
  const node = expr();
  if (i !== toks.length) throw new Error('trailing tokens');
  return node;
}

export function evalFilter(n: FilterNode, get: (field: string) => Value | undefined): boolean {
  if ('op' in n) return n.op === '&&' ? evalFilter(n.l, get) && evalFilter(n.r, get) : evalFilter(n.l, get) || evalFilter(n.r, get);
  const v = get(n.field);
  if (v === undefined) return false;
  switch (n.cmp) {
    case '==':
      return v === n.value || (typeof n.value === 'number' && Number(v) === n.value);
    case '!=':
      return !(v === n.value || (typeof n.value === 'number' && Number(v) === n.value));
    case '~':
      return globMatch(String(n.value), String(v));
    case '<':
      return Number(v) < Number(n.value);
    case '<=':
      return Number(v) <= Number(n.value);
    case '>':
      return Number(v) > Number(n.value);
    default:
      return Number(v) >= Number(n.value);
  }
}
