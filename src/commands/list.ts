// `kvmlab list [DIR]`: what the command takes; what it does is in actions/list.ts.
import type { Command } from 'commander';

export function registerList(program: Command): void {
  program
    .command('list')
    .description('list experiments in a directory with one-line descriptions and what each needs from the host')
    .argument('[dir]', 'directory of experiment files', 'experiments')
    .action(async (dir: string) => (await import('./actions/list.js')).list(dir));
}
