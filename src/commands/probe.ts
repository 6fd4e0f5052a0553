// `kvmlab probe`: what the command takes; what it does is in actions/probe.ts.
import type { Command } from 'commander';
import { ON_HELP } from '../targets/on.js';

export function registerProbe(program: Command): void {
  program
    .command('probe')
    .description('show what this host can do: CPU, KVM (ioctls), disabled-exit bits, halt polling, kernel parameters, QEMU, tracing')
    .option('--json', 'print JSON instead of a table')
    .option('--on <where>', ON_HELP, 'local')
    .action(async (flags: { json?: boolean; on: string }) => (await import('./actions/probe.js')).probe(flags));
}
