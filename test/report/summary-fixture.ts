// A summary as `kvmlab run` writes it, built in memory for tests of what reads one: one variant per
// entry, each with its expectations' observed values.
import type { Summary } from '../../src/results/summary.js';

export interface FixtureVariant {
  id: string;
  status?: Summary['variants'][number]['status'];
  observed?: (number | null)[];
  repetitions?: number;
}

export function summaryFixture(variants: readonly FixtureVariant[], over: Partial<Summary> = {}): Summary {
  return {
    experiment: 'fixture',
    description: 'A summary built by the tests.',
    source: undefined,
    file: 'fixture.yaml',
    backend: 'mock',
    accel: 'kvm',
    simulated: true,
    target: { kind: 'local' },
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:01:00.000Z',
    interrupted: false,
    host: { arch: 'x86_64', kernelRelease: '6.12.0', cpuModel: 'test CPU', cpus: [0, 1], kernelCmdline: 'ro', kvmUsable: true, disableExitsMask: 15, kvmParams: {} },
    notices: [],
    variants: variants.map((v) => ({
      id: v.id,
      labels: { axis: v.id },
      knobs: { disable_exits: [], guest_idle: 'default', guest_haltpoll: false },
      status: v.status ?? 'passed',
      repetitions: Array.from({ length: v.repetitions ?? 1 }, (_, i) => ({ repetition: i + 1, status: 'completed' as const, dir: `variants/${v.id}/rep-${i + 1}`, pinned: [], collectors: {} })),
      expectations: (v.observed ?? []).map((observed, i) => ({
        description: `expectation ${i + 1}`,
        metric: 'vcpu.cpu_pct',
        claim: `median vcpu.cpu_pct >= ${i}`,
        passed: v.status !== 'failed',
        observed,
        perRepetition: observed === null ? [] : [observed],
        rows: 1,
      })),
    })),
    ...over,
  };
}
