// `kvmlab plan FILE`: what the command takes; what it does is in actions/plan.ts, loaded when it runs.
import type { Command } from 'commander';
import { ON_HELP } from '../targets/on.js';
import { accelOption, backendOption, chooseMockHost, hostKernelOption, hostModulesOption, mockHostOption, qemuOption, hostKeyOption, sshKeyOption } from './options.js';
import type { RunChoices } from './actions/run-options.js';

export function registerPlan(program: Command): void {
  program
    .command('plan')
    .description('show what `run` would do, doing none of it: each variant with its QEMU command line and environment, whether this host runs or skips it and why, and how long it would take')
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
    .option('--repeat <n>', 'repetitions per variant (overrides the file)')
    .option('--only <pattern>', 'plan only variants whose id matches this glob, e.g. "disable_exits=hlt*"')
    .option('--where <axis=label>', 'plan only variants with these matrix labels, e.g. host=after or disable_exits=none,halt_poll_ns=0')
    .option('--json', 'print the plan as one JSON document on stdout')
    .action(async (file: string, flags: RunChoices & { mockHost?: string }) => {
      chooseMockHost(flags.mockHost);
      return (await import('./actions/plan.js')).plan(file, flags);
    });
}
