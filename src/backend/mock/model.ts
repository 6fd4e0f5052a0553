// The mock's model of what KVM does with a vCPU thread. Each vCPU is busy, idle, offline or absent;
// the exit policy says which exits KVM passes through and whether the guest sees MWAIT. From these
// rules — and nothing an experiment expects — the model derives the thread's CPU time, its exits by
// reason and KVM's halt statistics, integrated over wall-clock time with a little seeded noise.
//
// The rules are the mechanisms the list threads describe: an intercepted HLT blocks the thread until
// the next wakeup (plus halt polling); a passed-through HLT or MWAIT keeps the pCPU in guest mode;
// an MWAIT the guest sees but KVM intercepts is emulated as a NOP, so the guest's idle loop spins
// through MWAIT exits. Contention between threads on one pCPU is not modelled.
import { EXIT_BITS } from '../../model/exits.js';

export type VcpuActivity = 'busy' | 'idle' | 'offline' | 'absent';
export type IdleInstruction = 'hlt' | 'mwait' | 'poll' | 'cede';

export interface Policy {
  arch: 'x86_64' | 'ppc64';
  /** KVM_CAP_X86_DISABLE_EXITS bits in effect. */
  disableMask: number;
  /** MONITOR/MWAIT visible in the guest CPUID. */
  mwaitInCpuid: boolean;
  /** What an idle vCPU executes and what an offlined one parks in: the plan's mechanism (plan/mechanism.ts), never derived here. */
  idlesIn: 'hlt' | 'mwait' | 'poll' | 'none';
  parksIn: 'hlt' | 'mwait' | 'poll' | 'none';
  /** Effective halt polling window, ns. */
  haltPollNs: number;
  guestIdle: 'default' | 'poll' | 'halt' | 'nomwait';
  guestHaltpoll: boolean;
}

export interface Behaviour {
  /** Fraction of one pCPU the vCPU thread uses. */
  cpuFrac: number;
  /** Fraction spent in guest mode (guest_time). */
  guestFrac: number;
  /** Exits per second by VMX exit reason. */
  exitRates: Record<string, number>;
  /** Times per second the thread blocks in KVM (halt-exits that sleep) and is woken. */
  blocksPerSec: number;
  /** ns per second spent polling before blocking. */
  pollNsPerSec: number;
  idle: IdleInstruction | undefined;
}

// Rates of the guest's own wakeup sources, per second.
const IDLE_WAKEUPS = 10; // an idle online vCPU: timers and housekeeping with NOHZ idle (real KVM in the nested host: 7-10 HLT exits/s per idle vCPU of a 6.1 guest)
const OFFLINE_WAKEUPS = 0.2; // an offlined vCPU: only stray IPIs
const BUSY_INTERRUPTS = 250; // a busy vCPU: timer interrupts that exit
// Costs in ns.
const EXIT_ROUNDTRIP_NS = 1500; // one VM exit handled in the kernel and re-entered
const MWAIT_LOOP_NS = 600; // the guest's idle loop between two emulated MWAITs
const BLOCK_WAKE_NS = 12_000; // schedule out, wake, schedule in
const GUEST_HALTPOLL_NS = 200_000; // cpuidle-haltpoll's guest-side poll before HLT

/** Which idle instruction the guest uses in this state: the plan's (a pseries guest cedes). */
export function idleInstruction(activity: VcpuActivity, p: Policy): IdleInstruction | undefined {
  if (activity === 'busy' || activity === 'absent') return undefined;
  if (p.arch === 'ppc64') return 'cede';
  const insn = activity === 'offline' ? p.parksIn : p.idlesIn;
  return insn === 'none' ? 'hlt' : insn;
}

export function behaviour(activity: VcpuActivity, p: Policy): Behaviour {
  const none = { cpuFrac: 0, guestFrac: 0, exitRates: {}, blocksPerSec: 0, pollNsPerSec: 0, idle: undefined };
  if (activity === 'absent') return none;
  if (activity === 'busy') {
    const exitFrac = (BUSY_INTERRUPTS * EXIT_ROUNDTRIP_NS) / 1e9;
    return { ...none, cpuFrac: 1, guestFrac: 1 - exitFrac, exitRates: { EXTERNAL_INTERRUPT: BUSY_INTERRUPTS, MSR_WRITE: BUSY_INTERRUPTS } };
  }
  const idle = idleInstruction(activity, p)!;
  const wakeups = activity === 'offline' ? OFFLINE_WAKEUPS : IDLE_WAKEUPS;
  const passedThrough = (idle === 'hlt' && p.disableMask & EXIT_BITS.hlt) || (idle === 'mwait' && p.disableMask & EXIT_BITS.mwait);
  if (idle === 'poll' || passedThrough) {
    // The pCPU stays in guest mode: the thread looks 100% busy; only interrupts exit.
    const exitFrac = (wakeups * EXIT_ROUNDTRIP_NS) / 1e9;
    return { ...none, idle, cpuFrac: 1, guestFrac: 1 - exitFrac, exitRates: { EXTERNAL_INTERRUPT: wakeups } };
  }
  if (idle === 'mwait') {
    // Exposed but intercepted: KVM emulates MWAIT as a NOP, the idle loop spins through exits.
    const rate = 1e9 / (EXIT_ROUNDTRIP_NS + MWAIT_LOOP_NS);
    return { ...none, idle, cpuFrac: 1, guestFrac: (rate * MWAIT_LOOP_NS) / 1e9, exitRates: { MWAIT_INSTRUCTION: rate, MONITOR_INSTRUCTION: rate } };
  }
  // HLT (or H_CEDE) intercepted: the thread blocks until the next wakeup. KVM's polling window adapts
  // (virt/kvm/kvm_main.c kvm_vcpu_halt): a halt longer than the maximum window shrinks it, with the
  // default shrink of 0 to nothing, and only a halt shorter than the maximum grows it again. So a
  // guest whose wakeups come further apart than halt_poll_ns polls (almost) never — real KVM in the
  // nested host: 4 attempted polls for 100 halts at halt_poll_ns 400000 — and one whose wakeups come
  // within it polls every halt and is woken while polling, never blocking.
  const interval = 1e9 / wakeups;
  const pollNs = p.haltPollNs >= interval ? interval : 0;
  const guestPoll = p.guestHaltpoll ? Math.min(GUEST_HALTPOLL_NS, interval) : 0;
  const cpuFrac = Math.min(1, (wakeups * (BLOCK_WAKE_NS + pollNs + guestPoll + EXIT_ROUNDTRIP_NS)) / 1e9);
  return {
    ...none,
    idle,
    cpuFrac,
    guestFrac: (wakeups * guestPoll) / 1e9,
    exitRates: { [idle === 'cede' ? 'HCALL' : 'HLT']: wakeups, EXTERNAL_INTERRUPT: wakeups * 0.1 },
    blocksPerSec: p.haltPollNs >= interval ? 0 : wakeups,
    pollNsPerSec: wakeups * pollNs,
  };
}

