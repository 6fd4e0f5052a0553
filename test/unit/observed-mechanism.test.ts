// A parked vCPU's mechanism from its counts, held against the plan: an MWAIT storm is a NOP spin,
// a busy thread with almost no exits is a passed-through instruction, a sleeping one an intercepted
// HLT; a cell whose claims held through another mechanism than planned fails.
import { describe, expect, it } from 'vitest';
import type { MetricRow } from '../../src/model/metrics.js';
import type { VariantResult } from '../../src/results/summary.js';
import type { Mechanism } from '../../src/plan/mechanism.js';
import { classifyParked, failIfOtherMechanism, observeParked, parkedWindows } from '../../src/run/observed-mechanism.js';
import { parseExperiment } from '../../src/experiment/load.js';

const steps = parseExperiment(
  `name: t
description: t
guest: { arch: x86_64, cpus: 3 }
steps:
  - { name: idle, sample: 1s }
  - { offline: 1 }
  - { name: parked, sample: 10s }
  - { offline: 2 }
  - { name: both, wait: 1s }
  - { online: 1 }
  - { name: one, sample: 1s }
  - { online: 2 }
`,
  't.yaml',
).steps;

const planned = (kvm: Mechanism['kvm'], parked: Mechanism['parked'] = 'mwait'): Mechanism => ({ idle: 'hlt', idleKvm: 'blocks', parked, kvm, notes: [] });

function rows(values: { mwait: number; hlt: number; total: number; cpu: number }, seconds = 10): MetricRow[] {
  const r = (metric: string, entity: string, value: number): MetricRow => ({ variant: 'v', repetition: 1, step: 'parked', entity, metric, value, unit: '' });
  return [r('step.duration_s', 'runner', seconds), r('exits.mwait', 'vcpu1', values.mwait), r('exits.hlt', 'vcpu1', values.hlt), r('exits.total', 'vcpu1', values.total), r('vcpu.cpu_pct', 'vcpu1', values.cpu)];
}

describe('the mechanism a parked vCPU shows', () => {
  it('finds the windows a vCPU is offline in', () => {
    expect(parkedWindows(steps)).toEqual([
      { step: 'parked', entity: 'vcpu1' },
      { step: 'both', entity: 'vcpu1' },
      { step: 'both', entity: 'vcpu2' },
      { step: 'one', entity: 'vcpu2' },
    ]);
  });

  it('tells the three mechanisms apart from exits and thread CPU', () => {
    expect(classifyParked({ mwaitPerS: 15_000, exitsPerS: 15_010, cpuPct: 99.8 })).toEqual({ kvm: 'nop-spin', parkedIn: 'mwait' });
    expect(classifyParked({ mwaitPerS: 0, exitsPerS: 0.2, cpuPct: 99.7 })).toEqual({ kvm: 'passed', parkedIn: 'hlt or mwait' });
    expect(classifyParked({ mwaitPerS: 0, exitsPerS: 0.2, cpuPct: 0.06 })).toEqual({ kvm: 'blocks', parkedIn: 'hlt' });
    expect(classifyParked({ mwaitPerS: 0, exitsPerS: 0.2, cpuPct: 50 })).toEqual({ kvm: 'unclear', parkedIn: 'unknown' });
    expect(classifyParked({ mwaitPerS: 0, exitsPerS: 0.2, cpuPct: null })).toEqual({ kvm: 'unclear', parkedIn: 'unknown' });
  });

  it('holds what it saw against the plan, and says nothing where no exits were counted', () => {
    const w = [{ step: 'parked', entity: 'vcpu1' }];
    expect(observeParked(rows({ mwait: 150_000, hlt: 0, total: 150_100, cpu: 99.9 }), w, planned('nop-spin'))).toMatchObject([{ kvm: 'nop-spin', mwaitPerS: 15_000, asPlanned: true }]);
    expect(observeParked(rows({ mwait: 150_000, hlt: 0, total: 150_100, cpu: 99.9 }), w, planned('passed', 'hlt'))).toMatchObject([{ kvm: 'nop-spin', asPlanned: false }]);
    expect(observeParked(rows({ mwait: 0, hlt: 0, total: 0, cpu: 50 }), w, planned('passed'))[0]).not.toHaveProperty('asPlanned');
    expect(observeParked(rows({ mwait: 0, hlt: 0, total: 0, cpu: 99 }).filter((r) => !r.metric.startsWith('exits.')), w, planned('passed'))).toEqual([]);
  });

  it('fails a cell whose claims held through another mechanism, and only that', () => {
    const w = [{ step: 'parked', entity: 'vcpu1' }];
    const storm = observeParked(rows({ mwait: 150_000, hlt: 0, total: 150_100, cpu: 99.9 }), w, planned('passed', 'hlt'));
    const v = (status: VariantResult['status']): VariantResult => ({ id: 'disable_exits=hlt', labels: {}, knobs: {} as VariantResult['knobs'], status, repetitions: [], expectations: [], mechanism: { planned: planned('passed', 'hlt'), parked: storm } });
    const passed = v('passed');
    failIfOtherMechanism(passed);
    expect(passed.status).toBe('failed');
    expect(passed.reason).toMatch(/^its claims held, but not through the planned mechanism: vcpu1 @ parked: intercepted MWAIT emulated as a NOP \(an exit storm\): 15,000 MWAIT exits\/s, .*NOT as planned \(planned: parks in HLT, passed through/);
    const asPlanned = { ...v('passed'), mechanism: { planned: planned('nop-spin'), parked: observeParked(rows({ mwait: 150_000, hlt: 0, total: 150_100, cpu: 99.9 }), w, planned('nop-spin')) } };
    failIfOtherMechanism(asPlanned);
    expect(asPlanned.status).toBe('passed');
    const failed = v('failed');
    failIfOtherMechanism(failed);
    expect(failed.reason).toBeUndefined();
  });
});
