// `kvmlab probe`: what the command takes; what it does is in actions/probe.ts.
import type { Command } from 'commander';
import { ON_HELP } from '../targets/on.js';
import { hostKeyOption, sshKeyOption } from './options.js';

export function registerProbe(program: Command): void {
  program
    .command('probe')
    .description('show what this host can do: CPU, KVM (ioctls), disabled-exit bits, halt polling, kernel parameters, QEMU, tracing')
    .option('--json', 'print JSON instead of a table')
    .option('--on <where>', ON_HELP, 'local')
    .addOption(sshKeyOption())
    .addOption(hostKeyOption())
    .action(async (flags: { json?: boolean; on: string; sshKey?: string; hostKey?: string }) => (await import('./actions/probe.js')).probe(flags));
}
