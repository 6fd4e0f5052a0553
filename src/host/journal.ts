// The host-state journal: before kvmlab changes anything on the host it appends what it is about to
// change and how to undo it, fsync'd, to a file that outlives the process. Normal exit, errors,
// SIGINT and SIGTERM undo through the live journal; after a SIGKILL or a crash, `kvmlab cleanup`
// reads the file and undoes what is still recorded. A lock file keeps two runs from fighting over
// the host.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostError } from '../errors.js';
import type { Placeholder } from '../model/placeholder.js';

export type JournalEntry =
  /** A QEMU process kvmlab started: kill it if it is still the same process. */
  | { kind: 'process'; pid: number; startTicks: number; comm: string }
  /** A tracefs instance kvmlab created: disable its events and remove it. */
  | { kind: 'tracefs-instance'; path: string }
  /** A host file kvmlab wrote (module parameter, sysctl, affinity): write the old value back. */
  | { kind: 'file'; path: string; old: string }
  /** A PCI device kvmlab unbound from its driver (to hand it to vfio-pci): bind it back to that driver. */
  | { kind: 'pci-driver'; bdf: string; driver: string };

interface Line {
  id: number;
  entry?: JournalEntry;
  /** This id is undone or no longer needs undoing. */
  done?: number;
}

/** root keeps its journal in /run (gone at reboot, like the state it records); others in their temp dir. */
export const DEFAULT_STATE_DIR = process.env.KVMLAB_STATE_DIR ?? (process.getuid?.() === 0 ? '/run/kvmlab' : join(tmpdir(), `kvmlab-${process.getuid?.() ?? 'user'}`));

export class HostJournal {
  private fd: number;
  private next = 1;
  private readonly live = new Map<number, JournalEntry>();

  private constructor(
    readonly dir: string,
    private readonly lockPath: string,
  ) {
    this.fd = openSync(join(dir, 'journal.jsonl'), 'a');
  }

  /** Take the host lock and open a fresh journal. Refuses while another live kvmlab holds it. */
  static acquire(dir = DEFAULT_STATE_DIR): HostJournal {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const lockPath = join(dir, 'lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(lockPath, 'wx', 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        const pending = pendingEntries(dir);
        if (pending.length > 0) {
          unlinkSync(lockPath);
          throw new HostError(`${dir}/journal.jsonl holds host changes a previous kvmlab run did not undo (it was killed or crashed): ${pending.map(describeEntry).join('; ')}; run \`kvmlab cleanup\` first`);
        }
        return new HostJournal(dir, lockPath);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const holder = Number(readFileSync(lockPath, 'utf8').trim());
        if (holder > 0 && isAlive(holder)) throw new HostError(`another kvmlab run (pid ${holder}) holds ${lockPath}; wait for it, or stop it and run \`kvmlab cleanup\``);
        unlinkSync(lockPath); // the holder died: its journal, if any, is what cleanup is for
      }
    }
    throw new HostError(`could not take ${lockPath}`);
  }

  record(entry: JournalEntry): number {
    const id = this.next++;
    this.live.set(id, entry);
    this.append({ id, entry });
    return id;
  }

  /** The change was undone by its owner (QEMU reaped, instance removed, value restored). */
  resolve(id: number): void {
    if (!this.live.delete(id)) return;
    this.append({ id: 0, done: id });
  }

  /** Undo everything still live, newest first, then release the lock. */
  release(): string[] {
    const { notes } = undoAll([...this.live.entries()].reverse().map(([, e]) => e));
    this.live.clear();
    closeSync(this.fd);
    unlinkSync(join(this.dir, 'journal.jsonl'));
    unlinkSync(this.lockPath);
    return notes;
  }

  private append(line: Line): void {
    writeSync(this.fd, `${JSON.stringify(line)}\n`);
    fsyncSync(this.fd);
  }
}

