// `kvmlab merge DIR… -o OUT`: what the command takes; what it does is in actions/merge.ts.
import type { Command } from 'commander';

export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description('one results directory from the shards of a run (run --shard I/N on several machines): the summary, metrics and reports the run done at once would have; exits with its verdict')
    .argument('<dirs...>', 'the shards\' results directories')
    .requiredOption('-o, --out <dir>', 'the merged results directory (new, or empty)')
    .option('--force', 'write into --out even when it already holds files')
    .option('--json', 'print summary.json on stdout and the verdict on stderr')
    .action(async (dirs: string[], flags: { out: string; force?: boolean; json?: boolean }) => (await import('./actions/merge.js')).merge(dirs, flags));
}
