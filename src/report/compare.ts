// Do two variants of a run (or one variant across two runs) differ? Per chosen metric each
// repetition is reduced to one value; the two sides' values get a median and spread, a two-sided
// permutation test on the difference of means, Cliff's delta as the effect size, and a verdict that
// says "no difference shown" whenever the data cannot tell.
import { InputError } from '../errors.js';
import { describeSelection, expectationSelections, perRepetition, type Selection } from '../model/select.js';
import { expectationsOf, type LoadedResults } from './load.js';
import { cliffsDelta, cliffsMagnitude, permutationTest, repetitionsNeeded, spread, type PermutationResult, type Spread } from './stats.js';
import { fmtNum, formatTable } from './table.js';

export const ALPHA = 0.05;

export interface SideResult {
  label: string;
  values: number[];
  stats: Spread;
}

export interface MetricComparison {
  selection: Selection;
  a: SideResult;
  b: SideResult;
  test: PermutationResult | undefined;
  /** Cliff's delta of b relative to a. */
  delta: number;
  differs: boolean;
  verdict: string;
}

export function compareValues(selection: Selection, a: SideResult, b: SideResult): MetricComparison {
  const base = { selection, a, b, delta: cliffsDelta(a.values, b.values), test: undefined, differs: false };
  if (a.values.length === 0 || b.values.length === 0) {
    const empty = [a, b].filter((s) => s.values.length === 0).map((s) => s.label);
    return { ...base, verdict: `cannot tell: no ${selection.metric} data for ${empty.join(' and ')}` };
  }
  const need = repetitionsNeeded(ALPHA);
  if (a.values.length < 2 || b.values.length < 2) {
    return { ...base, verdict: `no difference shown: too few samples (${a.values.length} vs ${b.values.length} repetitions) to ever reach p<${ALPHA}; rerun with --repeat ${need} or more` };
  }
  const test = permutationTest(a.values, b.values);
  const effect = `Cliff's delta ${fmtSigned(base.delta, 2)} (${cliffsMagnitude(base.delta)})`;
  if (test.p < ALPHA) return { ...base, test, differs: true, verdict: `differs (p=${fmtP(test.p)}, effect ${effect})` };
  if (test.minP >= ALPHA) {
    return {
      ...base,
      test,
      verdict: `no difference shown (p=${fmtP(test.p)}); too few samples to ever reach significance: with ${a.values.length} vs ${b.values.length} repetitions the smallest possible p is ${fmtP(test.minP)}; rerun with --repeat ${need} or more`,
    };
  }
  return { ...base, test, verdict: `no difference shown (p=${fmtP(test.p)}, effect ${effect})` };
}

export function fmtP(p: number): string {
  if (p >= 0.01) return String(Number(p.toFixed(3)));
  return p.toPrecision(2);
}

