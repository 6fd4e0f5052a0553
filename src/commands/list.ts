// `kvmlab list [DIR]`: what the command takes; what it does is in actions/list.ts.
import type { Command } from 'commander';

export function registerList(program: Command): void {
  program
    .command('list')
    .description('list experiments with one-line descriptions and what each needs from the host')
    .argument('[dir]', 'directory of experiment files (default: the experiments kvmlab ships, wherever it is run from)')
    .action(async (dir: string | undefined) => (await import('./actions/list.js')).list(dir));
}
