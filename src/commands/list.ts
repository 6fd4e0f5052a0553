// `kvmlab list [DIR]`: what the command takes; what it does is in actions/list.ts.
import type { Command } from 'commander';

export function registerList(program: Command): void {
  program
    .command('list')
    .description('list experiments with one-line descriptions and what each needs from the host')
    .argument('[dir]', 'directory of experiment files (default: the experiments kvmlab ships, wherever it is run from)')
    .option('--json', 'print one JSON document: the directory and each experiment (name, description, requirements) or its problems')
    .action(async (dir: string | undefined, flags: { json?: boolean }) => (await import('./actions/list.js')).list(dir, flags));
}