/** kill(pid, 0): EPERM means the process exists but is not ours to signal — alive. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Entries recorded and not marked done, oldest first. */
export function pendingEntries(dir = DEFAULT_STATE_DIR): JournalEntry[] {
  const path = join(dir, 'journal.jsonl');
  if (!existsSync(path)) return [];
  const open = new Map<number, JournalEntry>();
  for (const text of readFileSync(path, 'utf8').split('\n')) {
    if (!text.trim()) continue;
    let line: Line;
    try {
      line = JSON.parse(text) as Line;
    } catch {
      continue; // a torn last line from a crash mid-write: the entry before it is intact
    }
    if (line.entry) open.set(line.id, line.entry);
    if (line.done !== undefined) open.delete(line.done);
  }
  return [...open.values()];
}

const TRACEFS_INSTANCES = '/sys/kernel/tracing/instances';

// Every VM and tracefs instance kvmlab makes carries the pid of the kvmlab process that owns it, so
// what a dead run left can be told from what a live one (another run, another user) still uses.

/** A VM's -name: kvmlab-<what>-<owner pid>-<n> (placeholders where a plan shows what a launch picks). */
export function vmName(what: string, n: number | Placeholder, owner: number | Placeholder = process.pid): string {
  return `kvmlab-${what}-${owner}-${n}`;
}

/** A tracefs instance's name: kvmlab-<owner pid>-<random hex>. */
export function instanceName(owner = process.pid): string {
  return `kvmlab-${owner}-${randomBytes(4).toString('hex')}`;
}

/** The owner of a VM (its -name) or a tracefs instance kvmlab named; undefined for other names. */
export function ownerOf(name: string, kind: 'vm' | 'instance'): number | undefined {
  const m = kind === 'vm' ? /^kvmlab-.+-(\d+)-\d+$/.exec(name) : /^kvmlab-(\d+)-[0-9a-f]+$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** A name kvmlab gave whose owning process is gone: what it named is left over. */
function orphaned(name: string, kind: 'vm' | 'instance'): boolean {
  const owner = ownerOf(name, kind);
  return owner !== undefined && owner !== process.pid && !isAlive(owner);
}

/**
 * What a kvmlab run left on this host, journaled or not: the journal's pending entries (oldest
 * first), and QEMU processes and tracefs instances kvmlab named whose owning kvmlab is gone. What a
 * live run uses — another run's, another user's — is never counted. `kvmlab cleanup` undoes these;
 * the test suite checks for them after every file.
 */
export function hostLeftovers(dir = DEFAULT_STATE_DIR): JournalEntry[] {
  const journaled = pendingEntries(dir);
  const known = (e: JournalEntry) => journaled.some((j) => JSON.stringify(j) === JSON.stringify(e));
  const instances: JournalEntry[] = existsSync(TRACEFS_INSTANCES)
    ? readdirSync(TRACEFS_INSTANCES)
        .filter((n) => orphaned(n, 'instance'))
        .map((n) => ({ kind: 'tracefs-instance', path: join(TRACEFS_INSTANCES, n) }))
    : [];
  return [...journaled, ...[...strayQemu(), ...instances].filter((e) => !known(e))];
}

/**
 * Undo what a killed or crashed run left (hostLeftovers, newest first) and clear its journal and
 * lock; refuses while a live run holds the lock. Returns what was done, one note per change.
 */
export function cleanupHost(dir = DEFAULT_STATE_DIR): Undone {
  const lock = join(dir, 'lock');
  if (existsSync(lock)) {
    const holder = Number(readFileSync(lock, 'utf8').trim());
    if (holder > 0 && isAlive(holder)) throw new HostError(`kvmlab run ${holder} is still running and holds ${lock}; stop it first (Ctrl-C or kill ${holder})`);
  }
  const undone = undoAll(hostLeftovers(dir).reverse());
  rmSync(join(dir, 'journal.jsonl'), { force: true });
  rmSync(lock, { force: true });
  return undone;
}

/** QEMU processes kvmlab started (see vmName) whose kvmlab is gone and that still run. */
function strayQemu(): JournalEntry[] {
  const out: JournalEntry[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      const nameArg = (argv[argv.indexOf('-name') + 1] ?? '').split(',')[0]!;
      const startTicks = processStartTicks(Number(name));
      if (/qemu-system-/.test(argv[0] ?? '') && orphaned(nameArg, 'vm') && startTicks !== undefined) out.push({ kind: 'process', pid: Number(name), startTicks, comm: argv[0]! });
    } catch {
      // gone while we looked
    }
  }
  return out;
}

