// The simulated host as collectors see it: procfs files for the simulated QEMU processes' threads,
// rendered in the kernel's own formats from the model, and sched_setaffinity on those threads.
// Collectors parse these with the same parsers they use on a real /proc.
import { formatCpuList } from '../../model/cpulist.js';
import type { HostProcess, HostView, OpenFile, ProgramResult } from '../backend.js';
import type { Clock } from '../clock.js';
import { HOST_DIRS, HOST_FILES, HOST_PROGRAMS } from './host-files.js';
import { MockPci } from './pci.js';
import { MockHostSim } from './host-sim.js';
import type { MockMachine } from './machine.js';
import type { ThreadSim } from './model.js';
import { MOCK_HOST } from './profile.js';
import { MockTracefs } from './tracefs.js';

const USER_HZ = 100;

function enoent(path: string): Error {
  return Object.assign(new Error(`ENOENT: no such file or directory (simulated host), open '${path}'`), { code: 'ENOENT' });
}

export class MockHostView implements HostView {
  private readonly machines = new Map<number, MockMachine>();
  private readonly usageMark = new Map<number, { at: number; ns: number }>();
  /** Host-wide counters and trace events derived from the machines' models. */
  readonly sim: MockHostSim;
  /** /sys/kernel/tracing of the simulated host. */
  readonly tracefs: MockTracefs;
  /** /sys/bus/pci of the simulated host. */
  readonly pci = new MockPci();

  constructor(private readonly clock: Clock) {
    this.sim = new MockHostSim(() => this.machines.values(), clock);
    this.tracefs = new MockTracefs(this.sim);
  }

  attach(m: MockMachine): void {
    this.sim.sync();
    this.machines.set(m.pid, m);
  }

  detach(m: MockMachine): void {
    this.sim.sync(); // account its last moments before it goes
    this.machines.delete(m.pid);
  }

  private threadsOf(m: MockMachine): ThreadSim[] {
    return [...m.others, ...m.vcpus.filter((v) => v.activity !== 'absent')];
  }

  private find(pid: number, tid: number): { m: MockMachine; t: ThreadSim } | undefined {
    const m = this.machines.get(pid);
    if (!m || m.deadReason) return undefined;
    m.sync();
    const t = this.threadsOf(m).find((x) => x.tid === tid);
    return t ? { m, t } : undefined;
  }

  /** A fault to test with: from this time on (the clock's ms) every read fails with EIO. */
  failReadsFrom = Infinity;

  /** A simulated thread's procfs file, rendered from the model at the moment of reading. */
  private readTask(path: string): string | undefined {
    if (this.clock.now() >= this.failReadsFrom) throw Object.assign(new Error(`EIO: i/o error (simulated fault), read '${path}'`), { code: 'EIO' });
    const task = /^\/proc\/(\d+)\/task\/(\d+)\/(schedstat|stat|status|comm)$/.exec(path);
    if (!task) return undefined;
    const found = this.find(Number(task[1]), Number(task[2]));
    if (!found) throw enoent(path);
    return render(task[3]!, found.m, found.t);
  }

  openFile(path: string): OpenFile {
    if (this.readTask(path) === undefined) throw enoent(path);
    return {
      read: (into) => {
        const bytes = Buffer.from(this.readTask(path)!);
        if (bytes.length >= into.length) throw new Error(`${path} is larger than ${into.length} bytes`);
        into.set(bytes);
        return bytes.length;
      },
      close: () => undefined,
    };
  }

  async readFile(path: string): Promise<string> {
    const task = this.readTask(path);
    if (task !== undefined) return task;
    if (this.tracefs.handles(path)) return this.tracefs.readFile(path);
    if (this.pci.handles(path)) return this.pci.readFile(path);
    if (path === '/proc/interrupts') return this.sim.renderInterrupts();
    if (path === '/proc/stat') return this.sim.renderStat();
    const file = HOST_FILES.get(path);
    if (file !== undefined) return file;
    throw enoent(path);
  }

  async readdir(path: string): Promise<string[]> {
    if (this.tracefs.handles(path)) return this.tracefs.readdir(path);
    if (this.pci.handles(path)) return this.pci.readdir(path);
    const m = /^\/proc\/(\d+)\/task\/?$/.exec(path);
    const machine = m ? this.machines.get(Number(m[1])) : undefined;
    if (machine && !machine.deadReason) return this.threadsOf(machine).map((t) => String(t.tid));
    const dir = HOST_DIRS.get(path.replace(/\/+$/, '') || '/');
    if (dir) return [...dir];
    throw enoent(path);
  }

  async writeFile(path: string, data: string): Promise<void> {
    if (this.tracefs.handles(path)) return this.tracefs.writeFile(path, data);
    if (this.pci.handles(path)) return this.pci.writeFile(path, data);
    throw enoent(path);
  }

