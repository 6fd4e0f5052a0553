import type { Command } from 'commander';
import { exitCodeOf } from '../model/summary.js';
import { loadResults, printWarnings } from '../report/load.js';
import { reportJson, reportText, writeReport } from '../report/report.js';

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('verdict and key metrics of a results directory; (re)writes summary.md, plots/, index.html and timeline.json; exits with the run\'s verdict')
    .argument('<dir>', 'results directory (what `kvmlab run --out DIR` wrote)')
    .option('--no-write', 'only print; do not rewrite the files in DIR')
    .option('--json', 'print one JSON document (verdict, expectations, key metrics) instead of the tables')
    .action(async (dir: string, flags: { write: boolean; json?: boolean }) => {
      const written = flags.write ? await writeReport(dir) : undefined;
      const r = written?.results ?? (await loadResults(dir));
      printWarnings(r, process.stderr);
      if (flags.json) process.stdout.write(`${JSON.stringify(reportJson(r, written?.files), null, 2)}\n`);
      else process.stdout.write(`${reportText(r)}${written ? `\nwrote summary.md, plots/, index.html and timeline.json in ${dir}\n` : ''}`);
      process.exitCode = exitCodeOf(r.summary);
    });
}
