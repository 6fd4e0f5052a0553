// A simulated QEMU process with its guest: vCPU slots and threads, the guest kernel's CPU hotplug
// rules for each arch, its log, and the platform events QEMU would emit. The QMP server, SSH server
// and host view of the mock are thin skins over this object.
import { Noise, ThreadAccounting, type Policy, type ThreadSim, type VcpuSim } from './model.js';
import { MOCK_GUEST_KERNEL, MOCK_HOST } from './profile.js';
import { cmdlineFacts } from '../../formats/cmdline.js';
import type { VmPlan } from '../../plan/vm.js';
import { mechanismOf } from '../../plan/mechanism.js';
import type { VirtualClock } from '../clock.js';

export type PlatformEvent = { event: string; data: Record<string, unknown> };

export interface MachineConfig {
  name: string;
  arch: 'x86_64' | 'ppc64';
  cpus: number;
  maxcpus: number;
  /** The guest kernel's command line: the simulated guest reads its idle settings from it, as Linux does. */
  cmdline: string;
  /** What kvmlab asked of KVM and QEMU for this VM; the mock carries it out as they would. */
  plan: VmPlan;
  /** The simulation's time: the backend's virtual clock. */
  clock: VirtualClock;
  /** Delay of guest-side unplug completion, ms (real pseries under TCG: ~30 s). */
  unplugDelayMs?: number;
  /** The guest never answers device_del (a fault to test with). */
  ignoreUnplug?: boolean;
  /** Host PCI functions given to it through VFIO: their interrupts are VT-d posted to its vCPUs. */
  assignedDevices?: number;
}

let nextPid = 3_900_000; // above any real pid on a default pid_max, so nobody mistakes them

export class MockMachine {
  readonly pid: number;
  readonly vcpus: VcpuSim[] = [];
  readonly others: ThreadSim[];
  readonly policy: Policy;
  readonly bootedAt: number;
  readonly kernelRelease: string;
  private readonly log: { t: number; line: string }[] = [];
  private readonly accounting: ThreadAccounting;
  /** Aborted when the process dies: its pending platform events die with it. */
  private readonly life = new AbortController();
  private readonly listeners = new Set<(e: PlatformEvent) => void>();
  /** Devices with an unplug request the guest has not completed. */
  private readonly pendingUnplug = new Set<string>();
  private dead: string | undefined;

  constructor(readonly config: MachineConfig) {
    this.bootedAt = config.clock.now();
    this.pid = nextPid;
    nextPid += 100;
    const { plan } = config;
    const boot = cmdlineFacts(config.cmdline);
    const idle = boot.idle;
    const mechanism = mechanismOf(plan, config.arch);
    this.policy = {
      arch: config.arch,
      disableMask: plan.disableExitsMask,
      mwaitInCpuid: plan.mwaitInCpuid,
      idlesIn: mechanism.idle,
      parksIn: mechanism.parked,
      haltPollNs: plan.haltPollNs ?? Number(MOCK_HOST.kvmParams.halt_poll_ns),
      guestIdle: idle === 'poll' || idle === 'halt' || idle === 'nomwait' ? idle : 'default',
      guestHaltpoll: boot['cpuidle_haltpoll.force'] === '1',
    };
    this.kernelRelease = MOCK_GUEST_KERNEL[config.arch];
    this.accounting = new ThreadAccounting(new Noise(config.name), this.bootedAt);
    const thread = (offset: number, comm: string): ThreadSim => ({
      tid: this.pid + offset,
      comm,
      affinity: [...MOCK_HOST.cpus],
      lastCpu: 0,
      runNs: 0,
      waitNs: 0,
      slices: 0,
      guestNs: 0,
      voluntary: 0,
      involuntary: 0,
    });
    this.others = [thread(0, `qemu-system-${config.arch}`), thread(1, 'call_rcu'), thread(2, 'IO mon_iothread')];
    for (let i = 0; i < config.maxcpus; i++) {
      this.vcpus.push({
        ...thread(10 + i, `CPU ${i}/KVM`),
        index: i,
        activity: i < config.cpus ? 'idle' : 'absent',
        busyUntil: 0,
        exits: {},
        stats: {},
        qomPath: i < config.cpus ? `/machine/unattached/device[${i}]` : '',
        deviceId: undefined,
      });
    }
    this.guestLog(`Linux version ${this.kernelRelease} (simulated by kvmlab's mock backend)`);
    this.guestLog(`Command line: ${config.cmdline}`);
    this.guestLog(`smp: Brought up 1 node, ${config.cpus} CPUs`);
  }

  // ---- time and life -----------------------------------------------------------------------

