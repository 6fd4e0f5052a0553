// A finished run's verdict as the commands that make one (`run`, `run --on nested` with a host
// axis, `merge`) show it: summary.md first, so a run whose plots fail still leaves its verdict in
// words; then the verdict; the exit status; the report. With --json, stdout holds summary.json alone
// and the words a person reads go to stderr.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exitCodeOf, type Summary } from '../../results/summary.js';
import { writeReport } from '../../report/report.js';
import { headline, summaryMarkdown, verdictTable, whereMeasured } from '../../report/summary.js';
import { summaryJson } from '../../run/results.js';

export interface VerdictOptions {
  json?: boolean;
  /** Said after the results directory, e.g. "(merged from 2 parts)". */
  where?: string;
  /** Printed as warnings after the verdict. */
  warnings?: readonly string[];
}

export async function showVerdict(out: string, summary: Summary, opts: VerdictOptions = {}): Promise<void> {
  await writeFile(join(out, 'summary.md'), summaryMarkdown(summary));
  const words = opts.json ? process.stderr : process.stdout;
  words.write(`\n${headline(summary)}\nmeasured on: ${whereMeasured(summary)}\n\n${verdictTable(summary)}\n\nresults: ${out}${opts.where ? ` ${opts.where}` : ''}\n`);
  for (const w of opts.warnings ?? []) words.write(`kvmlab: warning: ${w}\n`);
  process.exitCode = exitCodeOf(summary);
  await writeReport(out, { print: words });
  if (opts.json) process.stdout.write(summaryJson(summary));
}
