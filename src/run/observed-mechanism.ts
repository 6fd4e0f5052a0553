// What a parked vCPU was seen doing, from the counts, held against what the plan said it would do
// (plan/mechanism.ts). A claim on thread CPU cannot tell a passed-through HLT from an intercepted
// MWAIT spinning through NOPs: both burn the pCPU. The exits can: an MWAIT storm is thousands of
// MWAIT exits a second; a passed-through instruction leaves the thread busy with almost no exits;
// an intercepted HLT blocks the thread. A cell whose claims held through another mechanism than the
// one its plan names has not shown what its words say, so the runner fails it.
import type { KvmAction, Mechanism } from '../plan/mechanism.js';
import type { MetricRow } from '../model/metrics.js';
import { median } from '../model/select.js';
import type { VariantResult } from '../results/summary.js';
import { isMeasuringWindow, type Step } from '../experiment/schema.js';

/** An MWAIT exit rate no idle loop reaches but a NOP-emulated MWAIT loop always does (tens of thousands/s under TCG, millions on hardware). */
const STORM_PER_S = 1000;
/** A thread at or above this share of a CPU is busy; at or below QUIET it sleeps. */
const BUSY_PCT = 80;
const QUIET_PCT = 20;

/** A window in which a vCPU is parked: a sample or wait step while its guest CPU is offline. */
export interface ParkedWindow {
  step: string;
  entity: string;
}

export function parkedWindows(steps: readonly Step[]): ParkedWindow[] {
  const offline = new Set<number>();
  const out: ParkedWindow[] = [];
  for (const s of steps) {
    if (s.kind === 'offline') offline.add(s.cpu);
    else if (s.kind === 'online') offline.delete(s.cpu);
    else if (isMeasuringWindow(s) && offline.size) for (const cpu of offline) out.push({ step: s.name, entity: `vcpu${cpu}` });
  }
  return out;
}

export interface ParkedObservation {
  step: string;
  entity: string;
  /** Medians over repetitions; null where nothing was collected. */
  mwaitPerS: number | null;
  hltPerS: number | null;
  exitsPerS: number | null;
  cpuPct: number | null;
  /** What the counts show KVM doing with the parked vCPU, or unclear. */
  kvm: KvmAction | 'unclear';
  /** The parking instruction as far as the counts tell (a passed-through one leaves no exits to name it). */
  parkedIn: 'mwait' | 'hlt' | 'hlt or mwait' | 'unknown';
  /** Whether that is the planned mechanism; absent when unclear. */
  asPlanned?: boolean;
}

/** The mechanism one parked window shows. Pure. */
export function classifyParked(m: Pick<ParkedObservation, 'mwaitPerS' | 'exitsPerS' | 'cpuPct'>): Pick<ParkedObservation, 'kvm' | 'parkedIn'> {
  if (m.mwaitPerS !== null && m.mwaitPerS >= STORM_PER_S) return { kvm: 'nop-spin', parkedIn: 'mwait' };
  if (m.exitsPerS !== null && m.exitsPerS < STORM_PER_S && m.cpuPct !== null) {
    if (m.cpuPct >= BUSY_PCT) return { kvm: 'passed', parkedIn: 'hlt or mwait' };
    // an intercepted MWAIT never lets its thread sleep: a quiet parked thread is in an intercepted HLT
    if (m.cpuPct <= QUIET_PCT) return { kvm: 'blocks', parkedIn: 'hlt' };
  }
  return { kvm: 'unclear', parkedIn: 'unknown' };
}

const medianOrNull = (xs: number[]) => (xs.length ? median(xs) : null);

/**
 * Every parked window of one variant, observed from its rows (exits from the kvm-exits histogram,
 * else the tracefs kvm_exit counts; thread CPU from vcpu-cpu), and held against the plan. Empty when
 * the variant parks no vCPU or nothing counted its exits. Pure.
 */
