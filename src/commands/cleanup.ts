// `kvmlab cleanup`: after a run was killed or crashed, undo what it left on the host (its journal,
// and any kvmlab-named QEMU process or tracefs instance), unless a live run still holds the lock.
import type { Command } from 'commander';
import { HostError, InputError } from '../errors.js';
import { parseOn } from '../targets/on.js';
import { hostKeyOption, sshKeyOption } from './options.js';
import { cleanupHost, DEFAULT_STATE_DIR } from '../host/journal.js';

export function registerCleanup(program: Command): void {
  program
    .command('cleanup')
    .description('after a kvmlab run was killed or crashed: undo the host changes its journal records, kill QEMU it started, remove its tracefs instances')
    .option('--state-dir <dir>', 'where the journal and lock live', DEFAULT_STATE_DIR)
    .option('--on <where>', 'local (this host) or ssh://[user@]host[:port] (a lab box: its own journal, there)', 'local')
    .addOption(sshKeyOption())
    .addOption(hostKeyOption())
    .action(async (flags: { stateDir: string; on: string; sshKey?: string; hostKey?: string }) => {
      const on = parseOn(flags.on);
      if (on === 'nested') throw new InputError('cleanup --on nested: a nested host leaves nothing behind (it dies with the kvmlab that booted it, and what it changed on this host is in this host\'s journal): run kvmlab cleanup here');
      if (typeof on === 'object') {
        const { onBox } = await import('../targets/box.js');
        const { createProgress } = await import('../run/progress.js');
        process.exitCode = await onBox({ box: on, access: { sshKey: flags.sshKey, hostKey: flags.hostKey }, progress: createProgress(process.stderr), stdout: process.stdout, argv: () => ['cleanup', '--state-dir', flags.stateDir] });
        return;
      }
      const { notes, failed } = cleanupHost(flags.stateDir);
      process.stdout.write(notes.length ? `${notes.map((n) => `cleanup: ${n}`).join('\n')}\n` : 'cleanup: nothing to undo\n');
      if (failed) throw new HostError(`${failed} of ${notes.length} host changes could not be undone (why is above); undo ${failed > 1 ? 'them' : 'it'} by hand, as the user (root for host files) that ran kvmlab`);
    });
}
