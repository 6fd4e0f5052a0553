#!/usr/bin/env node
// kvmlab's command line. Exit status: 0 every expectation held, 1 some expectation failed, 2 bad
// input or usage, 3 could not run (host or infrastructure), 130 interrupted.
import { Command, CommanderError } from 'commander';
import { InputError, HostError, errorMessage } from './errors.js';
import { commands } from './commands/index.js';

// `kvmlab … | head`: a reader that went away is not an error of kvmlab's.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

const program = new Command('kvmlab')
  .description('Measure what KVM and QEMU do on a real host: experiments as files, results you can paste into a mailing-list reply.')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride()
  .configureOutput({ outputError: (s, write) => write(s) });

for (const register of commands) register(program);

function fail(message: string, code: number): never {
  process.stderr.write(`kvmlab: ${message.replace(/\n/g, '\n  ')}\n`);
  process.exit(code);
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') process.exit(0);
    process.exit(2);
  }
  if (e instanceof InputError) fail(e.message, 2);
  if (e instanceof HostError) fail(e.message, 3);
  if (process.env.KVMLAB_DEBUG) console.error(e);
  fail(`internal error: ${errorMessage(e)} (this is a kvmlab bug; KVMLAB_DEBUG=1 shows where)`, 3);
}
