import { describe, expect, it } from 'vitest';
import { compare, evaluate } from '../../src/run/expect.js';
import { aggregate } from '../../src/model/select.js';
import { type MetricRow, parseCsv, toCsv } from '../../src/model/metrics.js';
import { parseExperiment } from '../../src/experiment/load.js';

const exp = parseExperiment(
  `name: e
description: d
guest: { arch: x86_64, cpus: 2 }
steps: [{ name: idle, sample: 1s }, { name: other, wait: 1s }]
expect:
  - { description: busy, metric: vcpu.cpu_pct, step: idle, entity: vcpu1, ge: 80 }
  - { description: quiet, metric: vcpu.cpu_pct, step: idle, entity: vcpu1, agg: max, lt: 5 }
  - { description: absent, metric: trace.exits, le: 10 }
  - { description: window, metric: vcpu.cpu_pct, entity: [vcpu0, vcpu1], agg: count, between: [2, 4] }
`,
  'e.yaml',
);
const row = (entity: string, value: number, step = 'idle', repetition = 1): MetricRow => ({ variant: 'default', repetition, step, entity, metric: 'vcpu.cpu_pct', value, unit: '%' });
const rows = [row('vcpu1', 97), row('vcpu1', 99, 'idle', 2), row('vcpu1', 12, 'idle', 3), row('vcpu0', 1), row('vcpu1', 50, 'other')];

describe('expectations', () => {
  it('reduces each repetition with agg, then takes the median over repetitions', () => {
    const r = evaluate(exp.expect[0]!, rows);
    expect(r).toMatchObject({ passed: true, observed: 97, perRepetition: [97, 99, 12], rows: 3 });
    expect(r.claim).toBe('median vcpu.cpu_pct [vcpu1] @ idle >= 80');
  });
  it('fails with the observed value', () => {
    expect(evaluate(exp.expect[1]!, rows)).toMatchObject({ passed: false, observed: 97 });
  });
  it('fails, and says so, when no data was collected', () => {
    const r = evaluate(exp.expect[2]!, rows);
    expect(r.passed).toBe(false);
    expect(r.observed).toBeNull();
    expect(r.note).toMatch(/no trace\.exits data/);
  });
  it('counts rows per repetition, so repeating a run does not change a count', () => {
    expect(evaluate(exp.expect[3]!, rows)).toMatchObject({ passed: false, observed: 1, perRepetition: [3, 1, 1] });
    expect(evaluate(exp.expect[3]!, rows.filter((r) => r.repetition === 1))).toMatchObject({ passed: true, observed: 3 });
  });
  it('leaves out values that are not numbers, as compare and the plots do; only those is no data', () => {
    expect(evaluate(exp.expect[0]!, [...rows, row('vcpu1', Number.NaN, 'idle', 2), row('vcpu1', Number.POSITIVE_INFINITY, 'idle', 4)])).toMatchObject({ observed: 97, perRepetition: [97, 99, 12], rows: 3 });
    expect(evaluate(exp.expect[0]!, [row('vcpu1', Number.NaN)])).toMatchObject({ passed: false, observed: null, note: expect.stringMatching(/no vcpu\.cpu_pct data/) });
  });
  it('has the usual aggregates and comparisons', () => {
    expect(aggregate([3, 1, 2, 10], 'median')).toBe(2.5);
    expect(aggregate([3, 1, 2], 'mean')).toBe(2);
    expect(aggregate([3, 1, 2], 'last')).toBe(2);
    expect(compare(5, 'between', [5, 6])).toBe(true);
    expect(compare(5, 'ne', 5)).toBe(false);
  });
  it('round-trips the metrics table through CSV, quoting where needed', () => {
    const odd: MetricRow = { variant: 'a,b="c"', repetition: 2, step: 's', entity: 'e', metric: 'm.x', value: 1.23456789, unit: '%' };
    expect(parseCsv(toCsv([odd])).rows).toEqual([{ ...odd, value: 1.23457 }]);
  });
});
