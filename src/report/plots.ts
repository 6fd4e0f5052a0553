// Plots as SVG: vega-lite specs compiled to vega and rendered headless by vega's View.toSVG() (no
// browser, no canvas). Three kinds: per-vCPU host CPU % over time with the step boundaries, exits
// by reason per variant (when a collector recorded any), and each metric an expectation names
// across variants with the claim's threshold. Every repetition is drawn, variants come in the order
// of summary.json (the matrix order), variant ids are never cut (one matrix axis a line), and
// threads that do the same thing each get their own row, so none hides behind another.
import type { TopLevelSpec } from 'vega-lite';
import { applicable } from '../run/expect.js';
import { isExitMetric } from '../collect/metrics.js';
import type { Expectation } from '../experiment/schema.js';
import type { Comparator } from '../model/metric-desc.js';
import { describeSelection, expectationSelections, median, perRepetition, selectionOf, type Selection } from '../model/select.js';
import { expectationsOf, type LoadedResults } from './load.js';
import { cpuSeries, repStart, thin, type CpuPoint } from './series.js';

export interface Plot {
  /** File name under plots/. */
  file: string;
  title: string;
  /** What the plot shows, in a sentence, for index.html. */
  caption: string;
  svg?: string;
  /** Why there is no plot, when there is none. */
  note?: string;
}

/** A variant id as plot text: one matrix axis a line ("a=1,b=2" -> ["a=1", "b=2"]), never cut. */
export function idLines(id: string): string[] {
  return id.split(',');
}
/** idLines as a vega expression, for axis labels drawn from the data. */
const ID_LINES_EXPR = "split(datum.label, ',')";
/** Moves a label of several lines up by half its extra lines (about 13 px a line), so it centres on its row. */
const LABEL_CENTRE_EXPR = "-(length(split(datum.label, ',')) - 1) * 6.5";

/** Threads in the order people read them: vcpu0, vcpu1, …, then the others by name. */
function byThread(a: string, b: string): number {
  const n = (e: string) => (/^vcpu\d+$/.test(e) ? Number(e.slice(4)) : Infinity);
  return n(a) - n(b) || a.localeCompare(b);
}

const round3 = (t: number) => Math.round(t * 1000) / 1000;

const CPU_PLOT_WIDTH = 720;

/**
 * Step labels sit at the top of the plot; labels of steps close together would overprint, so each
 * goes to the first of six rows (11 px apart) where the previous label has ended (widths estimated
 * at 6 px a character on the plot's x scale).
 */
export function staggerLabels(labels: { step: string; t: number; row: number }[], xs: readonly number[], width: number): void {
  const lo = xs.reduce((m, x) => Math.min(m, x), Infinity);
  const hi = xs.reduce((m, x) => Math.max(m, x), -Infinity);
  const px = (t: number) => ((t - lo) / Math.max(1e-9, hi - lo)) * width;
  const ends: number[] = [];
  for (const l of labels) {
    const x = px(l.t);
    let row = ends.findIndex((e) => e <= x);
    if (row < 0) row = ends.length < 6 ? ends.length : ends.indexOf(Math.min(...ends));
    ends[row] = x + 6 * l.step.length + 8;
    l.row = row * 11;
  }
}

const CPU_ROW_HEIGHT = 60;

/**
 * Per variant, one row per thread with every repetition as its own line (colour: repetition), the
 * step boundaries as dashed rules at their median start over the repetitions, and the step names in
 * a strip above the rows.
 */
