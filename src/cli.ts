#!/usr/bin/env node
// kvmlab's command line. Exit status (README.md, "Exit status", is the table every command follows):
// 0 every claim held or the command did what was asked, 1 a claim failed, 2 bad input or usage,
// 3 could not run (host or infrastructure), 130 interrupted.
import { setFlagsFromString } from 'node:v8';
import { Command, CommanderError } from 'commander';
import { InputError, HostError, errorMessage } from './errors.js';
import { commands } from './commands/index.js';
import { startHeartbeat } from './targets/heartbeat.js';
import { holdLeash } from './targets/leash.js';

// Parsing traces and simulating a host allocate many short-lived strings: a young generation larger
// than V8's default scavenges less often (a mock run of idle-exit-policy used ~20% less CPU).
setFlagsFromString('--max-semi-space-size=64');
// Most commands run for well under a second: V8's default budget sends functions to TurboFan that
// the process then leaves before using, and the background compiles cost ~20% of a report's CPU.
// Eight times the budget optimises only what stays hot (the mock's storm loops still are).
setFlagsFromString('--interrupt-budget=540672');

// The CLI runs as a bundle (dist/chunks/…): with KVMLAB_DEBUG, stack traces name the sources instead.
if (process.env.KVMLAB_DEBUG) process.setSourceMapsEnabled(true);

// Watched from outside (the run inside a nested KVM host): say it is alive, and where it is.
startHeartbeat();

// Run on a lab box by a kvmlab elsewhere: a dropped connection stops it as a hang-up does.
const leashed = holdLeash();

// `kvmlab … | head`: a reader that went away is not an error of kvmlab's (on a leash, the run still tears down first).
if (!leashed) {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

const program = new Command('kvmlab')
  .description('Measure what KVM and QEMU do on a real host: experiments as files, results you can paste into a mailing-list reply.')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride()
  .configureOutput({ outputError: (s, write) => write(s) });

function fail(message: string, code: number): never {
  process.stderr.write(`kvmlab: ${message.replace(/\n/g, '\n  ')}\n`);
  process.exit(code);
}

try {
  for (const register of commands) register(program);
  await program.parseAsync(process.argv);
} catch (e) {
  // Help or the version asked for is 0; any other word from commander is a usage error, help shown for a missing command included.
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  // with KVMLAB_DEBUG, every error with where it came from and what it wrapped (its cause chain)
  if (process.env.KVMLAB_DEBUG && (e instanceof InputError || e instanceof HostError)) console.error(e);
  if (e instanceof InputError) fail(e.message, 2);
  if (e instanceof HostError) fail(e.message, 3);
  if (process.env.KVMLAB_DEBUG) console.error(e);
  fail(`internal error: ${errorMessage(e)} (this is a kvmlab bug; KVMLAB_DEBUG=1 shows where)`, 3);
}
