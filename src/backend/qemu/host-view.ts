// The real host as collectors and pinning touch it: node fs for files, taskset for thread affinity
// (argv, no shell), pidusage for a process's CPU and memory.
import { access, mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import pidusage from 'pidusage';
import { formatCpuList } from '../../host/cpulist.js';
import type { HostView } from '../backend.js';

export class RealHostView implements HostView {
  readonly simulated = false;

  readFile(path: string): Promise<string> {
    return readFile(path, 'utf8');
  }

  readdir(path: string): Promise<string[]> {
    return readdir(path);
  }

  writeFile(path: string, data: string): Promise<void> {
    return writeFile(path, data);
  }

  async mkdir(path: string): Promise<void> {
    await mkdir(path);
  }

  rmdir(path: string): Promise<void> {
    return rmdir(path);
  }

  exists(path: string): Promise<boolean> {
    return access(path).then(
      () => true,
      () => false,
    );
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
}
