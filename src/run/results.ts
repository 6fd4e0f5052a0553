// Writing a run's results: summary.json and metrics.csv beside the per-variant logs the runner
// already wrote, and reading a finished run's summary.json back (merge, a lab box's run brought
// back). The words people read (summary.md, plots, index.html) are the report's.
import { readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { InputError, errorMessage } from '../errors.js';
import { RESULTS } from '../results/layout.js';
import { basename, dirname, join } from 'node:path';
import { exitCodeOf, SummarySchema, type Summary } from '../results/summary.js';
import { toCsv, type MetricRow } from '../model/metrics.js';

export async function writeResults(out: string, summary: Summary, rows: readonly MetricRow[]): Promise<void> {
  await writeFile(join(out, RESULTS.metrics), toCsv(rows));
  await writeFile(join(out, RESULTS.summary), summaryJson(summary));
}

/** summary.json: the summary and the exit status that follows from it. */
export function summaryJson(summary: Summary): string {
  return `${JSON.stringify({ ...summary, exitCode: exitCodeOf(summary) }, null, 2)}\n`;
}

/** A finished run's summary.json, schema-checked; `fix` says what to give instead when it is not one. */
export async function readSummary(dir: string, fix: string): Promise<Summary> {
  const path = join(dir, RESULTS.summary);
  const text = await readFile(path, 'utf8').catch((e: unknown) => {
    throw new InputError(`${path}: cannot read (${errorMessage(e)}); ${fix}`, [], { cause: e });
  });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${path} is not JSON (${errorMessage(e)}); ${fix}`, [], { cause: e });
  }
  const parsed = SummarySchema.safeParse(raw);
  if (!parsed.success) throw new InputError(`${path} is not a kvmlab summary: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
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
