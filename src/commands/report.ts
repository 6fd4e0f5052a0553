// `kvmlab report DIR`: what the command takes; what it does is in actions/report.ts.
import type { Command } from 'commander';

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('verdict and key metrics of a results directory; (re)writes summary.md, plots/, index.html and timeline.json; exits with the run\'s verdict')
    .argument('<dir>', 'results directory (what `kvmlab run --out DIR` wrote)')
    .option('--no-write', 'only print; do not rewrite the files in DIR')
    .option('--json', 'print one JSON document (verdict, expectations, key metrics) instead of the tables')
    .action(async (dir: string, flags: { write: boolean; json?: boolean }) => (await import('./actions/report.js')).report(dir, flags));
}
