// Expectations: each selects rows of the metrics table (metric, steps, entities, variants), reduces
// each repetition's rows to one value with `agg`, takes the median over repetitions as the observed
// value, and compares. No rows is a failure that says so, never a zero.
import type { Expectation } from '../experiment/schema.js';
import { selects, type Variant } from '../experiment/matrix.js';
import { formatValue, type MetricRow } from '../model/metrics.js';
import { describeSelection, matches, median, repetitionValues, selectionOf } from '../model/select.js';
import type { ExpectationResult } from '../results/summary.js';

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
  return `${describeSelection(selectionOf(e))} ${OP_TEXT[e.op]} ${value}`;
}

/** Expectations that apply to this variant (their `when` selects it). */
export function applicable(expectations: readonly Expectation[], variant: Variant): Expectation[] {
  return expectations.filter((e) => selects(e.when, variant));
}

/** The expectation over one variant's rows: each repetition reduced by its agg, then the median over repetitions. */
export function evaluate(e: Expectation, rows: readonly MetricRow[]): ExpectationResult {
  const claim = describeClaim(e);
  const selection = selectionOf(e);
  const byRep = repetitionValues(rows, selection);
  if (byRep.size === 0) {
    return { description: e.description, metric: e.metric, claim, passed: false, observed: null, perRepetition: [], rows: 0, note: `no ${e.metric} data was collected for this selection` };
  }
  const perRepetition = [...byRep.values()].map((v) => Number(formatValue(v)));
  const observed = Number(formatValue(median(perRepetition)));
  const counted = rows.filter((r) => matches(r, selection) && Number.isFinite(r.value)).length;
  return { description: e.description, metric: e.metric, claim, passed: compare(observed, e.op, e.value), observed, perRepetition, rows: counted };
}
