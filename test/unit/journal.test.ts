import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HostError } from '../../src/errors.js';
import { HostJournal, hostLeftovers, ownerOf, pendingEntries, processStartTicks, undoAll, vmName } from '../../src/host/journal.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'kvmlab-journal-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('host-state journal', () => {
  it('undoes what is still live on release, newest first, and leaves nothing behind', () => {
    const dir = tmp();
    const setting = join(dir, 'halt_poll_ns');
    writeFileSync(setting, '50000\n');
    const j = HostJournal.acquire(dir);
    j.record({ kind: 'file', path: setting, old: '200000\n' });
    const resolved = j.record({ kind: 'file', path: setting, old: 'never written back\n' });
    j.resolve(resolved);
    expect(pendingEntries(dir)).toHaveLength(1);
    const notes = j.release();
    expect(notes).toEqual([`restored ${setting} to "200000"`]);
    expect(readFileSync(setting, 'utf8')).toBe('200000\n');
    expect(existsSync(join(dir, 'lock'))).toBe(false);
    expect(existsSync(join(dir, 'journal.jsonl'))).toBe(false);
  });

  it('refuses a second run while the first holds the lock', () => {
    const dir = tmp();
    const j = HostJournal.acquire(dir);
    expect(() => HostJournal.acquire(dir)).toThrow(HostError);
    expect(() => HostJournal.acquire(dir)).toThrow(new RegExp(`pid ${process.pid}`));
    j.release();
    HostJournal.acquire(dir).release();
  });

  it('after a crash, refuses to start until cleanup, and cleanup kills our process but not a recycled pid', async () => {
    const dir = tmp();
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    await new Promise((r) => child.once('spawn', r));
    const pid = child.pid!;
    const lines = [
      { id: 1, entry: { kind: 'process', pid, startTicks: processStartTicks(pid), comm: 'sleep' } },
      { id: 2, entry: { kind: 'process', pid, startTicks: 1, comm: 'a recycled pid' } },
    ];
    writeFileSync(join(dir, 'journal.jsonl'), `${lines.map((l) => JSON.stringify(l)).join('\n')}\n{"id":3,"entr`); // torn last line
    writeFileSync(join(dir, 'lock'), '999999999\n'); // a holder that no longer exists
    expect(() => HostJournal.acquire(dir)).toThrow(/did not undo .* run `kvmlab cleanup` first/);
    // it says what is left, so a person (or a CI log) knows which run to blame
    expect(() => HostJournal.acquire(dir)).toThrow(new RegExp(`sleep \\(pid ${pid}, still running\\); a recycled pid \\(pid ${pid}, no longer running\\)`));
    const exited = new Promise((r) => child.once('exit', (_c, sig) => r(sig)));
    expect(undoAll(pendingEntries(dir).reverse())).toEqual({ notes: ['process ' + pid + ' (a recycled pid) already gone', `killed sleep (pid ${pid})`], failed: 0 });
    expect(await exited).toBe('SIGKILL');
  });

  it('counts as left over only what a kvmlab that is gone started, never a live run\'s', async () => {
    const gone = spawn('true');
    await new Promise((r) => gone.once('exit', r));
    const fake = (owner: number) => spawn('bash', ['-c', `exec -a qemu-system-x86_64 ${process.execPath} -e 'setTimeout(() => {}, 60000)' -- -name ${vmName('journal-test', 1, owner)},debug-threads=on`], { stdio: 'ignore' });
    const live = fake(process.pid);
    const orphan = fake(gone.pid!);
    try {
      await new Promise((r) => setTimeout(r, 300));
      const pids = hostLeftovers(tmp()).map((e) => (e.kind === 'process' ? e.pid : -1));
      expect(pids).toContain(orphan.pid);
      expect(pids).not.toContain(live.pid);
      expect(ownerOf(vmName('x-y', 3, 1234), 'vm')).toBe(1234);
      expect(ownerOf('kvmlab-4321-0badcafe', 'instance')).toBe(4321);
      expect(ownerOf('someone-elses', 'vm')).toBeUndefined();
    } finally {
      live.kill('SIGKILL');
      orphan.kill('SIGKILL');
    }
  });
});
