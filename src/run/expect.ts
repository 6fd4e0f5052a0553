// Expectations: each selects rows of the metrics table (metric, steps, entities, variants), reduces
// each repetition's rows to one value with `agg`, takes the median over repetitions as the observed
// value, and compares. No rows is a failure that says so, never a zero.
import type { Expectation } from '../spec/schema.js';
import { selects, type Variant } from '../spec/matrix.js';
import { formatValue, type MetricRow } from '../model/metrics.js';
import type { ExpectationResult } from '../model/summary.js';

export function aggregate(values: readonly number[], agg: Expectation['agg']): number {
  if (agg === 'count') return values.length;
  const sorted = [...values].sort((a, b) => a - b);
  switch (agg) {
    case 'min':
      return sorted[0]!;
    case 'max':
      return sorted[sorted.length - 1]!;
    case 'sum':
      return values.reduce((a, b) => a + b, 0);
    case 'mean':
      return values.reduce((a, b) => a + b, 0) / values.length;
    case 'last':
      return values[values.length - 1]!;
    case 'median':
      return median(sorted);
  }
}

export function median(sorted: readonly number[]): number {
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
}

export function compare(observed: number, op: Expectation['op'], value: number | [number, number]): boolean {
  const v = value as number;
  switch (op) {
    case 'eq':
      return observed === v;
    case 'ne':
      return observed !== v;
    case 'lt':
      return observed < v;
    case 'le':
      return observed <= v;
    case 'gt':
      return observed > v;
    case 'ge':
      return observed >= v;
    case 'between': {
      const [lo, hi] = value as [number, number];
      return observed >= lo && observed <= hi;
    }
  }
}

const OP_TEXT = { eq: '==', ne: '!=', lt: '<', le: '<=', gt: '>', ge: '>=', between: 'in' } as const;

export function describeClaim(e: Expectation): string {
  const value = Array.isArray(e.value) ? `[${e.value.join(', ')}]` : String(e.value);
  const entity = e.entity ? ` [${e.entity.join(',')}]` : '';
  const step = e.step ? ` @ ${e.step.join(',')}` : '';
  return `${e.agg} ${e.metric}${entity}${step} ${OP_TEXT[e.op]} ${value}`;
}

/** Expectations that apply to this variant (their `when` selects it). */
export function applicable(expectations: readonly Expectation[], variant: Variant): Expectation[] {
  return expectations.filter((e) => selects(e.when, variant));
}

export function evaluate(e: Expectation, rows: readonly MetricRow[]): ExpectationResult {
  const matched = rows.filter((r) => r.metric === e.metric && (!e.step || e.step.includes(r.step)) && (!e.entity || e.entity.includes(r.entity)));
  const claim = describeClaim(e);
  if (matched.length === 0) {
    return { description: e.description, metric: e.metric, claim, passed: false, observed: null, perRepetition: [], rows: 0, note: `no ${e.metric} data was collected for this selection` };
  }
  const byRep = new Map<number, number[]>();
  for (const r of matched) byRep.set(r.repetition, [...(byRep.get(r.repetition) ?? []), r.value]);
  const perRepetition = [...byRep.entries()].sort(([a], [b]) => a - b).map(([, values]) => Number(formatValue(aggregate(values, e.agg))));
  const observed = Number(formatValue(median([...perRepetition].sort((a, b) => a - b))));
  return { description: e.description, metric: e.metric, claim, passed: compare(observed, e.op, e.value), observed, perRepetition, rows: matched.length };
}
