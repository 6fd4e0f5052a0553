// kvm-stats: KVM's own per-vCPU and per-VM statistics (halt_exits, halt_successful_poll,
// halt_attempted_poll, halt_wakeup, halt_wait_ns, halt_poll_success_ns, exits, …) read at every step
// boundary, from QMP `query-stats` (QEMU ≥ 7.1, binary stats fd) or, when QEMU cannot answer, from
// debugfs /sys/kernel/debug/kvm/<pid>-<fd>/. Per step it writes the change of each cumulative stat and
// the end value of instant/peak ones:
//   kvm.<stat>   entity vcpuN (by qom-path → cpu-index from the thread map) or vm
// Histograms (array values, *_hist) are kept in the raw kvm-stats.jsonl only.
//
// Under TCG there is no KVM: query-stats answers with no kvm provider and debugfs has no directory
// for the process. start() finds that and says NotCollected (the runner records "not collected: …"
// for the repetition) rather than giving zeros.
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { metricWord } from '../model/metrics.js';
import type { HostFacts } from '../model/host-facts.js';
import { NotCollected, type Collector, type CollectorContext, type CollectorKind } from './collector.js';

export const KVM_DEBUGFS = '/sys/kernel/debug/kvm';

type StatKind = 'cumulative' | 'instant' | 'peak';
/** entity → stat → value */
export type StatSnapshot = Map<string, Map<string, number>>;

interface QmpStat {
  name: string;
  value: number | number[] | boolean;
}
/** One element of QMP `query-stats`' answer. */
export interface QmpStatsResult {
  provider: string;
  'qom-path'?: string;
  stats: QmpStat[];
}
interface QmpSchema {
  provider: string;
  target: string;
  stats: { name: string; type: string }[];
}

/** Stats debugfs/QEMU report as current values rather than running totals (when no schema says). */
const INSTANT = /^(blocking|pages_|nx_lpage_splits$|lpages$|max_mmu_|mmu_unsync$|mmu_cache_miss$)/;
const PEAK = /^max_/;

export function statKind(name: string, schema: ReadonlyMap<string, StatKind>): StatKind {
  const s = schema.get(name);
  if (s) return s;
  if (PEAK.test(name)) return 'peak';
  return INSTANT.test(name) ? 'instant' : 'cumulative';
}

export function metricOf(stat: string): string {
  return `kvm.${metricWord(stat)}`;
}

/** Per-step rows from two snapshots: deltas of cumulative stats, end values of the others. */
export function statRows(step: string, start: StatSnapshot, end: StatSnapshot, schema: ReadonlyMap<string, StatKind>) {
  const rows: { step: string; entity: string; metric: string; value: number; unit: string }[] = [];
  for (const [entity, stats] of end) {
    const before = start.get(entity);
    if (!before) continue; // appeared mid-step (hot-plug): no baseline
    for (const [name, value] of stats) {
      const kind = statKind(name, schema);
      const b = before.get(name);
      if (kind === 'cumulative' && b === undefined) continue;
      const v = kind === 'cumulative' ? value - b! : value;
      rows.push({ step, entity, metric: metricOf(name), value: v, unit: name.endsWith('_ns') ? 'ns' : 'count' });
    }
  }
  return rows;
}

/** query-stats answers (vcpu and vm targets) as a snapshot; qom-path → entity via the map. */
export function snapshotFromQmp(vcpus: readonly QmpStatsResult[], vm: readonly QmpStatsResult[], entityOf: (qomPath: string) => string | undefined): StatSnapshot {
  const out: StatSnapshot = new Map();
  const put = (entity: string, stats: QmpStat[]) => {
    const m = out.get(entity) ?? new Map<string, number>();
    for (const s of stats) {
      if (typeof s.value === 'number') m.set(s.name, s.value);
      else if (typeof s.value === 'boolean') m.set(s.name, s.value ? 1 : 0);
    }
    out.set(entity, m);
  };
  for (const r of vcpus) {
    if (r.provider !== 'kvm') continue;
    const e = r['qom-path'] === undefined ? undefined : entityOf(r['qom-path']);
    if (e) put(e, r.stats);
  }
  for (const r of vm) if (r.provider === 'kvm') put('vm', r.stats);
  return out;
}

export class KvmStatsCollector implements Collector {
  readonly name = 'kvm-stats';
  private ctx!: CollectorContext;
  private source: 'qmp' | 'debugfs' | undefined;
  private debugfsDir = '';
  /** debugfs vcpuN directory (N = vcpu_id, the APIC id on x86) → entity (vcpu<cpu-index>). */
  private readonly debugfsEntity = new Map<string, string>();
  private readonly schema = new Map<string, StatKind>();
  private startSnap: StatSnapshot | undefined;
  private rawPath = '';

