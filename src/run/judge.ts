// The verdict on one variant from its repetitions and rows: its claims evaluated, its status, what
// watching cost, and (x86 under KVM) the mechanism its parked vCPUs were seen in against the plan.
// One owner, used by a run when it ends and by merging the shards of one (run/merge.ts), so a
// merged run is judged exactly as a whole one would be.
import type { MetricRow } from '../model/metrics.js';
import type { MechanismResult, VariantResult } from '../results/summary.js';
import { median } from '../model/select.js';
import type { Mechanism } from '../plan/mechanism.js';
import type { Variant } from '../experiment/matrix.js';
import { measuringWindows, type Experiment } from '../experiment/schema.js';
import { applicable, evaluate } from './expect.js';
import { failIfOtherMechanism, observeParked, parkedWindows } from './observed-mechanism.js';

/**
 * Judges `vr` in place from `rows` (this variant's): a variant preflight skipped stays skipped;
 * one that ran is error (a repetition broke, or none ran), unchecked (no claim applies), passed or
 * failed. `planned` is the mechanism the plan gave the cell, when there is one to hold it to.
 */
export function judgeVariant(exp: Experiment, variant: Variant, vr: VariantResult, rows: readonly MetricRow[], planned: MechanismResult['planned'] | Mechanism | undefined): void {
  const claims = applicable(exp.expect, variant);
  vr.claims = claims.length;
  if (vr.status === 'skipped' && vr.reason && vr.repetitions.length === 0) return;
  vr.expectations = claims.map((e) => evaluate(e, rows));
  const broken = vr.repetitions.find((r) => r.status === 'error');
  delete vr.reason;
  if (vr.repetitions.length === 0) {
    vr.status = 'error';
    vr.reason = 'not run: interrupted';
  } else if (broken) {
    vr.status = 'error';
    vr.reason = `repetition ${broken.repetition}: ${broken.reason}`;
  } else if (vr.expectations.length === 0) {
    vr.status = 'unchecked';
    vr.reason = 'no claim of the file applies to this variant (its expect: entries select other variants): it ran, and nothing was checked';
  } else vr.status = vr.expectations.every((e) => e.passed) ? 'passed' : 'failed';
  vr.observer = observerSummary(rows, exp.steps);
  if (planned) {
    vr.mechanism = { planned, parked: observeParked(rows, parkedWindows(exp.steps), planned) };
    failIfOtherMechanism(vr);
  }
}

/**
 * What watching cost over the measuring windows (every step when there are none): kvmlab's own CPU,
 * the median step's and the costliest step's, and where kvm-exits ran, its trigger's runs a second
 * in the kernel at the busiest step; each a median over repetitions.
 */
function observerSummary(rows: readonly MetricRow[], expSteps: Experiment['steps']): VariantResult['observer'] {
  const windows = new Set(measuringWindows(expSteps));
  const counted = (step: string) => windows.size === 0 || windows.has(step);
  // per step, each repetition's value: kvmlab's CPU % and the trigger's runs a second
  const cpu = new Map<string, number[]>();
  const traced = new Map<string, number[]>();
  const durations = new Map(rows.filter((r) => r.metric === 'step.duration_s').map((r) => [`${r.repetition}/${r.step}`, r.value]));
  const add = (m: Map<string, number[]>, step: string, v: number) => (m.get(step) ?? m.set(step, []).get(step)!).push(v);
  for (const r of rows) {
    if (!counted(r.step)) continue;
    if (r.metric === 'observer.cpu_pct') add(cpu, r.step, r.value);
    const s = r.metric === 'exits.traced' ? durations.get(`${r.repetition}/${r.step}`) : undefined;
    if (s) add(traced, r.step, r.value / s);
  }
  const steps = [...cpu].map(([step, vs]) => ({ step, pct: median(vs) }));
  if (!steps.length) return undefined;
  const max = steps.reduce((a, b) => (b.pct > a.pct ? b : a));
  const busiest = [...traced].map(([step, vs]) => ({ step, perS: median(vs) })).reduce<{ step: string; perS: number } | undefined>((a, b) => (a && a.perS >= b.perS ? a : b), undefined);
  return { medianCpuPct: median(steps.map((x) => x.pct)), maxCpuPct: max.pct, maxStep: max.step, ...(busiest ? { tracedPerS: busiest.perS, tracedStep: busiest.step } : {}) };
}