  sync(): void {
    this.accounting.advance(this.config.clock.now(), this.vcpus, this.others, this.policy, this.paused);
  }

  /** QMP stop / cont: the vCPUs stop running (and exiting) until resumed. */
  paused = false;
  setPaused(paused: boolean): void {
    this.sync();
    if (this.paused !== paused) this.emit({ event: paused ? 'STOP' : 'RESUME', data: {} });
    this.paused = paused;
  }

  onEvent(fn: (e: PlatformEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get deadReason(): string | undefined {
    return this.dead;
  }

  kill(reason: string): void {
    if (this.dead) return;
    this.dead = reason;
    this.life.abort();
    this.emit({ event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } });
  }

  /** Something that happens to this process `ms` from now on the simulation's clock, unless it dies first. */
  after(ms: number, fn: () => void): void {
    const cancel = this.config.clock.schedule(ms, () => {
      if (!this.dead) fn();
    });
    this.life.signal.addEventListener('abort', cancel, { once: true });
  }

  private emit(e: PlatformEvent): void {
    for (const fn of this.listeners) fn(e);
  }

  // ---- the guest kernel ----------------------------------------------------------------------

  guestLog(line: string): void {
    this.log.push({ t: (this.config.clock.now() - this.bootedAt) / 1000, line });
  }

  dmesg(): string {
    return this.log.map(({ t, line }) => `[${t.toFixed(6).padStart(12)}] ${line}\n`).join('');
  }

  /** Guest CPU numbers that exist in the guest (plugged). */
  presentCpus(): number[] {
    return this.vcpus.filter((v) => v.activity !== 'absent').map((v) => v.index);
  }

  onlineCpus(): number[] {
    return this.vcpus.filter((v) => v.activity === 'idle' || v.activity === 'busy').map((v) => v.index);
  }

  /** Does /sys/devices/system/cpu/cpuN/online exist? x86 Linux cannot offline CPU0. */
  hasOnlineFile(cpu: number): boolean {
    const v = this.vcpus[cpu];
    return v !== undefined && v.activity !== 'absent' && !(this.config.arch === 'x86_64' && cpu === 0);
  }

  /** Write to cpuN/online; returns an errno name on failure. */
  setOnline(cpu: number, online: boolean): 'EBUSY' | 'ENOENT' | undefined {
    this.sync();
    const v = this.vcpus[cpu];
    if (!v || !this.hasOnlineFile(cpu)) return 'ENOENT';
    const isOnline = v.activity === 'idle' || v.activity === 'busy';
    if (isOnline === online) return undefined;
    if (!online && this.onlineCpus().length === 1) return 'EBUSY';
    if (online) {
      v.activity = 'idle';
      this.guestLog(this.config.arch === 'x86_64' ? `smpboot: Booting Node 0 Processor ${cpu} APIC 0x${cpu.toString(16)}` : `cpu ${cpu} (hwid ${cpu}) online`);
    } else {
      v.activity = 'offline';
      this.guestLog(this.config.arch === 'x86_64' ? `smpboot: CPU ${cpu} is now offline` : `cpu ${cpu} (hwid ${cpu}) Ready to die...`);
    }
    return undefined;
  }

  /** Start a busy loop on a guest CPU for a while (kvmlab-load busy). */
  busy(cpu: number, seconds: number): boolean {
    this.sync();
    const v = this.vcpus[cpu];
    if (!v || (v.activity !== 'idle' && v.activity !== 'busy')) return false;
    v.activity = 'busy';
    v.busyUntil = this.config.clock.now() + seconds * 1000;
    return true;
  }

  stopLoads(): void {
    this.sync();
    for (const v of this.vcpus) if (v.activity === 'busy') v.activity = 'idle';
  }

  // ---- CPU hotplug, as QEMU and the guest do it ----------------------------------------------

  /** The -cpu model's name, without its feature switches. */
  get cpuModelName(): string {
    return this.config.plan.cpuModel.split(',')[0]!;
  }

  hotpluggableType(): string {
    return this.config.arch === 'x86_64' ? `${this.cpuModelName}-x86_64-cpu` : `${this.cpuModelName}_v2.0-spapr-cpu-core`;
  }

  slotProps(index: number): Record<string, number> {
    return this.config.arch === 'x86_64' ? { 'socket-id': 0, 'core-id': index, 'thread-id': 0 } : { 'core-id': index };
  }

  /** device_add of a CPU; returns an error description, or undefined. */
  plug(driver: string, id: string | undefined, props: Record<string, unknown>): string | undefined {
    this.sync();
    if (driver !== this.hotpluggableType()) return `'${driver}' is not a valid device model name for a hot-pluggable CPU here (use ${this.hotpluggableType()})`;
    const slot = this.vcpus.find((v) => Object.entries(this.slotProps(v.index)).every(([k, val]) => props[k] === val));
    if (!slot) return `no CPU slot matches ${JSON.stringify(props)}`;
    if (slot.activity !== 'absent') return `CPU[${slot.index}] with APIC ID ${slot.index} exists`;
    if (id !== undefined && this.vcpus.some((v) => v.deviceId === id)) return `Duplicate device ID '${id}'`;
    slot.activity = 'offline';
    slot.deviceId = id;
    slot.qomPath = id ? `/machine/peripheral/${id}` : `/machine/peripheral-anon/device[${slot.index}]`;
    slot.busyUntil = 0;
    if (this.config.arch === 'x86_64') {
      this.guestLog(`CPU${slot.index} has been hot-added`);
      this.after(20, () => this.emit({ event: 'ACPI_DEVICE_OST', data: { info: { device: id, source: 1, status: 0, slot: String(slot.index), 'slot-type': 'CPU' } } }));
    } else {
      this.guestLog(`pseries-hotplug-cpu: CPU ${slot.index} added`);
    }
    return undefined;
  }

  /** device_del; returns an error description, or undefined when the request was sent to the guest. */
  unplug(id: string): string | undefined {
    this.sync();
    const v = this.vcpus.find((c) => c.deviceId === id && c.activity !== 'absent');
    if (!v) return `Device '${id}' not found`;
    if (this.config.ignoreUnplug) return undefined;
    if (this.config.arch === 'x86_64') {
      if (this.pendingUnplug.has(id)) return undefined; // ACPI: a repeated request is ignored
      this.pendingUnplug.add(id);
      this.after(30, () => this.emit({ event: 'ACPI_DEVICE_OST', data: { info: { device: id, source: 3, status: 132, slot: String(v.index), 'slot-type': 'CPU' } } }));
      this.after(this.config.unplugDelayMs ?? 150, () => this.completeUnplug(v, id));
      return undefined;
    }
    // pseries: every request pulses the guest (QEMU ≥ 6.0); the guest refuses to remove its last online CPU.
    this.pendingUnplug.add(id);
    this.after(50, () => {
      const others = this.onlineCpus().filter((c) => c !== v.index);
      if ((v.activity === 'idle' || v.activity === 'busy') && others.length === 0) {
        this.guestLog(`pseries-hotplug-cpu: Unable to remove last online CPU PowerPC,${this.cpuModelName.toUpperCase()}`);
        this.guestLog(`pseries-hotplug-cpu: Failed to offline CPU PowerPC,${this.cpuModelName.toUpperCase()}, rc: -16`);
        this.after(1000, () => this.emit({ event: 'DEVICE_UNPLUG_GUEST_ERROR', data: { device: id, path: v.qomPath } }));
        return;
      }
      this.after(this.config.unplugDelayMs ?? 1500, () => this.completeUnplug(v, id));
    });
    return undefined;
  }

  private completeUnplug(v: VcpuSim, id: string): void {
    if (v.activity === 'absent') return;
    if (v.activity !== 'offline') {
      v.activity = 'offline';
      this.guestLog(this.config.arch === 'x86_64' ? `smpboot: CPU ${v.index} is now offline` : `cpu ${v.index} (hwid ${v.index}) Ready to die...`);
    }
    this.sync();
    v.activity = 'absent';
    const path = v.qomPath;
    v.deviceId = undefined;
    v.qomPath = '';
    this.pendingUnplug.delete(id);
    if (this.config.arch === 'x86_64') {
      this.emit({ event: 'DEVICE_DELETED', data: { path: `${path}/lapic` } });
      this.emit({ event: 'DEVICE_DELETED', data: { device: id, path } });
      // as QEMU 7.2 reports it: the device is gone, so only its slot is named
      this.emit({ event: 'ACPI_DEVICE_OST', data: { info: { source: 3, status: 0, slot: String(v.index), 'slot-type': 'CPU' } } });
    } else {
      this.emit({ event: 'DEVICE_DELETED', data: { path: `${path}/thread[0]` } });
      this.emit({ event: 'DEVICE_DELETED', data: { device: id, path } });
    }
  }

  // ---- KVM statistics (query-stats) ------------------------------------------------------------

  vcpuStats(v: VcpuSim): Record<string, number> {
    // KVM counts each exit once in `exits`, whatever its reason: the whole exits the host simulation
    // has produced by reason (the tracepoints fire for the same ones).
    const exits = Object.values(v.exits).reduce((sum, n) => sum + Math.floor(n), 0);
    return { exits, ...Object.fromEntries(Object.entries(v.stats).map(([k, val]) => [k, Math.round(val)])) };
  }
}
