// Writing a run's results: summary.json, summary.md and metrics.csv beside the per-variant logs the
// runner already wrote.
import { rm, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { exitCodeOf, summaryMarkdown } from '../report/summary.js';
import { toCsv, type MetricRow } from './metrics.js';
import type { Summary } from './runner.js';

export async function writeResults(out: string, summary: Summary, rows: readonly MetricRow[]): Promise<void> {
  await writeFile(join(out, 'metrics.csv'), toCsv(rows));
  await writeFile(join(out, 'summary.json'), `${JSON.stringify({ ...summary, exitCode: exitCodeOf(summary) }, null, 2)}\n`);
  await writeFile(join(out, 'summary.md'), summaryMarkdown(summary));
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
