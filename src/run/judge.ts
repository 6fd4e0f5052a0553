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
  const perStep = (metric: string): Map<string, MetricRow[]> => {
    const byStep = new Map<string, MetricRow[]>();
    for (const r of rows) if (r.metric === metric && counted(r.step)) byStep.set(r.step, [...(byStep.get(r.step) ?? []), r]);
    return byStep;
  };
  const steps = [...perStep('observer.cpu_pct')].map(([step, rs]) => ({ step, pct: median(rs.map((r) => r.value)) }));
  if (!steps.length) return undefined;
  const max = steps.reduce((a, b) => (b.pct > a.pct ? b : a));
  const durations = new Map(rows.filter((r) => r.metric === 'step.duration_s').map((r) => [`${r.repetition}/${r.step}`, r.value]));
  const traced = [...perStep('exits.traced')].flatMap(([step, rs]) => {
    const rates = rs.flatMap((r) => {
      const s = durations.get(`${r.repetition}/${r.step}`);
      return s ? [r.value / s] : [];
    });
    return rates.length ? [{ step, perS: median(rates) }] : [];
  });
  const busiest = traced.length ? traced.reduce((a, b) => (b.perS > a.perS ? b : a)) : undefined;
  return { medianCpuPct: median(steps.map((x) => x.pct)), maxCpuPct: max.pct, maxStep: max.step, ...(busiest ? { tracedPerS: busiest.perS, tracedStep: busiest.step } : {}) };
}