export function cpuTimeSpec(r: LoadedResults): TopLevelSpec | undefined {
  const groups = [];
  for (const v of r.summary.variants) {
    const reps = r.reps.filter((x) => x.variant === v.id && x.samples.length > 1);
    if (!reps.length) continue;
    const points: (CpuPoint & { repetition: number })[] = [];
    const starts = new Map<string, number[]>();
    const ends: number[] = [];
    for (const rep of reps) {
      const t0 = repStart(rep) ?? rep.samples[0]!.t;
      // a point per two pixels of a line is all a line can show; more only costs rendering
      for (const p of thin(cpuSeries(rep.samples, t0), Math.floor(CPU_PLOT_WIDTH / 2))) points.push({ ...p, repetition: rep.repetition });
      for (const st of rep.steps) if (st.step !== 'teardown' && typeof st.start === 'number') starts.set(st.step, [...(starts.get(st.step) ?? []), st.start - t0]);
      const end = rep.steps.filter((st) => st.step !== 'teardown').at(-1)?.end;
      if (end !== undefined) ends.push(end - t0);
    }
    const steps = [...starts].map(([step, ts]) => ({ step, t: round3(median(ts)), row: 0 }));
    const end = ends.length ? round3(median(ends)) : undefined;
    const rules = end === undefined ? steps : [...steps, { step: 'end', t: end }];
    const xs = [...points.map((p) => p.t), ...rules.map((x) => x.t)];
    staggerLabels(steps, xs, CPU_PLOT_WIDTH);
    const x = { field: 't', type: 'quantitative', scale: { domain: [Math.min(0, ...xs), Math.max(...xs)] } };
    const ymax = points.reduce((m, p) => Math.max(m, p.pct), 100) * 1.05;
    const threads = [...new Set(points.map((p) => p.entity))].sort(byThread);
    const stepStrip = {
      width: CPU_PLOT_WIDTH,
      height: 11 * (Math.max(0, ...steps.map((st) => st.row / 11)) + 1),
      view: { stroke: null },
      data: { values: steps },
      mark: { type: 'text', align: 'left', baseline: 'top', dx: 3, fontSize: 10, color: '#444' },
      encoding: { x: { ...x, axis: null }, y: { field: 'row', type: 'quantitative', scale: null }, text: { field: 'step', type: 'nominal' } },
    };
    const rows = threads.map((thread, i) => {
      const last = i === threads.length - 1;
      return {
        width: CPU_PLOT_WIDTH,
        height: CPU_ROW_HEIGHT,
        layer: [
          { data: { values: rules }, mark: { type: 'rule', color: '#888', strokeDash: [4, 3] }, encoding: { x } },
          {
            data: { values: points.filter((p) => p.entity === thread) },
            mark: { type: 'line', interpolate: 'step-before', strokeWidth: 1.5, opacity: 0.85 },
            encoding: {
              x: { ...x, title: last ? 'seconds since the first step started' : null, axis: last ? {} : { labels: false, title: null } },
              y: { field: 'pct', type: 'quantitative', title: [thread, 'CPU %'], scale: { domain: [0, ymax] }, axis: { tickCount: 3 } },
              color: { field: 'repetition', type: 'nominal', title: 'repetition' },
            },
          },
        ],
      };
    });
    const n = reps.length;
    groups.push({ title: { text: [...idLines(v.id), `${n} repetition${n === 1 ? '' : 's'}`] }, spacing: 4, vconcat: [stepStrip, ...rows] });
  }
  if (!groups.length) return undefined;
  return { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', vconcat: groups, spacing: 24, resolve: { scale: { color: 'shared' } } } as TopLevelSpec;
}

const NOT_A_REASON = /^(vcpu\d+|pcpu\d+|cpu\d+|qemu|guest|runner|host|emulator|vm)$/;

export interface ExitBar {
  variant: string;
  reason: string;
  median: number;
  min: number;
  max: number;
}

/** Per variant and reason: per repetition the sum over steps and vCPUs, then median and range. */
export function exitBars(r: LoadedResults): ExitBar[] {
  const per = new Map<string, Map<number, number>>();
  for (const row of r.rows) {
    if (!isExitMetric(row.metric) || !Number.isFinite(row.value)) continue;
    const reason = NOT_A_REASON.test(row.entity) ? row.metric : `${row.metric} ${row.entity}`;
    const key = `${row.variant}\u0000${reason}`;
    const m = per.get(key) ?? new Map<number, number>();
    m.set(row.repetition, (m.get(row.repetition) ?? 0) + row.value);
    per.set(key, m);
  }
  const bars: ExitBar[] = [];
  for (const [key, m] of per) {
    const [variant, reason] = key.split('\u0000') as [string, string];
    const vs = [...m.values()];
    bars.push({ variant, reason, median: median(vs), min: Math.min(...vs), max: Math.max(...vs) });
  }
  // keep the 30 reasons with the largest counts
  const top = new Map<string, number>();
  for (const b of bars) top.set(b.reason, Math.max(top.get(b.reason) ?? 0, b.median));
  const keep = new Set([...top].sort((a, b) => b[1] - a[1]).slice(0, 30).map(([k]) => k));
  return bars.filter((b) => keep.has(b.reason));
}

export function exitsSpec(bars: ExitBar[], order: readonly string[]): TopLevelSpec {
  const reasons = new Set(bars.map((b) => b.reason)).size;
  const ids = order.filter((id) => bars.some((b) => b.variant === id));
  const variants = ids.length;
  const variant = { field: 'variant', type: 'nominal', sort: ids };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'exits by reason (median over repetitions; line: min–max)',
    width: 560,
    height: Math.max(120, reasons * variants * 14),
    data: { values: bars },
    layer: [
      {
        mark: 'bar',
        encoding: {
          y: { field: 'reason', type: 'nominal', title: null, sort: { field: 'median', op: 'max', order: 'descending' }, axis: { labelLimit: 320 } },
          yOffset: variant,
          x: { field: 'median', type: 'quantitative', title: 'count per repetition' },
          color: { ...variant, title: 'variant', legend: { labelLimit: 0, labelExpr: ID_LINES_EXPR } },
        },
      },
      {
        mark: { type: 'rule', color: 'black' },
        encoding: { y: { field: 'reason', type: 'nominal', sort: { field: 'median', op: 'max', order: 'descending' } }, yOffset: variant, x: { field: 'min', type: 'quantitative' }, x2: { field: 'max' } },
      },
    ],
  } as TopLevelSpec;
}

