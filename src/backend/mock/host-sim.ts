// The simulated host around the simulated QEMU processes: per-pCPU interrupt counts (/proc/interrupts),
// CPU time (/proc/stat) and the trace events the host kernel would record. Everything is derived from
// the model's per-thread counters (exits by reason, blocks, polls, preemptions, CPU time) as they
// advance, plus a fixed background of the host's own housekeeping — never from what an experiment
// expects. The host is MOCK_HOST: 8 CPUs, nohz_full=2-7, rcutree.use_softirq=0, APICv with posted
// interrupts.
//
// Rules (each a mechanism, with the share it takes):
// - an EXTERNAL_INTERRUPT exit is a host interrupt on the vCPU's pCPU: 80% local timer (LOC),
//   10% reschedule IPI (RES), 10% function-call IPI (CAL);
// - a vCPU that blocks in an intercepted HLT is woken; in a VM with a device assigned through VFIO
//   (whose interrupts VT-d posts) and APICv, POSTED_WAKEUP_SHARE of those wakeups arrive as posted
//   interrupts on the wakeup vector (PIW) — KVM arms it in pi_pre_block only for such a VM — and
//   PIN_SHARE as notifications while it was still in root mode (PIN). A VM without one, or a vCPU
//   that never blocks (HLT passed through, MWAIT, busy), adds nothing to PIN/PIW. No nested guests:
//   NPI stays 0;
// - on a nohz_full pCPU whose vCPU is pinned there alone the tick is stopped while the vCPU runs;
//   RCU turns it on once for each grace period that waits on the CPU (RCU_GPS_WAITING_PER_S of the
//   vCPU's run time), and in that tick's RCU hook (rcu_utilization) rcu_pending() wakes rcuc/N
//   (rcutree.use_softirq=0), which then preempts the vCPU thread. Elsewhere the local timer
//   interrupts are the ticks;
// - housekeeping pCPUs (not nohz_full) tick at HZ and run a kworker now and then.
import { parseCpuList } from '../../model/cpulist.js';
import type { Clock } from '../clock.js';
import type { MockMachine } from './machine.js';
import { MOCK_HOST } from './profile.js';

export const HZ = 250;
const USER_HZ = 100;
const POSTED_WAKEUP_SHARE = 0.3;
const PIN_SHARE = 0.05;
/** Grace periods a second that wait on a busy isolated CPU until RCU turns its tick on: one every 2 s, as in the nested host's 6.12 (rcuc-isolated-pcpu). */
const RCU_GPS_WAITING_PER_S = 0.5;
const HOUSEKEEPING_BUSY = 0.03;
const HOUSEKEEPING_KWORKER_PER_SEC = 20;
/** Pretend the host booted this long before the simulation started. */
const UPTIME_AT_START_S = 1000;

const cmdline = MOCK_HOST.kernelCmdline.split(/\s+/);
const param = (name: string) => cmdline.find((p) => p.startsWith(`${name}=`))?.slice(name.length + 1);
export const NOHZ_FULL = new Set(parseCpuList(param('nohz_full') ?? ''));
const RCUC_THREADS = param('rcutree.use_softirq') === '0';
const APICV = MOCK_HOST.vendorModule === 'kvm_intel' && MOCK_HOST.vendorParams.enable_apicv === 'Y';
export const HOST_CPUS: readonly number[] = MOCK_HOST.cpus;

/** Rows of /proc/interrupts the simulation counts; the others of MOCK_HOST.interruptRows stay 0. */
export type IrqRow = (typeof MOCK_HOST.interruptRows)[number];

/** A batch of identical events (same CPU, task and event; only rip/ns-like values vary). */
export interface EventBatch {
  cpu: number;
  /** The task the event fires in (common_pid and the TASK-PID column). */
  comm: string;
  pid: number;
  sys: string;
  event: string;
  /** Field values a filter can test (besides common_pid, CPU, COMM). */
  fields: Record<string, string | number>;
  count: number;
  /** Text after "event: " for the i-th event of the batch. */
  body(i: number): string;
  /** Seconds into the interval (of `span` s) the i-th event happens at; absent: spread over it. */
  at?(i: number, span: number): number;
}

export interface EventSink {
  /** Events that happened on the host in [fromTs, toTs] (seconds on the trace clock). */
  offer(batches: readonly EventBatch[], fromTs: number, toTs: number): void;
  /** Whether rendering events is needed at all (some instance records). */
  readonly recording: boolean;
}

