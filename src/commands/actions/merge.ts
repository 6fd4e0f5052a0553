// `kvmlab merge`: the shards of one run as one results directory, its verdict printed as run prints it.
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { exitCodeOf } from '../../results/summary.js';
import { writeReport } from '../../report/report.js';
import { headline, summaryMarkdown, verdictTable, whereMeasured } from '../../report/summary.js';
import { mergeParts } from '../../run/merge.js';
import { refuseOverwrite, summaryJson } from '../../run/results.js';

export async function merge(dirs: string[], flags: { out: string; force?: boolean; json?: boolean }): Promise<void> {
  const out = resolve(flags.out);
  await refuseOverwrite(out, flags.force);
  const summary = await mergeParts(out, dirs.map((d) => resolve(d)));
  await writeFile(join(out, 'summary.md'), summaryMarkdown(summary));
  const words = flags.json ? process.stderr : process.stdout;
  words.write(`${headline(summary)}\nmeasured on: ${whereMeasured(summary)}\n\n${verdictTable(summary)}\n\nresults: ${out} (merged from ${dirs.length} part${dirs.length === 1 ? '' : 's'})\n`);
  for (const n of summary.notices.filter((x) => /^shards? .* not merged/.test(x))) words.write(`kvmlab: warning: ${n}\n`);
  process.exitCode = exitCodeOf(summary);
  await writeReport(out, { print: words });
  if (flags.json) process.stdout.write(summaryJson(summary));
}