function fmtSigned(v: number, digits: number): string {
  return `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;
}

export interface CompareOptions {
  metrics?: string[];
  /**
   * One dir: "A,B". Two dirs: "A" or "A,B" (A in the first run, B in the second). Variant ids
   * contain commas themselves, so the split is the one that names existing variants.
   */
  variants?: string;
  step?: string[];
  entity?: string[];
}

export interface ComparisonReport {
  title: string;
  aLabel: string;
  bLabel: string;
  simulated: boolean;
  comparisons: MetricComparison[];
  notes: string[];
}

function pickVariant(r: LoadedResults, id: string | undefined, what: string): string {
  const ids = r.summary.variants.map((v) => v.id);
  if (id === undefined) return ids[0]!;
  if (!ids.includes(id)) throw new InputError(`${what}: no variant "${id}" in ${r.dir}; its variants are: ${ids.join(', ')}`);
  return id;
}

/** Split "A,B" where A names a variant of `left` and B one of `right` (ids may contain commas). */
export function splitVariants(raw: string, left: readonly string[], right: readonly string[], allowOne: boolean): string[] {
  if (allowOne && left.includes(raw)) return [raw];
  const splits: string[][] = [];
  for (let i = raw.indexOf(','); i >= 0; i = raw.indexOf(',', i + 1)) {
    const a = raw.slice(0, i).trim();
    const b = raw.slice(i + 1).trim();
    if (left.includes(a) && right.includes(b)) splits.push([a, b]);
  }
  if (splits.length === 1) return splits[0]!;
  if (splits.length > 1) throw new InputError(`--variants ${raw}: ambiguous; it splits into two variants in ${splits.length} ways`);
  const known = [...new Set([...left, ...right])];
  throw new InputError(`--variants ${raw}: ${allowOne ? 'give a variant, or two as A,B' : 'give two variants as A,B'}; the variants are: ${known.join(' | ')}`);
}

export function compareResults(left: LoadedResults, right: LoadedResults | undefined, opts: CompareOptions = {}): ComparisonReport {
  const notes: string[] = [];
  const rightIds = (right ?? left).summary.variants.map((v) => v.id);
  const picked = opts.variants === undefined ? undefined : splitVariants(opts.variants, left.summary.variants.map((v) => v.id), rightIds, right !== undefined);
  let aVar: string;
  let bVar: string;
  const ids = left.summary.variants.map((v) => v.id);
  if (right) {
    aVar = pickVariant(left, picked?.[0], '--variants');
    bVar = pickVariant(right, picked?.[1] ?? picked?.[0] ?? (rightIds.includes(aVar) ? aVar : undefined), '--variants');
    if (right.summary.experiment !== left.summary.experiment) notes.push(`the runs are of different experiments (${left.summary.experiment} vs ${right.summary.experiment})`);
    if (right.summary.simulated !== left.summary.simulated) notes.push('one run is simulated (mock backend) and the other is not');
  } else {
    if (!picked && ids.length < 2) throw new InputError(`${left.dir}: the run has one variant (${ids[0]}); compare it with another run: kvmlab compare ${left.dir} OTHER_DIR`);
    aVar = pickVariant(left, picked?.[0] ?? ids[0], '--variants');
    bVar = pickVariant(left, picked?.[1] ?? ids[1], '--variants');
  }
  const rightRes = right ?? left;
  const aLabel = right ? `${left.dir}:${aVar}` : aVar;
  const bLabel = right ? `${rightRes.dir}:${bVar}` : bVar;

  let selections: Selection[];
  if (opts.metrics?.length) {
    selections = opts.metrics.map((metric) => ({ metric, step: opts.step, entity: opts.entity, agg: 'mean' as const }));
    notes.push('per repetition each metric is the mean of its matching rows (over steps and entities)');
  } else {
    const fromExpect = expectationSelections([...expectationsOf(left), ...(right ? expectationsOf(right) : [])]).map((s) => ({
      ...s,
      step: opts.step ?? s.step,
      entity: opts.entity ?? s.entity,
    }));
    selections = fromExpect.length ? fromExpect : [{ metric: 'vcpu.cpu_pct', step: opts.step, entity: opts.entity, agg: 'mean' }];
    if (!fromExpect.length) notes.push('the experiment names no metrics in expectations; comparing vcpu.cpu_pct (choose with --metric)');
  }
  for (const s of selections) {
    const known = left.rows.some((r) => r.metric === s.metric) || rightRes.rows.some((r) => r.metric === s.metric);
    if (!known) {
      const metrics = [...new Set([...left.rows, ...rightRes.rows].map((r) => r.metric))].sort();
      throw new InputError(`--metric ${s.metric}: no such metric in the results; metrics present: ${metrics.join(', ')}`);
    }
  }
  const comparisons = selections.map((s) => {
    const av = [...perRepetition(left.rows, aVar, s).values()];
    const bv = [...perRepetition(rightRes.rows, bVar, s).values()];
    return compareValues(s, { label: aLabel, values: av, stats: spread(av) }, { label: bLabel, values: bv, stats: spread(bv) });
  });
  return {
    title: right ? `${left.summary.experiment}: ${aVar} in ${left.dir} vs ${bVar} in ${rightRes.dir}` : `${left.summary.experiment}: ${aVar} vs ${bVar} (${left.dir})`,
    aLabel,
    bLabel,
    simulated: left.summary.simulated || rightRes.summary.simulated,
    comparisons,
    notes,
  };
}

/** `compare --json`: the comparison as one JSON document (a side without data has null statistics). */
export function comparisonJson(r: ComparisonReport) {
  const side = (s: SideResult) => ({ label: s.label, values: s.values, ...s.stats });
  return {
    title: r.title,
    a: r.aLabel,
    b: r.bLabel,
    simulated: r.simulated,
    alpha: ALPHA,
    comparisons: r.comparisons.map((c) => ({
      metric: describeSelection(c.selection),
      selection: c.selection,
      a: side(c.a),
      b: side(c.b),
      test: c.test ?? null,
      cliffsDelta: c.delta,
      effect: cliffsMagnitude(c.delta),
      differs: c.differs,
      verdict: c.verdict,
    })),
    notes: r.notes,
  };
}

export function formatComparison(r: ComparisonReport): string {
  const out = [`compare ${r.title}${r.simulated ? ' — SIMULATED (mock backend)' : ''}`, ''];
  for (const c of r.comparisons) {
    out.push(describeSelection(c.selection));
    const row = (s: SideResult) => [s.label, String(s.stats.n), fmtNum(s.stats.median), `${fmtNum(s.stats.min)}–${fmtNum(s.stats.max)}`, fmtNum(s.stats.iqr), s.values.map(fmtNum).join(' ')];
    out.push(formatTable(['side', 'n', 'median', 'min–max', 'IQR', 'per repetition'], [row(c.a), row(c.b)]).replace(/^/gm, '  '));
    if (c.a.values.length && c.b.values.length) {
      const d = c.b.stats.median - c.a.stats.median;
      const rel = c.a.stats.median !== 0 ? ` (${fmtSigned((d / Math.abs(c.a.stats.median)) * 100, 1)}%)` : '';
      out.push(`  median difference (B - A): ${d >= 0 ? '+' : ''}${fmtNum(d)}${rel}`);
    }
    if (c.test) out.push(`  permutation test on the difference of means: ${c.test.exact ? `exact over all ${c.test.arrangements} arrangements` : `${c.test.arrangements} seeded random permutations`}`);
    out.push(`  => ${c.verdict}`, '');
  }
  for (const n of r.notes) out.push(`note: ${n}`);
  out.push(`note: two-sided, alpha ${ALPHA}; effect size is Cliff's delta of B relative to A (|d| < 0.147 negligible, < 0.33 small, < 0.474 medium, else large)`);
  return `${out.join('\n')}\n`;
}

