import type { Command } from 'commander';
import { exitCodeOf } from '../model/summary.js';
import { loadResults, printWarnings } from '../report/load.js';
import { reportText, writeReport } from '../report/report.js';

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('verdict and key metrics of a results directory; (re)writes summary.md, plots/, index.html and timeline.json; exits with the run\'s verdict')
    .argument('<dir>', 'results directory (what `kvmlab run --out DIR` wrote)')
    .option('--no-write', 'only print; do not rewrite the files in DIR')
    .action(async (dir: string, flags: { write: boolean }) => {
      const r = flags.write ? (await writeReport(dir)).results : await loadResults(dir);
      printWarnings(r, process.stderr);
      process.exitCode = exitCodeOf(r.summary);
      process.stdout.write(`${reportText(r)}${flags.write ? `\nwrote summary.md, plots/, index.html and timeline.json in ${dir}\n` : ''}`);
    });
}
