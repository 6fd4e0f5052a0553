// `kvmlab report` and the end of `run`: the verdict table plus key metrics (median and spread over
// repetitions), and the files people look at — summary.md, plots/*.svg, index.html, timeline.json.
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../errors.js';
import { describeSelection, expectationSelections, perRepetition, type Selection } from '../model/select.js';
import { renderHtml } from './html.js';
import { expectationsOf, loadResults, type LoadedResults } from './load.js';
import { makePlots, type Plot } from './plots.js';
import { svgRenderer } from './svg.js';
import { spread } from './stats.js';
import { exitCodeOf } from '../results/summary.js';
import { measuringWindows } from '../experiment/schema.js';
import { headline, summaryMarkdown, verdictTable, whereMeasured } from './summary.js';
import { fmtNum, formatTable, type TableData } from './table.js';
import { buildTimeline } from './timeline.js';

export interface KeyMetric {
  variant: string;
  selection: Selection;
  label: string;
  values: number[];
}

/** Steps where the guest is left alone to be measured (sample/wait); all steps when there are none. */
function measuredSteps(r: LoadedResults): string[] | undefined {
  const steps = r.experiment ? measuringWindows(r.experiment.steps) : [];
  return steps.length ? steps : undefined;
}

export function keyMetrics(r: LoadedResults): KeyMetric[] {
  const selections = expectationSelections(expectationsOf(r));
  const steps = measuredSteps(r);
  const vcpus = [...new Set(r.rows.filter((x) => x.metric === 'vcpu.cpu_pct' && /^vcpu\d+$/.test(x.entity)).map((x) => x.entity))].sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
  const perVcpu: Selection[] = vcpus.map((e) => ({ metric: 'vcpu.cpu_pct', entity: [e], step: steps, agg: 'mean' }));
  const out: KeyMetric[] = [];
  for (const v of r.summary.variants) {
    for (const s of [...selections, ...perVcpu]) {
      const values = [...perRepetition(r.rows, v.id, s).values()];
      if (values.length) out.push({ variant: v.id, selection: s, label: describeSelection(s), values });
    }
  }
  return out;
}

export const NO_KEY_METRICS = '(no key metrics: the experiment names no metric in an expectation and no vcpu.cpu_pct was collected)';

export function keyMetricsRows(km: readonly KeyMetric[]): TableData {
  let last = '';
  const rows = km.map((k) => {
    const s = spread(k.values);
    const first = k.variant !== last;
    last = k.variant;
    return [first ? k.variant : '', k.label, String(s.n), fmtNum(s.median), s.n > 1 ? `${fmtNum(s.min)}–${fmtNum(s.max)}` : '', s.n > 1 ? fmtNum(s.iqr) : ''];
  });
  return { headers: ['variant', 'metric (per repetition)', 'n', 'median', 'min–max', 'IQR'], rows };
}

export function keyMetricsTable(km: readonly KeyMetric[]): string {
  if (!km.length) return NO_KEY_METRICS;
  const t = keyMetricsRows(km);
  return formatTable(t.headers, t.rows);
}

export function reportText(r: LoadedResults): string {
  return `${headline(r.summary)}\nmeasured on: ${whereMeasured(r.summary)}\n\n${verdictTable(r.summary)}\n\nkey metrics (median and spread over repetitions):\n\n${keyMetricsTable(keyMetrics(r))}\n`;
}

/** `report --json`: what the tables say, as one JSON document, numbers as measured (not rounded for reading). */
export function reportJson(r: LoadedResults, written: readonly string[] | undefined) {
  const s = r.summary;
  return {
    dir: r.dir,
    experiment: s.experiment,
    exitCode: exitCodeOf(s),
    simulated: s.simulated,
    measuredOn: whereMeasured(s),
    backend: s.backend,
    accel: s.accel,
    target: s.target ?? { kind: 'local' },
    interrupted: s.interrupted,
    variants: s.variants.map((v) => ({ id: v.id, labels: v.labels, status: v.status, reason: v.reason, repetitions: v.repetitions.length, expectations: v.expectations })),
    keyMetrics: keyMetrics(r).map((k) => ({ variant: k.variant, metric: k.label, selection: k.selection, values: k.values, ...spread(k.values) })),
    warnings: r.warnings,
    written: written ?? [],
  };
}