  async mkdir(path: string): Promise<void> {
    if (this.tracefs.handles(path)) return this.tracefs.mkdir(path);
    throw enoent(path);
  }

  async rmdir(path: string): Promise<void> {
    if (this.tracefs.handles(path)) return this.tracefs.rmdir(path);
    throw enoent(path);
  }

  async exists(path: string): Promise<boolean> {
    if (this.tracefs.handles(path)) return this.tracefs.exists(path);
    if (this.pci.handles(path)) return this.pci.exists(path);
    if (HOST_DIRS.has(path) || HOST_PROGRAMS.has(path) || (MOCK_HOST.devices as readonly string[]).includes(path)) return true;
    return this.readFile(path).then(
      () => true,
      () => false,
    );
  }

  async access(path: string, mode: 'w' | 'x'): Promise<boolean> {
    if (mode === 'x') return HOST_PROGRAMS.has(path);
    // kvmlab runs as root on the simulated host; only tracefs takes writes there
    return this.tracefs.handles(path) && this.tracefs.exists(path);
  }

  async run(file: string): Promise<ProgramResult> {
    return HOST_PROGRAMS.get(file)?.() ?? { exitCode: -1, stdout: '', stderr: `${file}: not found on the simulated host` };
  }

  async setAffinity(tid: number, cpus: readonly number[]): Promise<void> {
    for (const m of this.machines.values()) {
      const t = this.threadsOf(m).find((x) => x.tid === tid);
      if (!t) continue;
      const bad = cpus.filter((c) => !MOCK_HOST.cpus.includes(c as never));
      if (bad.length) throw new Error(`sched_setaffinity(${tid}): Invalid argument (CPU ${bad.join(',')} not on the simulated host)`);
      m.sync();
      t.affinity = [...cpus];
      if (!cpus.includes(t.lastCpu)) t.lastCpu = cpus[0]!;
      return;
    }
    throw new Error(`sched_setaffinity(${tid}): No such process (simulated host)`);
  }

  async processUsage(pid: number): Promise<{ cpuPct: number; rssBytes: number }> {
    const m = this.machines.get(pid);
    if (!m || m.deadReason) throw new Error(`No such process ${pid} (simulated host)`);
    m.sync();
    const ns = this.threadsOf(m).reduce((s, t) => s + t.runNs, 0);
    const now = this.clock.now();
    const prev = this.usageMark.get(pid) ?? { at: m.bootedAt, ns: 0 };
    this.usageMark.set(pid, { at: now, ns });
    const cpuPct = now > prev.at ? ((ns - prev.ns) / 1e6 / (now - prev.at)) * 100 : 0;
    return { cpuPct, rssBytes: 256 * 1024 * 1024 };
  }

  /** The simulated host runs no programs: they are not installed there. */
  spawn(file: string): HostProcess {
    return { stderr: [`${file}: not found on the simulated host`], exited: Promise.resolve(-1), kill: () => undefined };
  }

}

function render(file: string, m: MockMachine, t: ThreadSim): string {
  const ticks = (ns: number) => Math.floor((ns / 1e9) * USER_HZ);
  switch (file) {
    case 'schedstat':
      return `${Math.round(t.runNs)} ${Math.round(t.waitNs)} ${Math.round(t.slices)}\n`;
    case 'comm':
      return `${t.comm}\n`;
    case 'status':
      return [
        `Name:\t${t.comm}`,
        'State:\tS (sleeping)',
        `Tgid:\t${m.pid}`,
        `Pid:\t${t.tid}`,
        'PPid:\t1',
        `Threads:\t${m.others.length + m.presentCpus().length}`,
        `Cpus_allowed_list:\t${formatCpuList(t.affinity)}`,
        `voluntary_ctxt_switches:\t${Math.round(t.voluntary)}`,
        `nonvoluntary_ctxt_switches:\t${Math.round(t.involuntary)}`,
        '',
      ].join('\n');
    default: {
      // utime includes guest time, as the kernel accounts it.
      const guest = ticks(t.guestNs);
      const utime = Math.max(guest, ticks(t.runNs * 0.6 + t.guestNs * 0.4));
      const stime = Math.max(0, ticks(t.runNs) - utime);
      const fields = [
        t.tid, `(${t.comm})`, 'S', 1, m.pid, m.pid, 0, -1, 4194560, 1000, 0, 0, 0, utime, stime, 0, 0, 20, 0, m.others.length + m.vcpus.length,
        0, 100, 1_300_000_000, 65_536, '18446744073709551615', 1, 1, 0, 0, 0, 0, 0, 4096, 0, 0, 0, 0, -1, t.lastCpu, 0, 0, 0, guest, 0,
      ];
      return `${fields.join(' ')}\n`;
    }
  }
}
