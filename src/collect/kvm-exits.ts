// kvm-exits: VM exits per vCPU and reason per step, counted inside the host kernel — a tracefs
// histogram trigger on kvm:kvm_exit in kvmlab's private instance, so no event is formatted, copied or
// lost to a full ring buffer however fast the storm — and checked against KVM's own per-vCPU `exits`
// statistic (QMP query-stats). At each step boundary KVM's count is read just before and just after
// the histogram, and the midpoint taken as KVM's count at the histogram's read: the two counts then
// differ by the asymmetry of the reads, not by their spacing, and half the spread of the two
// brackets bounds what the reads' spacing can explain (exits.diff_bound). With `pause: true` all
// three are read with the VM paused (QMP stop … cont): one instant, exact agreement — but every
// boundary then stops and restarts the vCPUs, and in the nested KVM host an L2 guest was once seen
// to reset after such a cont, so the shipped experiments leave it off.
//
// Rows per step:
//   exits.total        entity vcpuN   kvm_exit hits of that vCPU's thread
//   exits.<reason>     entity vcpuN   per reason, named as the tracefs collector names them (hlt,
//                                     mwait, monitor, pause, npf, msr, io, intr, … ; VMX and SVM alike;
//                                     hlt, mwait, monitor, pause always, 0 when none)
//   exits.kvm_stat     entity vcpuN   KVM's own `exits` count over the same step (when QEMU has query-stats)
//   exits.diff         entity vcpuN   exits.total − exits.kvm_stat (and exits.diff_pct, of exits.kvm_stat)
//   exits.diff_bound   entity vcpuN   the most |exits.diff| the reads' spacing explains: half the exits
//                                     KVM counted between its two reads, at the start plus at the end
//   exits.diff_excess  entity vcpuN   max(0, |exits.diff| − exits.diff_bound): exits one count has and
//                                     the other lacks beyond what the reads explain (0 when they agree)
//   exits.dropped      entity all     hits the kernel could not add to a full table (loss; 0 expected)
//   exits.traced       entity all     the trigger's runs: every kvm_exit on the host, of every VM (each
//                                     one runs on the exiting vCPU's thread: the in-kernel cost of
//                                     watching, which test/bench/exit-trace-cost.mjs prices per exit)
// The histogram is keyed by thread id, so a vCPU hot-plugged mid-run is counted from its first exit.
// The kernel's histogram as read at each step's end is kept as hist-<step>.txt. stop() removes the
// trigger and the instance, also after a failure; the instance is journaled before it is made, and
// `kvmlab cleanup` removes its kvm_exit trigger with it after a SIGKILL.
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { instanceName } from '../host/journal.js';
import type { HostFacts } from '../model/host-facts.js';
import { tracefsInstances, type Collector, type CollectorContext, type CollectorKind } from './collector.js';
import type { QmpStatsResult } from './kvm-stats.js';
import { exitReasonName, parseExitHist, type ExitHist } from '../formats/kvm-exit-hist.js';
import { ALWAYS_REASONS } from './tracefs-attribution.js';
import { exitReasonWord } from '../model/metrics.js';

export interface KvmExitsOptions {
  pause: boolean;
}

/** The trigger kvmlab installs: in-kernel counts per (thread, isa, reason); 16k entries. */
export const EXIT_HIST_TRIGGER = 'hist:keys=common_pid,isa,exit_reason:vals=hitcount:sort=common_pid:size=16384';

interface Snapshot {
  hist: ExitHist;
  /** vcpuN → KVM's exits at the histogram's read (the midpoint of the reads around it), when query-stats answered. */
  kvm: Map<string, number> | undefined;
  /** vcpuN → half the exits KVM counted between its reads before and after the histogram's. */
  halfSpread: Map<string, number> | undefined;
}

export class KvmExitsCollector implements Collector {
  readonly name = 'kvm-exits';
  private ctx!: CollectorContext;
  private inst: string | undefined;
  private trigger: string | undefined;
  private startSnap: Snapshot | undefined;
  private rawPath = '';

  constructor(private readonly opts: KvmExitsOptions) {}

