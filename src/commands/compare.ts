// `kvmlab compare DIR [DIR2]`: what the command takes; what it does is in actions/compare.ts.
import type { Command } from 'commander';
import type { CompareFlags } from './actions/compare.js';

const collect = (v: string, prev: string[]) => [...prev, v];

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
    .option('--verdicts', 'two runs of one experiment (e.g. the mock and the nested host): do they agree cell by cell? verdict, dominant exit reason per vCPU and step, KVM statistics in kind; exit 0 when every common cell agrees, 1 otherwise')
    .option('--json', 'print one JSON document (per metric both sides, the test and the verdict; with --verdicts the agreement) instead of the text')
    .action(async (dir: string, dir2: string | undefined, flags: CompareFlags) => (await import('./actions/compare.js')).compare(dir, dir2, flags));
}
