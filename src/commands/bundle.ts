// `kvmlab bundle DIR`: what the command takes; what it does is in actions/bundle.ts.
import type { Command } from 'commander';

export function registerBundle(program: Command): void {
  program
    .command('bundle')
    .description('one plain-text repro bundle for a mailing-list reply: host, QEMU command line, guest kernel, results, rerun command, experiment; exits with the run\'s verdict')
    .argument('<dir>', 'results directory')
    .option('-o, --output <file>', 'write the bundle to this file (default: print it)')
    .action(async (dir: string, flags: { output?: string }) => (await import('./actions/bundle.js')).bundle(dir, flags));
}
