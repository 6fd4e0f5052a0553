// What `kvmlab report` does (commands/report.ts declares it).
import { exitCodeOf } from '../../results/summary.js';
import { loadResults, printWarnings } from '../../report/load.js';
import { reportJson, reportText, writeReport } from '../../report/report.js';

export async function report(dir: string, flags: { write: boolean; json?: boolean }): Promise<void> {
  const written = flags.write ? await writeReport(dir) : undefined;
  const r = written?.results ?? (await loadResults(dir));
  printWarnings(r, process.stderr);
  if (flags.json) process.stdout.write(`${JSON.stringify(reportJson(r, written?.files), null, 2)}\n`);
  else process.stdout.write(`${reportText(r)}${written ? `\nwrote summary.md, plots/, index.html and timeline.json in ${dir}\n` : ''}`);
  process.exitCode = exitCodeOf(r.summary);
}