interface VcpuMark {
  exits: Record<string, number>;
  wakeups: number;
  polls: number;
  involuntary: number;
  runNs: number;
  guestNs: number;
}

interface ThreadMark {
  slices: number;
  runNs: number;
}

interface CpuCounters {
  irq: Map<string, number>;
  busyNs: number;
  guestNs: number;
}

const RIPS = ['0xffffffff81c3a0fe', '0xffffffff81c3a4b2', '0xffffffff810e5c21', '0xffffffff81c3a101'];

export class MockHostSim {
  private readonly t0: number;
  private lastMs: number;
  private readonly vcpuMarks = new Map<number, VcpuMark>();
  private readonly threadMarks = new Map<number, ThreadMark>();
  private readonly cpus = new Map<number, CpuCounters>();
  private readonly sinks = new Set<EventSink>();
  private kworkerCarry = 0;

  constructor(
    private readonly machines: () => Iterable<MockMachine>,
    private readonly clock: Clock,
  ) {
    this.t0 = clock.now();
    this.lastMs = this.t0;
    for (const c of HOST_CPUS) this.cpus.set(c, { irq: new Map(), busyNs: 0, guestNs: 0 });
  }

  /** Seconds on the trace clock (and uptime): monotonic. */
  nowTs(): number {
    return UPTIME_AT_START_S + (this.clock.now() - this.t0) / 1000;
  }

  addSink(s: EventSink): void {
    this.sinks.add(s);
  }

  removeSink(s: EventSink): void {
    this.sinks.delete(s);
  }