export interface MetricPoint {
  selection: string;
  variant: string;
  repetition: number;
  value: number;
}

export function metricPoints(r: LoadedResults, selections: readonly Selection[]): MetricPoint[] {
  const out: MetricPoint[] = [];
  for (const s of selections) {
    for (const v of r.summary.variants) {
      for (const [repetition, value] of perRepetition(r.rows, v.id, s)) out.push({ selection: describeSelection(s), variant: v.id, repetition, value });
    }
  }
  return out;
}

/** A claim's threshold on one variant's row: a value (a rule) or, for `between`, a band. */
export interface Threshold {
  selection: string;
  variant: string;
  /** e.g. "≥ 90", "in [1, 5]" */
  label: string;
  value?: number;
  lo?: number;
  hi?: number;
}

const OP_GLYPH: Record<Exclude<Comparator, 'between'>, string> = { eq: '=', ne: '≠', lt: '<', le: '≤', gt: '>', ge: '≥' };

function threshold(e: Expectation, variant: string): Threshold {
  const selection = describeSelection(selectionOf(e));
  if (Array.isArray(e.value)) return { selection, variant, label: `in [${e.value.join(', ')}]`, lo: e.value[0], hi: e.value[1] };
  return { selection, variant, label: `${OP_GLYPH[e.op as Exclude<Comparator, 'between'>]} ${e.value}`, value: e.value };
}

/** Every expectation's threshold on every variant it applies to. */
export function thresholds(r: LoadedResults): Threshold[] {
  const expect = expectationsOf(r);
  return r.summary.variants.flatMap((v) => applicable(expect, v).map((e) => threshold(e, v.id)));
}

/**
 * One panel per selection: a row per variant in `order`, a point per repetition (each repetition on
 * its own line within the row, so equal values do not hide each other), a black tick at the median,
 * and the claim in red: a rule at its value, or a band for `between`, labelled with the comparison.
 */
