// Which rows of the metrics table a claim (or a comparison, a plot, a key metric) reads, and how one
// repetition's rows become one value: the one owner of selection and aggregation, for run/expect,
// report/compare, report/plots and report/report alike. Non-finite values are left out everywhere.
import type { MetricRow } from './metrics.js';

/** How a repetition's rows become one value (an expectation's `agg`). */
export const AGGS = ['median', 'mean', 'min', 'max', 'sum', 'last', 'count'] as const;
export type Agg = (typeof AGGS)[number];

/** Which rows count for a metric and how one repetition's rows become one value. */
export interface Selection {
  metric: string;
  step?: string[];
  entity?: string[];
  agg: Agg;
}

/** "median vcpu.cpu_pct [vcpu1] @ parked": also the selection's identity. */
export function describeSelection(s: Selection): string {
  const entity = s.entity ? ` [${s.entity.join(',')}]` : '';
  const step = s.step ? ` @ ${s.step.join(',')}` : '';
  return `${s.agg} ${s.metric}${entity}${step}`;
}

export function matches(r: MetricRow, s: Selection): boolean {
  return r.metric === s.metric && (!s.step || s.step.includes(r.step)) && (!s.entity || s.entity.includes(r.entity));
}

/** The middle of the values (the mean of the two middle ones for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

export function aggregate(values: readonly number[], agg: Agg): number {
  switch (agg) {
    case 'count':
      return values.length;
    case 'min':
      return Math.min(...values);
    case 'max':
      return Math.max(...values);
    case 'sum':
      return values.reduce((a, b) => a + b, 0);
    case 'mean':
      return values.reduce((a, b) => a + b, 0) / values.length;
    case 'last':
      return values[values.length - 1]!;
    case 'median':
      return median(values);
  }
}

/** One value per repetition, in repetition order: the selection's agg over that repetition's rows (all of one variant). */
export function repetitionValues(rows: readonly MetricRow[], s: Selection): Map<number, number> {
  const by = new Map<number, number[]>();
  for (const r of rows) {
    if (!matches(r, s) || !Number.isFinite(r.value)) continue;
    by.set(r.repetition, [...(by.get(r.repetition) ?? []), r.value]);
  }
  return new Map([...by].sort((a, b) => a[0] - b[0]).map(([rep, vs]) => [rep, aggregate(vs, s.agg)]));
}

/** repetitionValues of one variant's rows. */
export function perRepetition(rows: readonly MetricRow[], variant: string, s: Selection): Map<number, number> {
  return repetitionValues(rows.filter((r) => r.variant === variant), s);
}

/** The rows an expectation (any claim naming metric, step, entity and agg) reads and how it reduces a repetition's rows. */
export function selectionOf(e: Selection): Selection {
  return { metric: e.metric, step: e.step, entity: e.entity, agg: e.agg };
}

/** The selections named by the expectations, each once, in file order. */
export function expectationSelections(expect: readonly Selection[]): Selection[] {
  const seen = new Map<string, Selection>();
  for (const e of expect) {
    const s = selectionOf(e);
    if (!seen.has(describeSelection(s))) seen.set(describeSelection(s), s);
  }
  return [...seen.values()];
}