export interface ThreadSim {
  tid: number;
  comm: string;
  affinity: number[];
  lastCpu: number;
  runNs: number;
  waitNs: number;
  slices: number;
  guestNs: number;
  voluntary: number;
  involuntary: number;
}

export interface VcpuSim extends ThreadSim {
  index: number;
  activity: VcpuActivity;
  /** Busy until this time (ms since the epoch), then idle. */
  busyUntil: number;
  exits: Record<string, number>;
  stats: Record<string, number>;
  qomPath: string;
  deviceId: string | undefined;
}

export class Noise {
  private state: number;
  constructor(seed: string) {
    let h = 2166136261;
    for (const c of seed) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
    this.state = h >>> 0;
  }
  /** Uniform in [0, 1) (mulberry32). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** A factor near 1 with the given relative spread. */
  factor(spread: number): number {
    const g = (this.next() + this.next() + this.next() - 1.5) * 2; // ~N(0, 1)
    return Math.max(0, 1 + spread * g);
  }
}

/** Integrates every thread of one simulated QEMU process over wall-clock time. */
export class ThreadAccounting {
  private last: number;
  constructor(
    private readonly noise: Noise,
    now: number,
  ) {
    this.last = now;
  }

  /** Paused (QMP stop): time passes, no vCPU runs and no thread is charged. */
  advance(now: number, vcpus: VcpuSim[], others: ThreadSim[], policy: Policy, paused = false): void {
    const dtMs = now - this.last;
    if (dtMs <= 0) return;
    this.last = now;
    if (paused) return;
    const dtNs = dtMs * 1e6;
    const dtS = dtMs / 1000;
    for (const v of vcpus) {
      if (v.activity === 'busy' && v.busyUntil <= now) v.activity = 'idle';
      if (v.activity === 'absent') continue;
      const b = behaviour(v.activity, policy);
      const f = this.noise.factor(0.02);
      const run = Math.min(dtNs, b.cpuFrac * dtNs * (b.cpuFrac >= 1 ? 1 : f));
      v.runNs += run;
      v.guestNs += b.guestFrac * dtNs;
      v.waitNs += run * 0.002 * f; // a little run-queue wait
      for (const [reason, rate] of Object.entries(b.exitRates)) v.exits[reason] = (v.exits[reason] ?? 0) + rate * dtS * this.noise.factor(0.03);
      const blocks = b.blocksPerSec * dtS * f;
      v.slices += blocks + (b.cpuFrac >= 1 ? dtS * 4 : 0); // tick preemptions when never blocking
      v.voluntary += blocks;
      v.involuntary += b.cpuFrac >= 1 ? dtS * 4 : 0;
      v.lastCpu = v.affinity[0] ?? v.lastCpu;
      const s = v.stats;
      const halts = (b.exitRates.HLT ?? b.exitRates.HCALL ?? 0) * dtS * f;
      s.halt_exits = (s.halt_exits ?? 0) + halts;
      s.halt_wakeup = (s.halt_wakeup ?? 0) + blocks;
      s.halt_attempted_poll = (s.halt_attempted_poll ?? 0) + (b.pollNsPerSec > 0 ? halts : 0);
      s.halt_successful_poll = (s.halt_successful_poll ?? 0) + Math.max(0, halts - blocks);
      s.halt_poll_fail_ns = (s.halt_poll_fail_ns ?? 0) + b.pollNsPerSec * dtS;
      s.halt_wait_ns = (s.halt_wait_ns ?? 0) + (b.blocksPerSec > 0 ? dtNs * (1 - b.cpuFrac) : 0);
      s.blocking = b.blocksPerSec > 0 ? 1 : 0;
    }
    for (const t of others) {
      const run = dtNs * 0.004 * this.noise.factor(0.2); // main loop, timers, QMP
      t.runNs += run;
      t.slices += dtS * 50;
      t.voluntary += dtS * 50;
      t.lastCpu = t.affinity[0] ?? t.lastCpu;
    }
  }
}
