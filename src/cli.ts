#!/usr/bin/env node
// kvmlab's command line. Exit status (README.md, "Exit status", is the table every command follows):
// 0 every claim held or the command did what was asked, 1 a claim failed, 2 bad input or usage,
// 3 could not run (host or infrastructure), 130 interrupted.
import { Command, CommanderError, Help } from 'commander';
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

/** The command the arguments run or ask help about: the first word that is not an option (after `help`). */
function commandWord(args: readonly string[]): string | undefined {
  const [first, ...rest] = args.filter((a) => !a.startsWith('-'));
  return first === 'help' ? rest[0] : first;
}

/** Every command onto the program; a deferred one is loaded only when it is the one run, otherwise --help lists it by its term. */
async function register(invoked: string | undefined): Promise<void> {
  const listedAs = new Map<Command, string>();
  for (const c of commands) {
    if (typeof c === 'function') c(program);
    else if (c.name === invoked) (await c.load())(program);
    else listedAs.set(program.command(c.name).description(c.description), c.term);
  }
  program.configureHelp({ subcommandTerm: (cmd) => listedAs.get(cmd) ?? new Help().subcommandTerm(cmd) });
}

function fail(message: string, code: number): never {
  process.stderr.write(`kvmlab: ${message.replace(/\n/g, '\n  ')}\n`);
  process.exit(code);
}

try {
  await register(commandWord(process.argv.slice(2)));
  await program.parseAsync(process.argv);
} catch (e) {
  // Help or the version asked for is 0; any other word from commander is a usage error, help shown for a missing command included.
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  if (e instanceof InputError) fail(e.message, 2);
  if (e instanceof HostError) fail(e.message, 3);
  if (process.env.KVMLAB_DEBUG) console.error(e);
  fail(`internal error: ${errorMessage(e)} (this is a kvmlab bug; KVMLAB_DEBUG=1 shows where)`, 3);
}
