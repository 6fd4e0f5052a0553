// `kvmlab run FILE`: what the command takes; what it does is in actions/run.ts, loaded when it runs.
import type { Command } from 'commander';
import { ON_HELP } from '../targets/on.js';
import { accelOption, backendOption, chooseMockHost, hostKernelOption, hostModulesOption, mockHostOption, qemuOption, hostKeyOption, sshKeyOption } from './options.js';
import type { RunFlags } from './actions/run.js';

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run an experiment: every variant of its matrix, each repetition, then the verdict')
    .argument('<file>', 'experiment file (.yaml or .json)')
    .option('--on <where>', ON_HELP, 'local')
    .addOption(backendOption())
    .addOption(accelOption())
    .addOption(hostKernelOption())
    .addOption(hostModulesOption())
    .addOption(qemuOption())
    .addOption(mockHostOption())
    .addOption(sshKeyOption())
    .addOption(hostKeyOption())
    .option('--out <dir>', 'results directory (default results/<experiment>/<timestamp>/)')
    .option('--repeat <n>', 'repetitions per variant (overrides the file)')
    .option('--only <pattern>', 'run only variants whose id matches this glob, e.g. "disable_exits=hlt*"')
    .option('--where <axis=label>', 'run only variants with these matrix labels, e.g. host=after or disable_exits=none,halt_poll_ns=0')
    .option('--shard <i/n>', 'run only the I-th of N disjoint parts of the (variant, repetition) cells, for N machines; kvmlab merge makes one run of the N results directories')
    .option('--allow-host-commands', 'allow `host:` steps to run commands on this host')
    .option('-q, --quiet', 'no progress lines')
    .option('--force', 'write into --out even when it already holds files (results are otherwise never overwritten)')
    .option('--json', 'when done, print summary.json on stdout and the verdict on stderr')
    .option('--strict', 'exit 1 when any claim was not checked (a variant skipped, or one no claim applies to): for CI')
    .action(async (file: string, flags: RunFlags & { mockHost?: string }) => {
      chooseMockHost(flags.mockHost);
      return (await import('./actions/run.js')).run(file, flags);
    });
}