/** One entry in a person's words: what is left on the host. */
export function describeEntry(e: JournalEntry): string {
  switch (e.kind) {
    case 'process':
      return `${e.comm} (pid ${e.pid}, ${processStartTicks(e.pid) === e.startTicks ? 'still running' : 'no longer running'})`;
    case 'tracefs-instance':
      return `tracefs instance ${e.path}`;
    case 'file':
      return `${e.path} (was ${JSON.stringify(e.old.trim())})`;
    case 'pci-driver':
      return `PCI device ${e.bdf} (unbound from ${e.driver})`;
  }
}

/** Field 22 of /proc/PID/stat: when the process started, to tell a recycled pid from ours. */
export function processStartTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return undefined;
  }
}

/** What undoing did: one note per change, and how many of them could not be undone. */
export interface Undone {
  notes: string[];
  failed: number;
}

export function undoAll(entries: readonly JournalEntry[]): Undone {
  const done: Undone = { notes: [], failed: 0 };
  for (const e of entries) {
    try {
      done.notes.push(undo(e));
    } catch (err) {
      done.notes.push(`could not undo ${JSON.stringify(e)}: ${(err as Error).message}`);
      done.failed++;
    }
  }
  return done;
}

function undo(e: JournalEntry): string {
  switch (e.kind) {
    case 'process': {
      if (processStartTicks(e.pid) !== e.startTicks) return `process ${e.pid} (${e.comm}) already gone`;
      process.kill(e.pid, 'SIGKILL');
      return `killed ${e.comm} (pid ${e.pid})`;
    }
    case 'tracefs-instance': {
      if (!existsSync(e.path)) return `tracefs instance ${e.path} already removed`;
      try {
        writeFileSync(join(e.path, 'tracing_on'), '0');
        writeFileSync(join(e.path, 'events/enable'), '0');
      } catch {
        // rmdir still works on an instance with events on; try it anyway
      }
      // A live trigger keeps the instance busy; kvmlab installs them on kvm:kvm_exit only.
      const trigger = join(e.path, 'events/kvm/kvm_exit/trigger');
      for (const t of (existsSync(trigger) ? readFileSync(trigger, 'utf8') : '').split('\n')) {
        if (t.trim() && !t.startsWith('#')) writeFileSync(trigger, `!${t.replace(/\s*\[active\]\s*$/, '').trim()}`);
      }
      rmdirSync(e.path); // tracefs removes an instance, files and all, with rmdir
      return `removed tracefs instance ${e.path}`;
    }
    case 'file': {
      // an unset driver_override reads "(null)"; written back it would name a driver called that
      const old = e.path.endsWith('/driver_override') && e.old.trim() === '(null)' ? '\n' : e.old;
      writeFileSync(e.path, old);
      return `restored ${e.path} to ${JSON.stringify(e.old.trim())}`;
    }
    case 'pci-driver': {
      const dev = `/sys/bus/pci/devices/${e.bdf}`;
      writeFileSync(`${dev}/driver_override`, '\n');
      const now = /^DRIVER=(.+)$/m.exec(readFileSync(`${dev}/uevent`, 'utf8'))?.[1]?.trim();
      if (now === e.driver) return `${e.bdf} already bound to ${e.driver}`;
      if (now) writeFileSync(`/sys/bus/pci/drivers/${now}/unbind`, e.bdf);
      writeFileSync(`/sys/bus/pci/drivers/${e.driver}/bind`, e.bdf);
      return `gave ${e.bdf} back to ${e.driver}${now ? ` (from ${now})` : ''}`;
    }
  }
}
