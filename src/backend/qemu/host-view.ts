// The real host as collectors and pinning touch it: node fs for files, taskset for thread affinity
// (argv, no shell), pidusage for a process's CPU and memory. With a journal, every change that would
// outlive kvmlab is recorded before it is made: a tracefs instance created, a host file overwritten
// outside one (its old value). Affinities are set only on threads of QEMU processes kvmlab started,
// which die with them, so they need no undoing.
import { spawn } from 'node:child_process';
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { access, mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import pidusage from 'pidusage';
import { formatCpuList } from '../../model/cpulist.js';
import type { HostJournal } from '../../host/journal.js';
import type { HostProcess, HostView, OpenFile, ProgramResult } from '../backend.js';

/** A directory kvmlab creates that holds host state: tracefs instances. */
const INSTANCE = /\/instances\/[^/]+$/;

/** sysfs files that act rather than hold a value (write-only): nothing to read back and restore. */
const PCI_ACTION = /^\/sys\/bus\/pci\/(drivers_probe|drivers\/[^/]+\/(bind|new_id|remove_id))$/;

export class RealHostView implements HostView {
  private readonly created = new Map<string, number>();

  constructor(private readonly journal?: HostJournal) {}

  readFile(path: string): Promise<string> {
    return readFile(path, 'utf8');
  }

  /**
   * procfs regenerates a file on every read at offset 0: one open, then one pread per sample. A read
   * that returns less than it asked for has the whole text (procfs fills a read from its one
   * generated page): no second read to learn of the end.
   */
  openFile(path: string): OpenFile {
    const fd = openSync(path, 'r');
    return {
      read: (into) => {
        let n = 0;
        for (let got; (got = readSync(fd, into, n, into.length - n, n)) > 0; ) {
          n += got;
          if (n === into.length) throw new Error(`${path} is larger than ${into.length} bytes`);
          if (got < into.length - (n - got)) break;
        }
        return n;
      },
      close: () => closeSync(fd),
    };
  }

  readdir(path: string): Promise<string[]> {
    return readdir(path);
  }

  async writeFile(path: string, data: string): Promise<void> {
    const inside = [...this.created.keys()].some((dir) => path.startsWith(`${dir}/`));
    if (this.journal && !inside) {
      // sysfs's PCI actions hold no value to restore: an unbind is undone by binding back, a probe by that
      const unbind = /^\/sys\/bus\/pci\/drivers\/([^/]+)\/unbind$/.exec(path);
      if (unbind) this.journal.record({ kind: 'pci-driver', bdf: data.trim(), driver: unbind[1]! });
      else if (!PCI_ACTION.test(path)) this.journal.record({ kind: 'file', path, old: await readFile(path, 'utf8') });
    }
    await writeFile(path, data);
  }

  async mkdir(path: string): Promise<void> {
    const id = this.journal && INSTANCE.test(path) ? this.journal.record({ kind: 'tracefs-instance', path }) : 0;
    await mkdir(path);
    this.created.set(path, id);
  }

  async rmdir(path: string): Promise<void> {
    await rmdir(path);
    const id = this.created.get(path);
    if (id !== undefined) this.journal?.resolve(id);
    this.created.delete(path);
  }

  exists(path: string): Promise<boolean> {
    return access(path).then(
      () => true,
      () => false,
    );
  }

  access(path: string, mode: 'w' | 'x'): Promise<boolean> {
    return access(path, mode === 'w' ? constants.W_OK : constants.X_OK).then(
      () => true,
      () => false,
    );
  }

  async run(file: string, args: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<ProgramResult> {
    const r = await execa(file, args, { reject: false, stdin: 'ignore', timeout: timeoutMs, ...(signal ? { cancelSignal: signal } : {}) });
    return { exitCode: r.failed && r.exitCode === undefined ? -1 : (r.exitCode ?? -1), stdout: r.stdout, stderr: r.failed && !r.stderr ? (r.shortMessage ?? '') : r.stderr };
  }

  async setAffinity(tid: number, cpus: readonly number[]): Promise<void> {
    if (!Number.isInteger(tid) || tid <= 0) throw new Error(`setAffinity: ${tid} is not a thread id`);
    if (cpus.length === 0) throw new Error(`setAffinity: no CPUs given for thread ${tid}`);
    const list = formatCpuList(cpus);
    const r = await execa('taskset', ['-p', '-c', list, String(tid)], { reject: false, stdin: 'ignore', timeout: 10_000 });
    if (r.failed) throw new Error(`taskset -p -c ${list} ${tid} failed: ${(r.stderr || r.shortMessage || '').trim()}`);
  }

  async processUsage(pid: number): Promise<{ cpuPct: number; rssBytes: number }> {
    const s = await pidusage(pid);
    return { cpuPct: s.cpu, rssBytes: s.memory };
  }

  spawn(file: string, args: readonly string[]): HostProcess {
    const proc = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const stderr: string[] = [];
    proc.stderr?.on('data', (d: Buffer) => stderr.push(d.toString()));
    const exited = new Promise<number | null>((resolve) => {
      proc.on('exit', (code) => resolve(code));
      proc.on('error', (e) => {
        stderr.push(`${file}: ${e.message}`);
        resolve(-1);
      });
    });
    return { stderr, exited, kill: (sig) => proc.exitCode === null && proc.signalCode === null && proc.kill(sig) };
  }
}