  /** Bring the host's counters and recorded events up to now. */
  sync(): void {
    const nowMs = this.clock.now();
    const dtMs = nowMs - this.lastMs;
    if (dtMs <= 0) return;
    const fromTs = UPTIME_AT_START_S + (this.lastMs - this.t0) / 1000;
    const toTs = UPTIME_AT_START_S + (nowMs - this.t0) / 1000;
    this.lastMs = nowMs;
    const dtS = dtMs / 1000;
    const render = [...this.sinks].some((s) => s.recording);
    const batches: EventBatch[] = [];
    const add = (b: EventBatch) => {
      if (render && b.count > 0) batches.push(b);
    };
    for (const m of this.machines()) {
      if (m.deadReason) continue;
      m.sync();
      for (const v of m.vcpus) {
        if (v.activity === 'absent') {
          this.vcpuMarks.delete(v.tid);
          continue;
        }
        const prev = this.vcpuMarks.get(v.tid) ?? { exits: {}, wakeups: 0, polls: 0, involuntary: 0, runNs: 0, guestNs: 0 };
        const cur: VcpuMark = {
          exits: { ...v.exits },
          wakeups: v.stats.halt_wakeup ?? 0,
          polls: v.stats.halt_successful_poll ?? 0,
          involuntary: v.involuntary,
          runNs: v.runNs,
          guestNs: v.guestNs,
        };
        this.vcpuMarks.set(v.tid, cur);
        const d = (a: number, b: number) => Math.max(0, Math.floor(a) - Math.floor(b));
        const cpu = v.lastCpu;
        const c = this.cpus.get(cpu);
        if (!c) continue;
        c.busyNs += cur.runNs - prev.runNs;
        c.guestNs += cur.guestNs - prev.guestNs;
        const ext = (cur.exits.EXTERNAL_INTERRUPT ?? 0) - (prev.exits.EXTERNAL_INTERRUPT ?? 0);
        const blocks = cur.wakeups - prev.wakeups;
        this.bump(c, 'LOC', ext * 0.8);
        this.bump(c, 'RES', ext * 0.1);
        this.bump(c, 'CAL', ext * 0.1);
        if (APICV && (m.config.assignedDevices ?? 0) > 0) {
          this.bump(c, 'PIW', blocks * POSTED_WAKEUP_SHARE);
          this.bump(c, 'PIN', blocks * PIN_SHARE);
        }
        const pinnedAlone = v.affinity.length === 1 && v.affinity[0] === cpu;
        // The host's ticks on that pCPU. nohz_full stops the tick while the vCPU thread runs there
        // alone; RCU turns it on for a grace period that waits on the CPU, and that tick wakes rcuc/N.
        const isolated = RCUC_THREADS && NOHZ_FULL.has(cpu) && pinnedAlone;
        const ticks = this.carry(`tick:${v.tid}`, isolated ? ((cur.runNs - prev.runNs) / 1e9) * RCU_GPS_WAITING_PER_S : ext * 0.8);
        const rcuc = isolated ? ticks : 0;
        if (!render) continue;
        const me = { cpu, comm: v.comm, pid: v.tid };
        const vcpuFields = { vcpu_id: v.index };
        for (const [reason, n] of Object.entries(cur.exits)) {
          const count = d(n, prev.exits[reason] ?? 0);
          add({ ...me, sys: 'kvm', event: 'kvm_exit', fields: { ...vcpuFields, exit_reason: reason }, count, body: (i) => `vcpu ${v.index} reason ${reason} rip ${RIPS[i % RIPS.length]} info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x${reason === 'EXTERNAL_INTERRUPT' ? '800000ec' : '00000000'} error_code 0x00000000 requests 0x0000000000000000` });
          add({ ...me, sys: 'kvm', event: 'kvm_entry', fields: vcpuFields, count, body: (i) => `vcpu ${v.index}, rip ${RIPS[i % RIPS.length]} intr_info 0x00000000 error_code 0x00000000` });
        }
        const nBlocks = d(cur.wakeups, prev.wakeups);
        const idle = { cpu, comm: '<idle>', pid: 0 };
        const swapper = `swapper/${cpu}`;
        add({ ...me, sys: 'sched', event: 'sched_switch', fields: sw(v.comm, v.tid, 120, 'S', swapper, 0, 120), count: nBlocks, body: () => swText(v.comm, v.tid, 120, 'S', swapper, 0, 120) });
        add({ ...idle, sys: 'sched', event: 'sched_wakeup', fields: { comm: v.comm, pid: v.tid, prio: 120, target_cpu: cpu }, count: nBlocks, body: () => `comm=${v.comm} pid=${v.tid} prio=120 target_cpu=${pad3(cpu)}` });
        add({ ...idle, sys: 'sched', event: 'sched_switch', fields: sw(swapper, 0, 120, 'R', v.comm, v.tid, 120), count: nBlocks, body: () => swText(swapper, 0, 120, 'R', v.comm, v.tid, 120) });
        add({ ...me, sys: 'kvm', event: 'kvm_vcpu_wakeup', fields: { waited: 1, valid: 1 }, count: nBlocks, body: (i) => `wait time ${9_000_000 + ((i * 7919) % 1_000_000)} ns, polling valid` });
        add({ ...me, sys: 'kvm', event: 'kvm_vcpu_wakeup', fields: { waited: 0, valid: 1 }, count: d(cur.polls, prev.polls), body: (i) => `poll time ${20_000 + ((i * 104_729) % 150_000)} ns, polling valid` });
        const kworker = `kworker/${cpu}:1`;
        const nPre = d(cur.involuntary, prev.involuntary);
        add({ ...me, sys: 'sched', event: 'sched_switch', fields: sw(v.comm, v.tid, 120, 'R+', kworker, kworkerPid(cpu), 120), count: nPre, body: () => swText(v.comm, v.tid, 120, 'R+', kworker, kworkerPid(cpu), 120) });
        add({ cpu, comm: kworker, pid: kworkerPid(cpu), sys: 'sched', event: 'sched_switch', fields: sw(kworker, kworkerPid(cpu), 120, 'I', v.comm, v.tid, 120), count: nPre, body: () => swText(kworker, kworkerPid(cpu), 120, 'I', v.comm, v.tid, 120) });
        // RCU's tick hook (rcu_utilization), and the rcuc/N wakeups raised inside it, then the switch to rcuc at the interrupt's exit
        const tickAt = (k: number, span: number) => (span * (k + 0.5)) / ticks;
        const wokenAt = (i: number, span: number, us: number) => tickAt(Math.floor((i * ticks) / rcuc), span) + us * 1e-6;
        add({ ...me, sys: 'rcu', event: 'rcu_utilization', fields: { s: 'Start scheduler-tick' }, count: ticks, body: () => 'Start scheduler-tick', at: tickAt });
        add({ ...me, sys: 'rcu', event: 'rcu_utilization', fields: { s: 'End scheduler-tick' }, count: ticks, body: () => 'End scheduler-tick', at: (k, span) => tickAt(k, span) + 4e-6 });
        const rc = `rcuc/${cpu}`;
        add({ ...me, sys: 'sched', event: 'sched_wakeup', fields: { comm: rc, pid: rcucPid(cpu), prio: 98, target_cpu: cpu }, count: rcuc, body: () => `comm=${rc} pid=${rcucPid(cpu)} prio=98 target_cpu=${pad3(cpu)}`, at: (i, span) => wokenAt(i, span, 2) });
        add({ ...me, sys: 'sched', event: 'sched_switch', fields: sw(v.comm, v.tid, 120, 'R+', rc, rcucPid(cpu), 98), count: rcuc, body: () => swText(v.comm, v.tid, 120, 'R+', rc, rcucPid(cpu), 98), at: (i, span) => wokenAt(i, span, 6) });
        add({ cpu, comm: rc, pid: rcucPid(cpu), sys: 'sched', event: 'sched_switch', fields: sw(rc, rcucPid(cpu), 98, 'S', v.comm, v.tid, 120), count: rcuc, body: () => swText(rc, rcucPid(cpu), 98, 'S', v.comm, v.tid, 120), at: (i, span) => wokenAt(i, span, 8) });
      }
      for (const t of m.others) {
        const prev = this.threadMarks.get(t.tid) ?? { slices: 0, runNs: 0 };
        const cur = { slices: t.slices, runNs: t.runNs };
        this.threadMarks.set(t.tid, cur);
        const c = this.cpus.get(t.lastCpu);
        if (!c) continue;
        c.busyNs += cur.runNs - prev.runNs;
        if (!render) continue;
        const n = Math.max(0, Math.floor(cur.slices) - Math.floor(prev.slices));
        const cpu = t.lastCpu;
        const swapper = `swapper/${cpu}`;
        add({ cpu, comm: t.comm, pid: t.tid, sys: 'sched', event: 'sched_switch', fields: sw(t.comm, t.tid, 120, 'S', swapper, 0, 120), count: n, body: () => swText(t.comm, t.tid, 120, 'S', swapper, 0, 120) });
        add({ cpu, comm: '<idle>', pid: 0, sys: 'sched', event: 'sched_wakeup', fields: { comm: t.comm, pid: t.tid, prio: 120, target_cpu: cpu }, count: n, body: () => `comm=${t.comm} pid=${t.tid} prio=120 target_cpu=${pad3(cpu)}` });
        add({ cpu, comm: '<idle>', pid: 0, sys: 'sched', event: 'sched_switch', fields: sw(swapper, 0, 120, 'R', t.comm, t.tid, 120), count: n, body: () => swText(swapper, 0, 120, 'R', t.comm, t.tid, 120) });
      }
    }
    // The host's own housekeeping.
    const kw = this.kworkerCarry + HOUSEKEEPING_KWORKER_PER_SEC * dtS;
    const kwN = Math.floor(kw);
    this.kworkerCarry = kw - kwN;
    for (const cpu of HOST_CPUS) {
      const c = this.cpus.get(cpu)!;
      if (NOHZ_FULL.has(cpu)) {
        // nohz_full: the residual 1 Hz tick while a task runs there.
        if (c.busyNs > 0) this.bump(c, 'LOC', dtS * Math.min(1, (c.busyNs - (this.lastBusy.get(cpu) ?? 0)) / (dtS * 1e9)));
      } else {
        c.busyNs += HOUSEKEEPING_BUSY * dtMs * 1e6;
        this.bump(c, 'LOC', HZ * dtS * HOUSEKEEPING_BUSY + 2 * dtS);
        const kworker = `kworker/${cpu}:1`;
        const pid = kworkerPid(cpu);
        const swapper = `swapper/${cpu}`;
        add({ cpu, comm: '<idle>', pid: 0, sys: 'sched', event: 'sched_wakeup', fields: { comm: kworker, pid, prio: 120, target_cpu: cpu }, count: kwN, body: () => `comm=${kworker} pid=${pid} prio=120 target_cpu=${pad3(cpu)}` });
        add({ cpu, comm: '<idle>', pid: 0, sys: 'sched', event: 'sched_switch', fields: sw(swapper, 0, 120, 'R', kworker, pid, 120), count: kwN, body: () => swText(swapper, 0, 120, 'R', kworker, pid, 120) });
        add({ cpu, comm: kworker, pid, sys: 'sched', event: 'sched_switch', fields: sw(kworker, pid, 120, 'I', swapper, 0, 120), count: kwN, body: () => swText(kworker, pid, 120, 'I', swapper, 0, 120) });
      }
      this.lastBusy.set(cpu, c.busyNs);
    }
    if (render) for (const s of this.sinks) s.offer(batches, fromTs, toTs);
  }