  async start(ctx: CollectorContext): Promise<void> {
    this.ctx = ctx;
    this.rawPath = join(ctx.dir, 'kvm-stats.jsonl');
    await writeFile(this.rawPath, '');
    let why = '';
    try {
      const r = await ctx.vm.qmp.execute<QmpStatsResult[]>('query-stats', { target: 'vcpu' });
      const useful = r.some((x) => x.provider === 'kvm' && x.stats.length > 0);
      if (useful) this.source = 'qmp';
      else why = 'QEMU answers query-stats with no KVM statistics (the guest does not run under KVM, e.g. TCG)';
    } catch (e) {
      why = `QEMU has no query-stats (${e instanceof Error ? e.message : String(e)})`;
    }
    if (this.source === 'qmp') {
      try {
        const schemas = await ctx.vm.qmp.execute<QmpSchema[]>('query-stats-schemas');
        for (const s of schemas) for (const st of s.stats) if (['cumulative', 'instant', 'peak'].includes(st.type)) this.schema.set(st.name, st.type as StatKind);
      } catch {
        // no schema: stat kinds by name
      }
      return;
    }
    const dirs = await ctx.host.readdir(KVM_DEBUGFS).catch(() => [] as string[]);
    const mine = dirs.filter((d) => d.startsWith(`${ctx.vm.pid}-`));
    if (mine.length === 1) {
      this.source = 'debugfs';
      this.debugfsDir = `${KVM_DEBUGFS}/${mine[0]}`;
      await this.mapVcpuIds();
      return;
    }
    const unavailable = `${why}; debugfs ${KVM_DEBUGFS} has ${mine.length === 0 ? 'no directory' : `${mine.length} directories`} for pid ${ctx.vm.pid}`;
    await writeFile(join(ctx.dir, 'not-collected.txt'), `${unavailable}\n`);
    throw new NotCollected(unavailable);
  }

  /**
   * debugfs names a vCPU's directory by its vcpu_id, which QEMU sets to the APIC id on x86: equal to
   * the cpu-index only in flat topologies (threads, dies and odd core counts leave gaps). The
   * CPU's apic-id property says which is which; without it, the vcpu_id is taken as the index.
   */
  private async mapVcpuIds(): Promise<void> {
    for (const v of this.ctx.threads().vcpus) {
      const apicId = await this.ctx.vm.qmp.execute<number>('qom-get', { path: v.qomPath, property: 'apic-id' }).catch(() => v.index);
      this.debugfsEntity.set(`vcpu${apicId}`, `vcpu${v.index}`);
    }
  }

  async stepStart(): Promise<void> {
    if (!this.source) return;
    this.startSnap = await this.snapshot('start');
  }

  async stepEnd(step: string): Promise<void> {
    const start = this.startSnap;
    this.startSnap = undefined;
    if (!this.source || !start) return;
    const end = await this.snapshot('end', step);
    for (const r of statRows(step, start, end, this.schema)) this.ctx.emit(r);
  }

  async stop(): Promise<void> {}

  private async snapshot(phase: string, step?: string): Promise<StatSnapshot> {
    let snap: StatSnapshot;
    if (this.source === 'qmp') {
      const map = this.ctx.threads();
      const byPath = new Map(map.vcpus.map((v) => [v.qomPath, `vcpu${v.index}`]));
      const [vcpus, vm] = await Promise.all([
        this.ctx.vm.qmp.execute<QmpStatsResult[]>('query-stats', { target: 'vcpu' }),
        this.ctx.vm.qmp.execute<QmpStatsResult[]>('query-stats', { target: 'vm' }).catch(() => [] as QmpStatsResult[]),
      ]);
      snap = snapshotFromQmp(vcpus, vm, (p) => byPath.get(p));
      await appendFile(this.rawPath, `${JSON.stringify({ t: this.ctx.clock.now() / 1000, phase, step, vcpus, vm })}\n`);
    } else {
      snap = await this.readDebugfs();
      await appendFile(this.rawPath, `${JSON.stringify({ t: this.ctx.clock.now() / 1000, phase, step, debugfs: Object.fromEntries([...snap].map(([e, m]) => [e, Object.fromEntries(m)])) })}\n`);
    }
    return snap;
  }

  private async readDebugfs(): Promise<StatSnapshot> {
    const h = this.ctx.host;
    const out: StatSnapshot = new Map();
    const readDir = async (dir: string, entity: string) => {
      const m = new Map<string, number>();
      for (const name of await h.readdir(dir).catch(() => [] as string[])) {
        if (/^vcpu\d+$/.test(name)) continue;
        const text = await h.readFile(`${dir}/${name}`).catch(() => undefined);
        if (text !== undefined && /^\s*-?\d+\s*$/.test(text)) m.set(name, Number(text.trim()));
      }
      if (m.size) out.set(entity, m);
    };
    await readDir(this.debugfsDir, 'vm');
    for (const d of await h.readdir(this.debugfsDir).catch(() => [] as string[])) if (/^vcpu\d+$/.test(d)) await readDir(`${this.debugfsDir}/${d}`, this.debugfsEntity.get(d) ?? d);
    return out;
  }
}

export const kvmStats: CollectorKind<Record<string, never>> = {
  name: 'kvm-stats',
  unmet: (facts: HostFacts) => (facts.kvm.usable ? undefined : `KVM is not usable on this host (${facts.kvm.reason ?? '/dev/kvm'}), so there are no KVM statistics`),
  create: () => new KvmStatsCollector(),
};