export function reportMarkdown(r: LoadedResults, plots: readonly Plot[]): string {
  const lines = [
    summaryMarkdown(r.summary).trimEnd(),
    '',
    '## Key metrics',
    '',
    'Per variant, each metric an expectation names and host CPU % per vCPU (mean over the measured steps), reduced per repetition; median and spread over repetitions.',
    '',
    '```',
    keyMetricsTable(keyMetrics(r)),
    '```',
    '',
    '## Plots',
    '',
    ...plots.flatMap((p) => (p.svg ? [`### ${p.title}`, '', `![${p.title}](plots/${p.file})`, '', p.caption, ''] : [`- ${p.title}: ${p.note}`, ''])),
    '## Files',
    '',
    '- `index.html`: this summary with the plots, readable offline',
    '- `timeline.json`: steps, per-vCPU CPU % and traced exits for ui.perfetto.dev or chrome://tracing',
    '- `metrics.csv`: every measured value (variant, repetition, step, entity, metric, value, unit)',
    '- `variants/<id>/rep-N/`: launch.json (QEMU command line), qmp.jsonl, guest.jsonl, steps.jsonl, console.log, raw collector files',
    '',
  ];
  return `${lines.join('\n')}\n`;
}

export interface WrittenReport {
  results: LoadedResults;
  plots: Plot[];
  files: string[];
}

/**
 * (Re)write summary.md, plots/*.svg, index.html and timeline.json for a results directory. With
 * `print` (the end of `run`), also print the key-metrics table there, and report a failure to write
 * the extras as a line instead of throwing: the run's own results are already on disk.
 */
export async function writeReport(outDir: string): Promise<WrittenReport>;
export async function writeReport(outDir: string, opts: { print: NodeJS.WritableStream }): Promise<WrittenReport | undefined>;
export async function writeReport(outDir: string, opts: { print?: NodeJS.WritableStream } = {}): Promise<WrittenReport | undefined> {
  if (!opts.print) return write(outDir);
  try {
    const w = await write(outDir);
    opts.print.write(`\nkey metrics (median and spread over repetitions):\n\n${keyMetricsTable(keyMetrics(w.results))}\n\nplots and tables: ${join(outDir, 'index.html')}\n`);
    return w;
  } catch (e) {
    opts.print.write(`\nreport: could not write plots/index.html/timeline.json: ${errorMessage(e)} (kvmlab report ${outDir} retries)\n`);
    return undefined;
  }
}

/** The SVGs a results directory's plots/ holds (none when it has no plots/ yet). */
async function plotsIn(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw e;
  });
  return Promise.all(names.filter((n) => n.endsWith('.svg')).map((n) => readFile(join(dir, n), 'utf8')));
}

async function write(outDir: string): Promise<WrittenReport> {
  const r = await loadResults(outDir);
  // With trace text to read for the timeline, the plots are drawn on their own thread meanwhile (svg.ts);
  // a plot whose spec is the one an SVG already in plots/ was drawn from is not drawn again.
  const renderer = svgRenderer(r.reps.some((rep) => rep.traceFiles.length > 0), await plotsIn(join(outDir, 'plots')));
  try {
    const plotting = makePlots(r, (spec) => renderer.render(spec)).catch((e): Plot[] => [{ file: 'plots', title: 'Plots', caption: '', note: `plotting failed: ${errorMessage(e)}` }]);
    // the timeline (tens of MB after an exit storm) is written while the last plots are drawn
    const timeline = writeFile(join(outDir, 'timeline.json'), JSON.stringify(await buildTimeline(r)));
    timeline.catch(() => undefined); // awaited below, where a failed write fails the report
    const plots = await plotting;
    const files: string[] = [];
    await mkdir(join(outDir, 'plots'), { recursive: true });
    for (const p of plots) {
      if (!p.svg) continue;
      await writeFile(join(outDir, 'plots', p.file), p.svg);
      files.push(join('plots', p.file));
    }
    await timeline;
    await writeFile(join(outDir, 'summary.md'), reportMarkdown(r, plots));
    await writeFile(join(outDir, 'index.html'), renderHtml(r, plots, keyMetricsRows(keyMetrics(r))));
    files.push('timeline.json', 'summary.md', 'index.html');
    return { results: r, plots, files };
  } finally {
    await renderer.close();
  }
}