  private readonly lastBusy = new Map<number, number>();
  private readonly carries = new Map<string, number>();

  /** Whole events out of a fractional rate, carrying the remainder to the next interval. */
  private carry(key: string, amount: number): number {
    const v = (this.carries.get(key) ?? 0) + amount;
    const n = Math.floor(v);
    this.carries.set(key, v - n);
    return n;
  }

  private bump(c: CpuCounters, row: string, by: number): void {
    if (by > 0) c.irq.set(row, (c.irq.get(row) ?? 0) + by);
  }

  /** /proc/interrupts in the kernel's layout (arch/x86/kernel/irq.c, kernel/irq/proc.c). */
  renderInterrupts(): string {
    this.sync();
    const cpus = [...HOST_CPUS];
    const lines = [`${' '.repeat(11)}${cpus.map((c) => `CPU${c}`.padEnd(11)).join('')}`];
    const descr: Record<string, string> = {
      NMI: 'Non-maskable interrupts', LOC: 'Local timer interrupts', SPU: 'Spurious interrupts', PMI: 'Performance monitoring interrupts',
      IWI: 'IRQ work interrupts', RTR: 'APIC ICR read retries', RES: 'Rescheduling interrupts', CAL: 'Function call interrupts',
      TLB: 'TLB shootdowns', TRM: 'Thermal event interrupts', THR: 'Threshold APIC interrupts', DFR: 'Deferred Error APIC interrupts',
      MCE: 'Machine check exceptions', MCP: 'Machine check polls', PIN: 'Posted-interrupt notification event',
      NPI: 'Nested posted-interrupt event', PIW: 'Posted-interrupt wakeup event',
    };
    const cols = (v: (c: number) => number) => cpus.map((c) => `${String(Math.floor(v(c))).padStart(10)} `).join('');
    lines.push(`  0: ${cols((c) => (c === 0 ? 44 : 0))} IR-IO-APIC    2-edge      timer`);
    for (const row of MOCK_HOST.interruptRows) {
      if (row === 'ERR' || row === 'MIS') {
        lines.push(`${row}: ${'0'.padStart(10)}`);
        continue;
      }
      lines.push(`${row}: ${cols((c) => this.cpus.get(c)!.irq.get(row) ?? 0)}  ${descr[row] ?? row}`);
    }
    return `${lines.join('\n')}\n`;
  }

