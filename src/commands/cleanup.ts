import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { HostError } from '../errors.js';
import { DEFAULT_STATE_DIR, pendingEntries, processStartTicks, undoAll, type JournalEntry } from '../host/journal.js';

const TRACEFS = '/sys/kernel/tracing/instances';

/** QEMU processes kvmlab started (it names every VM kvmlab-…) that are still running. */
function strayQemu(): JournalEntry[] {
  const out: JournalEntry[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      const nameArg = argv[argv.indexOf('-name') + 1] ?? '';
      if (/qemu-system-/.test(argv[0] ?? '') && nameArg.startsWith('kvmlab-')) {
        const startTicks = processStartTicks(Number(name));
        if (startTicks !== undefined) out.push({ kind: 'process', pid: Number(name), startTicks, comm: argv[0]! });
      }
    } catch {
      // gone while we looked
    }
  }
  return out;
}

export function registerCleanup(program: Command): void {
  program
    .command('cleanup')
    .description('after a kvmlab run was killed or crashed: undo the host changes its journal records, kill QEMU it started, remove its tracefs instances')
    .option('--state-dir <dir>', 'where the journal and lock live', DEFAULT_STATE_DIR)
    .action((flags: { stateDir: string }) => {
      const lock = join(flags.stateDir, 'lock');
      if (existsSync(lock)) {
        const holder = Number(readFileSync(lock, 'utf8').trim());
        let alive = false;
        try {
          process.kill(holder, 0);
          alive = true;
        } catch {
          // dead holder: its leftovers are ours to clean
        }
        if (alive) throw new HostError(`kvmlab run ${holder} is still running and holds ${lock}; stop it first (Ctrl-C or kill ${holder})`);
      }
      const journaled = pendingEntries(flags.stateDir);
      const instances: JournalEntry[] = existsSync(TRACEFS)
        ? readdirSync(TRACEFS)
            .filter((n) => n.startsWith('kvmlab-'))
            .map((n) => ({ kind: 'tracefs-instance', path: join(TRACEFS, n) }))
        : [];
      const notes = undoAll([...journaled.reverse(), ...strayQemu(), ...instances]);
      rmSync(join(flags.stateDir, 'journal.jsonl'), { force: true });
      rmSync(lock, { force: true });
      process.stdout.write(notes.length ? `${notes.map((n) => `cleanup: ${n}`).join('\n')}\n` : 'cleanup: nothing to undo\n');
    });
}
