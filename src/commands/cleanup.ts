// `kvmlab cleanup`: after a run was killed or crashed, undo what it left on the host (its journal,
// and any kvmlab-named QEMU process or tracefs instance), unless a live run still holds the lock.
import type { Command } from 'commander';
import { HostError } from '../errors.js';
import { cleanupHost, DEFAULT_STATE_DIR } from '../host/journal.js';

export function registerCleanup(program: Command): void {
  program
    .command('cleanup')
    .description('after a kvmlab run was killed or crashed: undo the host changes its journal records, kill QEMU it started, remove its tracefs instances')
    .option('--state-dir <dir>', 'where the journal and lock live', DEFAULT_STATE_DIR)
    .action((flags: { stateDir: string }) => {
      const { notes, failed } = cleanupHost(flags.stateDir);
      process.stdout.write(notes.length ? `${notes.map((n) => `cleanup: ${n}`).join('\n')}\n` : 'cleanup: nothing to undo\n');
      if (failed) throw new HostError(`${failed} of ${notes.length} host changes could not be undone (why is above); undo ${failed > 1 ? 'them' : 'it'} by hand, as the user (root for host files) that ran kvmlab`);
    });
}
