import type { Command } from 'commander';
import { compareResults, comparisonJson, formatComparison } from '../report/compare.js';
import { loadResults, printWarnings } from '../report/load.js';

interface CompareFlags {
  metric: string[];
  variants?: string;
  step?: string;
  entity?: string;
  json?: boolean;
}

const collect = (v: string, prev: string[]) => [...prev, v];
const list = (v: string | undefined) => (v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean));

export function registerCompare(program: Command): void {
  program
    .command('compare')
    .description('do two variants of a run (or one variant across two runs) differ? permutation test and effect size per metric')
    .argument('<dir>', 'results directory')
    .argument('[dir2]', 'a second results directory: compare the same variant across the two runs')
    .option('--metric <metric>', 'metric to compare (repeatable; default: the metrics the expectations name)', collect, [])
    .option('--variants <a,b>', 'one dir: the two variants to compare (default the first two); two dirs: the variant (or A,B: A in dir, B in dir2)')
    .option('--step <steps>', 'only rows of these steps (comma-separated)')
    .option('--entity <entities>', 'only rows of these entities, e.g. vcpu0,vcpu1')
    .option('--json', 'print one JSON document (per metric both sides, the test and the verdict) instead of the text')
    .action(async (dir: string, dir2: string | undefined, flags: CompareFlags) => {
      const left = await loadResults(dir);
      const right = dir2 === undefined ? undefined : await loadResults(dir2);
      for (const r of [left, right]) if (r) printWarnings(r, process.stderr);
      const report = compareResults(left, right, { metrics: flags.metric, variants: flags.variants, step: list(flags.step), entity: list(flags.entity) });
      process.stdout.write(flags.json ? `${JSON.stringify(comparisonJson(report), null, 2)}\n` : formatComparison(report));
    });
}
