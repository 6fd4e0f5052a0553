// Writing a run's results: summary.json and metrics.csv beside the per-variant logs the runner
// already wrote. The words people read (summary.md, plots, index.html) are the report's.
import { readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { InputError } from '../errors.js';
import { RESULTS } from '../results/layout.js';
import { basename, dirname, join } from 'node:path';
import { exitCodeOf, type Summary } from '../results/summary.js';
import { toCsv, type MetricRow } from '../model/metrics.js';

export async function writeResults(out: string, summary: Summary, rows: readonly MetricRow[]): Promise<void> {
  await writeFile(join(out, RESULTS.metrics), toCsv(rows));
  await writeFile(join(out, RESULTS.summary), summaryJson(summary));
}

/** summary.json: the summary and the exit status that follows from it. */
export function summaryJson(summary: Summary): string {
  return `${JSON.stringify({ ...summary, exitCode: exitCodeOf(summary) }, null, 2)}\n`;
}

/** Points results/<experiment>/latest at the newest default results directory (stamped dirs are never reused). */
export async function linkLatest(out: string): Promise<void> {
  const link = join(dirname(out), 'latest');
  await rm(link, { force: true });
  await symlink(basename(out), link);
}

/** Default results directory: results/<experiment>/<timestamp>/ under the current directory. */
export function defaultOutDir(experiment: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  return join('results', experiment, stamp);
}

/** Results are never overwritten: a results directory that already holds files needs --force. */
export async function refuseOverwrite(out: string, force: boolean | undefined): Promise<void> {
  if (force) return;
  const held = await readdir(out).catch(() => [] as string[]);
  if (held.length) throw new InputError(`--out ${out} already holds ${held.length} file${held.length > 1 ? 's' : ''} (${held.slice(0, 3).join(', ')}${held.length > 3 ? ', …' : ''}); give a new directory, leave --out out for a fresh results/<experiment>/<time>/, or add --force to write into it`);
}