export function observeParked(rows: readonly MetricRow[], windows: readonly ParkedWindow[], planned: Mechanism): ParkedObservation[] {
  const out: ParkedObservation[] = [];
  for (const w of windows) {
    const at = rows.filter((r) => r.step === w.step);
    const reps = [...new Set(at.map((r) => r.repetition))];
    const per = (metric: string, entity: string) => new Map(at.filter((r) => r.metric === metric && r.entity === entity).map((r) => [r.repetition, r.value]));
    const seconds = per('step.duration_s', 'runner');
    const source = at.some((r) => r.metric === 'exits.total' && r.entity === w.entity) ? 'exits.' : at.some((r) => r.metric === 'trace.exits' && r.entity === w.entity) ? 'trace.exits.' : undefined;
    if (!source) continue;
    const rate = (metric: string) => {
      const counts = per(metric, w.entity);
      return medianOrNull(reps.flatMap((rep) => (counts.has(rep) && seconds.get(rep) ? [counts.get(rep)! / seconds.get(rep)!] : [])));
    };
    const cpu = per('vcpu.cpu_pct', w.entity);
    const m = {
      mwaitPerS: rate(`${source}mwait`),
      hltPerS: rate(`${source}hlt`),
      exitsPerS: rate(source === 'exits.' ? 'exits.total' : 'trace.exits'),
      cpuPct: medianOrNull(reps.flatMap((rep) => (cpu.has(rep) ? [cpu.get(rep)!] : []))),
    };
    const seen = classifyParked(m);
    out.push({ step: w.step, entity: w.entity, ...m, ...seen, ...(seen.kvm === 'unclear' ? {} : { asPlanned: seen.kvm === planned.kvm }) });
  }
  return out;
}

const KVM_WORDS: Record<KvmAction | 'unclear', string> = {
  passed: 'passed through (thread busy, almost no exits)',
  'nop-spin': 'intercepted MWAIT emulated as a NOP (an exit storm)',
  blocks: 'intercepted HLT, blocking (thread asleep)',
  none: 'no exits',
  unclear: 'unclear from the counts',
};

const n = (v: number | null, unit: string) => (v === null ? `? ${unit}` : `${v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1)} ${unit}`);

/** "vcpu1 @ parked: intercepted MWAIT emulated as a NOP (an exit storm): 15,312 MWAIT exits/s, …; as planned" */
export function describeObservation(o: ParkedObservation, planned: Mechanism): string {
  const figures = `${n(o.mwaitPerS, 'MWAIT exits/s')}, ${n(o.hltPerS, 'HLT exits/s')}, ${n(o.exitsPerS, 'exits/s')} in all, thread ${o.cpuPct === null ? '? %' : `${o.cpuPct.toFixed(1)} %`}`;
  const verdict = o.asPlanned === undefined ? 'not judged' : o.asPlanned ? 'as planned' : `NOT as planned (planned: parks in ${planned.parked.toUpperCase()}, ${KVM_WORDS[planned.kvm]})`;
  return `${o.entity} @ ${o.step}: ${KVM_WORDS[o.kvm]}: ${figures}; ${verdict}`;
}

const SHORT: Record<KvmAction | 'unclear', string> = { passed: 'passed through', 'nop-spin': 'MWAIT NOP-spin', blocks: 'HLT blocks', none: 'no exits', unclear: 'unclear' };

/** One line for the verdict table: "observed vcpu1 @ parked: MWAIT NOP-spin (15,312 MWAIT/s, 15,340 exits/s, thread 99.8 %), as planned". */
export function observationLine(o: ParkedObservation, planned: Mechanism): string {
  const verdict = o.asPlanned === undefined ? '' : o.asPlanned ? ', as planned' : `, NOT as planned (${planned.parked.toUpperCase()} ${SHORT[planned.kvm]})`;
  return `observed ${o.entity} @ ${o.step}: ${SHORT[o.kvm]} (${n(o.mwaitPerS, 'MWAIT/s')}, ${n(o.exitsPerS, 'exits/s')}, thread ${o.cpuPct === null ? '?' : o.cpuPct.toFixed(1)} %)${verdict}`;
}

/** A passed variant whose parked vCPUs were seen in another mechanism than its plan names has not shown what its claims say: it fails, saying so. */
export function failIfOtherMechanism(vr: VariantResult): void {
  const m = vr.mechanism;
  const other = m?.parked.filter((o) => o.asPlanned === false) ?? [];
  if (vr.status !== 'passed' || !m || !other.length) return;
  vr.status = 'failed';
  vr.reason = `its claims held, but not through the planned mechanism: ${other.map((o) => describeObservation(o, m.planned)).join('; ')}`;
}
