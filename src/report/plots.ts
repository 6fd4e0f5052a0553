// Plots as SVG: vega-lite specs compiled to vega and rendered headless by vega's View.toSVG() (no
// browser, no canvas). Three kinds: per-vCPU host CPU % over time with the step boundaries, exits
// by reason per variant (when a collector recorded any), and each metric an expectation names
// across variants with every repetition shown.
import { View, parse } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { expectationSelections, describeSelection, perRepetition, type Selection } from './compare.js';
import { expectationsOf, type LoadedResults, type RepetitionData, type VcpuSample } from './load.js';
import { median } from './stats.js';

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

const CONFIG = {
  font: 'DejaVu Sans, Helvetica, Arial, sans-serif',
  background: 'white',
  axis: { labelFontSize: 11, titleFontSize: 12 },
  title: { fontSize: 13, anchor: 'start' as const },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 320 },
};

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const vg = compile({ ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec).spec;
  const view = new View(parse(vg), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export interface CpuPoint {
  /** Seconds since the repetition's first step started. */
  t: number;
  entity: string;
  pct: number;
}

/** Host CPU % per entity between consecutive samples (derivative of run_ns), emulator threads summed. */
export function cpuSeries(samples: readonly VcpuSample[], t0: number): CpuPoint[] {
  const byTid = new Map<number, VcpuSample[]>();
  for (const s of samples) byTid.set(s.tid, [...(byTid.get(s.tid) ?? []), s]);
  const sum = new Map<string, CpuPoint>();
  for (const list of byTid.values()) {
    list.sort((a, b) => a.t - b.t);
    for (let i = 1; i < list.length; i++) {
      const p = list[i - 1]!;
      const c = list[i]!;
      const dt = c.t - p.t;
      if (dt <= 0 || c.entity !== p.entity) continue;
      const pct = ((c.runNs - p.runNs) / (dt * 1e9)) * 100;
      // ticks read every thread at (nearly) the same instant: group them to 10 ms
      const key = `${c.entity}@${Math.round(c.t * 100)}`;
      const cur = sum.get(key);
      if (cur) cur.pct += pct;
      else sum.set(key, { t: Math.round((c.t - t0) * 1000) / 1000, entity: c.entity, pct });
    }
  }
  return [...sum.values()].map((p) => ({ ...p, pct: Math.round(p.pct * 100) / 100 })).sort((a, b) => a.t - b.t || a.entity.localeCompare(b.entity));
}

/** At most `max` points per entity: average over equal buckets. */
function thin(points: CpuPoint[], max: number): CpuPoint[] {
  const by = new Map<string, CpuPoint[]>();
  for (const p of points) by.set(p.entity, [...(by.get(p.entity) ?? []), p]);
  const out: CpuPoint[] = [];
  for (const [entity, list] of by) {
    if (list.length <= max) {
      out.push(...list);
      continue;
    }
    const per = Math.ceil(list.length / max);
    for (let i = 0; i < list.length; i += per) {
      const chunk = list.slice(i, i + per);
      out.push({ entity, t: chunk[Math.floor(chunk.length / 2)]!.t, pct: chunk.reduce((s, p) => s + p.pct, 0) / chunk.length });
    }
  }
  return out;
}

export function repStart(rep: RepetitionData): number | undefined {
  const starts = rep.steps.map((s) => s.start).filter((s): s is number => typeof s === 'number');
  if (starts.length) return Math.min(...starts);
  return rep.samples[0]?.t;
}

/** The repetition each variant's time plot shows: the first completed one with samples. */
export function plottedRepetition(r: LoadedResults, variant: string): RepetitionData | undefined {
  const mine = r.reps.filter((x) => x.variant === variant && x.samples.length > 1);
  return mine.find((x) => x.status === 'completed') ?? mine[0];
}

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

export function cpuTimeSpec(r: LoadedResults): TopLevelSpec | undefined {
  const panels = [];
  for (const v of r.summary.variants) {
    const rep = plottedRepetition(r, v.id);
    if (!rep) continue;
    const t0 = repStart(rep) ?? rep.samples[0]!.t;
    const points = thin(cpuSeries(rep.samples, t0), 1500);
    const steps = rep.steps
      .filter((s) => s.step !== 'teardown' && typeof s.start === 'number')
      .map((s) => ({ step: s.step, t: Math.round((s.start! - t0) * 1000) / 1000, row: 0 }));
    const end = rep.steps.filter((s) => s.step !== 'teardown').at(-1)?.end;
    staggerLabels(steps, [...points.map((p) => p.t), ...steps.map((s) => s.t), ...(end === undefined ? [] : [end - t0])], CPU_PLOT_WIDTH);
    const rules = end === undefined ? steps : [...steps, { step: 'end', t: Math.round((end - t0) * 1000) / 1000 }];
    const ymax = points.reduce((m, p) => Math.max(m, p.pct), 100);
    panels.push({
      title: `${v.id} — repetition ${rep.repetition}`,
      width: CPU_PLOT_WIDTH,
      height: 180,
      layer: [
        {
          data: { values: points },
          mark: { type: 'line', interpolate: 'step-before', strokeWidth: 1.5 },
          encoding: {
            x: { field: 't', type: 'quantitative', title: 'seconds since the first step started' },
            y: { field: 'pct', type: 'quantitative', title: 'host CPU % of one CPU', scale: { domain: [0, ymax * 1.12] } },
            color: { field: 'entity', type: 'nominal', title: 'thread' },
            // vCPUs doing the same thing draw the same line: dashes keep each one visible
            strokeDash: { field: 'entity', type: 'nominal', title: 'thread' },
          },
        },
        {
          data: { values: rules },
          mark: { type: 'rule', color: '#888', strokeDash: [4, 3] },
          encoding: { x: { field: 't', type: 'quantitative' } },
        },
        {
          data: { values: steps },
          mark: { type: 'text', align: 'left', baseline: 'top', dx: 3, dy: 2, angle: 0, fontSize: 10, color: '#444' },
          encoding: { x: { field: 't', type: 'quantitative' }, y: { field: 'row', type: 'quantitative', scale: null }, text: { field: 'step', type: 'nominal' } },
        },
      ],
    });
  }
  if (!panels.length) return undefined;
  return { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', vconcat: panels, resolve: { scale: { color: 'shared' } } } as TopLevelSpec;
}

const NOT_A_REASON = /^(vcpu\d+|pcpu\d+|cpu\d+|qemu|guest|runner|host|emulator|vm)$/;

/** Exit counts: the tracefs collector's trace.exits[.<reason>] and KVM's own kvm.[<kind>_]exits stats. */
export function isExitMetric(metric: string): boolean {
  return metric.startsWith('trace.exit') || /^kvm\.([a-z0-9_]+_)?exits$/.test(metric);
}

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

export function exitsSpec(bars: ExitBar[]): TopLevelSpec {
  const reasons = new Set(bars.map((b) => b.reason)).size;
  const variants = new Set(bars.map((b) => b.variant)).size;
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
          yOffset: { field: 'variant' },
          x: { field: 'median', type: 'quantitative', title: 'count per repetition' },
          color: { field: 'variant', type: 'nominal' },
        },
      },
      {
        mark: { type: 'rule', color: 'black' },
        encoding: { y: { field: 'reason', type: 'nominal', sort: { field: 'median', op: 'max', order: 'descending' } }, yOffset: { field: 'variant' }, x: { field: 'min', type: 'quantitative' }, x2: { field: 'max' } },
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

export function metricsSpec(points: MetricPoint[], selections: readonly Selection[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    vconcat: selections.map((s) => {
      const title = describeSelection(s);
      return {
        title: `${title} — points: repetitions; tick: median`,
        width: 520,
        height: Math.max(40, 30 * new Set(points.map((p) => p.variant)).size),
        data: { values: points.filter((p) => p.selection === title) },
        layer: [
          {
            mark: { type: 'point', filled: true, opacity: 0.7, size: 50 },
            encoding: {
              x: { field: 'value', type: 'quantitative', title: s.metric, scale: { zero: false } },
              y: { field: 'variant', type: 'nominal', title: null },
              color: { field: 'variant', type: 'nominal', legend: null },
              tooltip: [{ field: 'variant' }, { field: 'repetition' }, { field: 'value' }],
            },
          },
          {
            mark: { type: 'tick', color: 'black', thickness: 2, size: 22 },
            encoding: { x: { aggregate: 'median', field: 'value', type: 'quantitative' }, y: { field: 'variant', type: 'nominal' } },
          },
        ],
      };
    }),
  } as TopLevelSpec;
}

/** Every plot for a results directory, rendered. */
export async function makePlots(r: LoadedResults): Promise<Plot[]> {
  const plots: Plot[] = [];
  const cpu = cpuTimeSpec(r);
  plots.push({
    file: 'vcpu-cpu.svg',
    title: 'Host CPU % per vCPU thread over time',
    caption:
      'Per vCPU thread (and the emulator threads together) the share of one host CPU it ran, between consecutive vcpu-cpu samples (the derivative of schedstat run time); dashed lines mark where each step started. One repetition per variant.',
    ...(cpu ? { svg: await renderSvg(cpu) } : { note: 'no vcpu-cpu samples in this run (collect: vcpu-cpu)' }),
  });
  const bars = exitBars(r);
  plots.push({
    file: 'exits.svg',
    title: 'Exits by reason per variant',
    caption: 'Per variant, each trace.exits* / kvm.*exits metric summed over steps and vCPUs in a repetition; bar: median over repetitions, line: min–max.',
    ...(bars.length ? { svg: await renderSvg(exitsSpec(bars)) } : { note: 'no exit counts in this run: no trace.exits* or kvm.*exits metrics were recorded (collect: tracefs or kvm-stats)' }),
  });
  const selections = expectationSelections(expectationsOf(r));
  const points = metricPoints(r, selections);
  plots.push({
    file: 'expectations.svg',
    title: 'Metrics named in expectations, across variants',
    caption: "Each metric an expectation names, reduced per repetition the way the expectation reduces it; one point per repetition, black tick at the median.",
    ...(points.length ? { svg: await renderSvg(metricsSpec(points, selections.filter((s) => points.some((p) => p.selection === describeSelection(s))))) } : { note: selections.length ? 'no data for the metrics the expectations name' : 'the experiment has no expectations' }),
  });
  return plots;
}