  /** /proc/stat: cpu and cpuN lines in USER_HZ ticks, plus the lines tools expect. */
  renderStat(): string {
    this.sync();
    const elapsedNs = (this.nowTs() * 1e9);
    const ticks = (ns: number) => Math.floor((ns / 1e9) * USER_HZ);
    const rows = HOST_CPUS.map((cpu) => {
      const c = this.cpus.get(cpu)!;
      const busy = Math.min(c.busyNs, elapsedNs);
      const guest = Math.min(c.guestNs, busy);
      const user = ticks(busy * 0.7 + guest * 0.3);
      const system = ticks(busy) - user;
      const idle = ticks(elapsedNs) - ticks(busy);
      return [user, 0, Math.max(0, system), Math.max(0, idle), 0, 0, 0, 0, ticks(guest), 0];
    });
    const total = rows.reduce((a, r) => a.map((v, i) => v + r[i]!), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    return [`cpu  ${total.join(' ')}`, ...rows.map((r, i) => `cpu${HOST_CPUS[i]} ${r.join(' ')}`), 'intr 0', 'ctxt 0', `btime ${Math.floor(this.clock.now() / 1000 - this.nowTs())}`, 'processes 1', 'procs_running 1', 'procs_blocked 0', ''].join('\n');
  }
}

function pad3(n: number): string {
  return String(n).padStart(3, '0');
}

function kworkerPid(cpu: number): number {
  return 200 + cpu;
}

function rcucPid(cpu: number): number {
  return 20 + cpu * 8;
}

function sw(pc: string, pp: number, ppr: number, ps: string, nc: string, np: number, npr: number): Record<string, string | number> {
  return { prev_comm: pc, prev_pid: pp, prev_prio: ppr, prev_state: ps, next_comm: nc, next_pid: np, next_prio: npr };
}

function swText(pc: string, pp: number, ppr: number, ps: string, nc: string, np: number, npr: number): string {
  return `prev_comm=${pc} prev_pid=${pp} prev_prio=${ppr} prev_state=${ps} ==> next_comm=${nc} next_pid=${np} next_prio=${npr}`;
}