export function metricsSpec(points: MetricPoint[], selections: readonly Selection[], limits: readonly Threshold[], order: readonly string[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    vconcat: selections.map((s) => {
      const title = describeSelection(s);
      const mine = points.filter((p) => p.selection === title);
      const ids = order.filter((id) => mine.some((p) => p.variant === id));
      const claims = limits.filter((t) => t.selection === title && ids.includes(t.variant));
      const reps = Math.max(1, ...ids.map((id) => mine.filter((p) => p.variant === id).length));
      const lines = Math.max(1, ...ids.map((id) => idLines(id).length));
      const y = { field: 'variant', type: 'nominal', title: null, scale: { type: 'band', domain: ids, paddingInner: 0.25 }, axis: { labelExpr: ID_LINES_EXPR, labelLimit: 0, labelOffset: { expr: LABEL_CENTRE_EXPR } } };
      const x = { type: 'quantitative', title: s.metric, scale: { zero: false } };
      return {
        title: `${title} — points: repetitions; tick: median; red: the claim`,
        width: 520,
        height: ids.length * Math.max(30, 8 * reps, 14 * lines),
        layer: [
          { data: { values: claims.filter((t) => t.lo !== undefined) }, mark: { type: 'rect', color: '#c62828', opacity: 0.12 }, encoding: { x: { ...x, field: 'lo' }, x2: { field: 'hi' }, y } },
          { data: { values: claims.filter((t) => t.value !== undefined) }, mark: { type: 'tick', color: '#c62828', thickness: 2, opacity: 0.8 }, encoding: { x: { ...x, field: 'value' }, y } },
          { data: { values: mine }, mark: { type: 'tick', color: '#333', thickness: 1.5, opacity: 0.6 }, encoding: { x: { ...x, field: 'value', aggregate: 'median' }, y } },
          {
            data: { values: mine },
            mark: { type: 'point', filled: true, opacity: 0.75, size: 40 },
            encoding: {
              x: { ...x, field: 'value' },
              y,
              yOffset: { field: 'repetition', type: 'nominal' },
              color: { field: 'variant', type: 'nominal', scale: { domain: ids }, legend: null },
              tooltip: [{ field: 'variant' }, { field: 'repetition' }, { field: 'value' }],
            },
          },
          // the comparison beside its rule (to the right) or band (to the left, where the band starts)
          ...[
            { values: claims.filter((t) => t.value !== undefined), at: 'value', align: 'left', dx: 3 },
            { values: claims.filter((t) => t.lo !== undefined), at: 'lo', align: 'right', dx: -3 },
          ].map((l) => ({
            data: { values: l.values },
            mark: { type: 'text', color: '#c62828', align: l.align, baseline: 'top', dx: l.dx, fontSize: 10 },
            encoding: { x: { ...x, field: l.at }, y: { ...y, bandPosition: 0 }, text: { field: 'label', type: 'nominal' } },
          })),
        ],
      };
    }),
  } as TopLevelSpec;
}

/** Every plot for a results directory, rendered by `render` (all three asked for at once). */
export async function makePlots(r: LoadedResults, render: (spec: TopLevelSpec) => Promise<string>): Promise<Plot[]> {
  const order = r.summary.variants.map((v) => v.id);
  const cpu = cpuTimeSpec(r);
  const bars = exitBars(r);
  const selections = expectationSelections(expectationsOf(r));
  const points = metricPoints(r, selections);
  const drawn = (spec: TopLevelSpec | undefined, note: string) => (spec ? render(spec).then((svg) => ({ svg })) : Promise.resolve({ note }));
  const [cpuPlot, exitsPlot, metricsPlot] = await Promise.all([
    drawn(cpu, 'no vcpu-cpu samples in this run (collect: vcpu-cpu)'),
    drawn(bars.length ? exitsSpec(bars, order) : undefined, 'no exit counts in this run: no trace.exits*, exits.* or kvm.*exits metrics were recorded (collect: tracefs, kvm-exits or kvm-stats)'),
    drawn(
      points.length ? metricsSpec(points, selections.filter((s) => points.some((p) => p.selection === describeSelection(s))), thresholds(r), order) : undefined,
      selections.length ? 'no data for the metrics the expectations name' : 'the experiment has no expectations',
    ),
  ]);
  return [
    {
      file: 'vcpu-cpu.svg',
      title: 'Host CPU % per vCPU thread over time',
      caption:
        'Per variant, a row per vCPU thread (and the emulator threads together): the share of one host CPU it ran between consecutive vcpu-cpu samples (the derivative of schedstat run time), every repetition as its own line; dashed lines mark where each step started (median over the repetitions).',
      ...cpuPlot,
    },
    {
      file: 'exits.svg',
      title: 'Exits by reason per variant',
      caption: 'Per variant, each trace.exits* / exits.* / kvm.*exits metric summed over steps and vCPUs in a repetition; bar: median over repetitions, line: min–max.',
      ...exitsPlot,
    },
    {
      file: 'expectations.svg',
      title: 'Metrics named in expectations, across variants',
      caption: "Each metric an expectation names, reduced per repetition the way the expectation reduces it; per variant one point per repetition, black tick at the median, and in red the claim's threshold (a rule at its value, a band for between).",
      ...metricsPlot,
    },
  ];
}
