// `kvmlab setup`: what the command takes; what it does is in actions/setup.ts.
import type { Command } from 'commander';
import { hostKeyOption, sshKeyOption } from './options.js';

export function registerSetup(program: Command): void {
  program
    .command('setup')
    .description("set a Debian host up for kvmlab, as root (host-scripts/setup.sh: QEMU and the collectors' tools, native helpers, guest images, tracefs): this host, or a lab box")
    .option('--on <where>', 'local (this host) or ssh://[user@]host[:port] (a lab box: kvmlab ships itself there and sets it up)', 'local')
    .addOption(sshKeyOption())
    .addOption(hostKeyOption())
    .action(async (flags: { on: string; sshKey?: string; hostKey?: string }) => (await import('./actions/setup.js')).setup(flags));
}