  async start(ctx: CollectorContext): Promise<void> {
    this.ctx = ctx;
    this.rawPath = join(ctx.dir, 'kvm-exits.jsonl');
    await writeFile(this.rawPath, '');
    const h = ctx.host;
    const root = await tracefsInstances(ctx);
    this.inst = `${root}/instances/${instanceName()}`;
    await h.mkdir(this.inst);
    try {
      const ev = `${this.inst}/events/kvm/kvm_exit`;
      if (!(await h.exists(`${ev}/hist`))) throw new Error(`this kernel has no tracefs histogram triggers (no ${ev}/hist: CONFIG_HIST_TRIGGERS is off); count exits with the tracefs collector's kvm:kvm_exit stream instead`);
      this.trigger = `${ev}/trigger`;
      await h.writeFile(this.trigger, EXIT_HIST_TRIGGER);
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  async stepStart(): Promise<void> {
    this.startSnap = await this.snapshot('start');
  }

  async stepEnd(step: string): Promise<void> {
    const a = this.startSnap;
    this.startSnap = undefined;
    if (!a) return;
    const b = await this.snapshot('end', step);
    const emit = this.ctx.emit;
    for (const v of this.ctx.threads().vcpus) {
      const entity = `vcpu${v.index}`;
      const before = a.hist.byThread.get(v.tid) ?? new Map<string, number>();
      const after = b.hist.byThread.get(v.tid) ?? new Map<string, number>();
      let total = 0;
      for (const reason of new Set([...ALWAYS_REASONS, ...after.keys()])) {
        const d = (after.get(reason) ?? 0) - (before.get(reason) ?? 0);
        total += d;
        emit({ step, entity, metric: `exits.${reason}`, value: d, unit: 'count' });
      }
      emit({ step, entity, metric: 'exits.total', value: total, unit: 'count' });
      const k0 = a.kvm?.get(entity);
      const k1 = b.kvm?.get(entity);
      if (k0 !== undefined && k1 !== undefined) {
        const diff = total - (k1 - k0);
        const bound = (a.halfSpread?.get(entity) ?? 0) + (b.halfSpread?.get(entity) ?? 0);
        emit({ step, entity, metric: 'exits.kvm_stat', value: k1 - k0, unit: 'count' });
        emit({ step, entity, metric: 'exits.diff', value: diff, unit: 'count' });
        if (k1 > k0) emit({ step, entity, metric: 'exits.diff_pct', value: (100 * diff) / (k1 - k0), unit: '%' });
        emit({ step, entity, metric: 'exits.diff_bound', value: bound, unit: 'count' });
        emit({ step, entity, metric: 'exits.diff_excess', value: Math.max(0, Math.abs(diff) - bound), unit: 'count' });
      }
    }
    emit({ step, entity: 'all', metric: 'exits.dropped', value: b.hist.dropped - a.hist.dropped, unit: 'count' });
    emit({ step, entity: 'all', metric: 'exits.traced', value: b.hist.hits - a.hist.hits, unit: 'count' });
  }

  async stop(): Promise<void> {
    const h = this.ctx.host;
    if (this.trigger) await h.writeFile(this.trigger, `!${EXIT_HIST_TRIGGER}`).catch(() => undefined);
    this.trigger = undefined;
    if (this.inst) await h.rmdir(this.inst);
    this.inst = undefined;
  }

  private async snapshot(phase: string, step?: string): Promise<Snapshot> {
    const { vm, host } = this.ctx;
    const paused = this.opts.pause && (await vm.qmp.execute('stop').then(() => true));
    try {
      const kvmBefore = await this.kvmExits();
      const text = await host.readFile(`${this.inst}/events/kvm/kvm_exit/hist`);
      const kvmAfter = await this.kvmExits();
      const hist = parseExitHist(text, (isa, reason) => exitReasonWord(exitReasonName(isa, reason)));
      if (step) await writeFile(join(this.ctx.dir, `hist-${step}.txt`), text);
      const both = kvmBefore && kvmAfter ? [...kvmAfter].filter(([e]) => kvmBefore.has(e)) : undefined;
      const kvm = both && new Map(both.map(([e, v]) => [e, (kvmBefore!.get(e)! + v) / 2]));
      const halfSpread = both && new Map(both.map(([e, v]) => [e, (v - kvmBefore!.get(e)!) / 2]));
      const obj = (m: Map<string, number> | undefined) => m && Object.fromEntries(m);
      await appendFile(this.rawPath, `${JSON.stringify({ t: this.ctx.clock.now() / 1000, phase, step, paused, hits: hist.hits, dropped: hist.dropped, byThread: Object.fromEntries([...hist.byThread].map(([t, m]) => [t, Object.fromEntries(m)])), kvmBefore: obj(kvmBefore), kvmAfter: obj(kvmAfter) })}\n`);
      return { hist, kvm, halfSpread };
    } finally {
      if (paused) await vm.qmp.execute('cont');
    }
  }

  /** KVM's own per-vCPU exits, or undefined when QEMU cannot say (no query-stats, not KVM). */
  private async kvmExits(): Promise<Map<string, number> | undefined> {
    const byPath = new Map(this.ctx.threads().vcpus.map((v) => [v.qomPath, `vcpu${v.index}`]));
    const r = await this.ctx.vm.qmp.execute<QmpStatsResult[]>('query-stats', { target: 'vcpu', providers: [{ provider: 'kvm', names: ['exits'] }] }).catch(() => undefined);
    if (!r) return undefined;
    const out = new Map<string, number>();
    for (const x of r) {
      const e = x['qom-path'] === undefined ? undefined : byPath.get(x['qom-path']);
      const v = x.stats.find((s) => s.name === 'exits')?.value;
      if (e && typeof v === 'number') out.set(e, v);
    }
    return out.size ? out : undefined;
  }
}

export const kvmExits: CollectorKind<KvmExitsOptions> = {
  name: 'kvm-exits',
  unmet: (facts: HostFacts) => {
    if (!facts.kvm.usable) return `KVM is not usable on this host (${facts.kvm.reason ?? '/dev/kvm'}), so there are no VM exits to count`;
    if (!facts.tracefs.path) return 'tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)';
    if (!facts.tracefs.writable) return `tracefs at ${facts.tracefs.path} is not writable`;
    return undefined;
  },
  create: (opts) => new KvmExitsCollector(opts),
};
