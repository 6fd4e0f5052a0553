// The rule, not the list: well-formed experiments, each with one claim that no possible observation
// could make true or that every possible one does, generated from what kvmlab says its metrics are,
// are every one refused; and the same claims moved inside what can be observed are accepted.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { COLLECTOR_METRICS } from '../../src/collect/metrics.js';
import { ENTITY_KINDS, type EntityKind, type MetricDesc } from '../../src/model/metric-desc.js';
import { claimProblems } from '../../src/run/claims.js';
import { parseExperiment } from '../../src/experiment/load.js';
import type { CollectorName } from '../../src/experiment/schema.js';

/** Every exact, entity-kinded metric a collector writes, with its collector. */
const METRICS = (Object.entries(COLLECTOR_METRICS) as [CollectorName, readonly MetricDesc[]][]).flatMap(([collector, descs]) =>
  descs.filter((d) => !d.family && d.entities !== 'named').map((d) => ({ collector, d })),
);
const KINDS = Object.keys(ENTITY_KINDS) as EntityKind[];

function experiment(collector: CollectorName, claim: string): string {
  const options = collector === 'tracefs' ? '{ events: ["kvm:kvm_exit", "sched:sched_switch", "sched:sched_wakeup"] }' : '{}';
  return `name: prop
description: one generated claim
guest: { arch: x86_64, cpus: 2 }
collect: { ${collector}: ${options} }
steps:
  - { name: idle, sample: 1s }
expect:
  - ${claim}
`;
}

const problemsOf = (text: string) => claimProblems(parseExperiment(text, 'prop.yaml'));
const entityName = (k: EntityKind) => (k === 'vcpu' ? 'vcpu1' : k === 'pcpu' ? 'pcpu1' : k === 'cpu' ? 'cpu1' : k);

/** A claim on metric d that cannot mean what it says, and why. */
const impossibleClaim = fc.constantFrom(...METRICS).chain(({ collector, d }) => {
  const kinds = d.entities as readonly EntityKind[];
  const flaws: fc.Arbitrary<string>[] = [
    // above anything the metric can be, or below
    ...(Number.isFinite(d.max) ? [fc.double({ min: d.max + 0.001, max: d.max + 1e6, noNaN: true }).map((v) => `ge: ${v}`)] : []),
    ...(Number.isFinite(d.min) ? [fc.double({ min: d.min - 1e6, max: d.min - 0.001, noNaN: true }).map((v) => `le: ${v}`)] : []),
    // met by every observation
    ...(Number.isFinite(d.min) ? [fc.double({ min: d.min - 1e6, max: d.min, noNaN: true }).map((v) => `ge: ${v}`)] : []),
    ...(Number.isFinite(d.max) ? [fc.double({ min: d.max, max: d.max + 1e6, noNaN: true }).map((v) => `le: ${v}`)] : []),
    // a reversed window
    fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 1000 })).map(([a, b]) => `between: [${a + b}, ${a}]`),
  ];
  const wrongKinds = KINDS.filter((k) => !kinds.includes(k));
  const entity = fc.constantFrom(...wrongKinds).map((k) => `entity: ${entityName(k)}, ge: 1`);
  const boot = fc.constant('step: boot, ge: 1');
  return fc.oneof(...flaws, entity, boot).map((flaw) => ({ collector, text: `{ description: generated, metric: ${d.name}, ${flaw} }` }));
});

/** A claim on metric d that an observation could make true and another could make false. */
const possibleClaim = fc.constantFrom(...METRICS).chain(({ collector, d }) => {
  const lo = Number.isFinite(d.min) ? d.min : -1e6;
  const hi = Number.isFinite(d.max) ? d.max : lo + 1e6;
  return fc.double({ min: lo + (hi - lo) / 1000, max: hi - (hi - lo) / 1000, noNaN: true }).chain((v) =>
    fc.constantFrom('ge', 'le', 'gt', 'lt').map((op) => ({ collector, text: `{ description: generated, metric: ${d.name}, entity: ${entityName((d.entities as EntityKind[])[0]!)}, ${op}: ${v} }` })),
  );
});

describe('every claim that cannot mean what it says is refused', () => {
  it('generated impossible or vacuous claims are refused, each at its claim', () => {
    fc.assert(
      fc.property(impossibleClaim, ({ collector, text }) => {
        const problems = problemsOf(experiment(collector, text));
        expect(problems.length, text).toBeGreaterThan(0);
        expect(problems[0]!.path.slice(0, 2), text).toEqual(['expect', 0]);
      }),
      { numRuns: 400 },
    );
  });

  it('the same metrics with claims an observation could break are accepted', () => {
    fc.assert(
      fc.property(possibleClaim, ({ collector, text }) => {
        expect(problemsOf(experiment(collector, text)), text).toEqual([]);
      }),
      { numRuns: 400 },
    );
  });
});
