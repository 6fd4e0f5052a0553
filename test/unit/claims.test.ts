// Claims that cannot mean what they say are refused before anything boots, each at its line: a
// `when:` label no variant has, a metric nothing writes (with "did you mean"), a metric whose
// collector is not enabled, a step-only metric claimed over other steps.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { loadChecked } from '../../src/run/claims.js';
import { parseExperiment } from '../../src/experiment/load.js';

const base = `name: t
description: a test
guest: { arch: x86_64, cpus: 2 }
matrix:
  disable_exits: [[], [hlt]]
  policy: { quiet: { halt_poll_ns: 0 }, polling: { halt_poll_ns: 200000 } }
collect:
  vcpu-cpu: {}
steps:
  - { name: idle, sample: 1s }
  - { name: off, offline: 1 }
expect:
`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kvmlab-claims-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refusal(claim: string, experiment = (c: string) => `${base}  - ${c}\n`): Promise<string> {
  const file = join(dir, `e${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, experiment(claim));
  try {
    await loadChecked(file);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as InputError).message.replace(`${file}:`, 'exp.yaml:');
  }
  throw new Error(`expected ${claim} to be refused`);
}

describe('claims that check nothing', () => {
  it('a when: label of a knob axis that no variant has', async () => {
    expect(await refusal('{ description: a, when: { disable_exits: [mwait] }, metric: vcpu.cpu_pct, le: 5 }')).toBe(
      'exp.yaml:13:46: expect[0].when.disable_exits: no variant has disable_exits=mwait, so this expectation would check nothing; disable_exits labels are: none, hlt',
    );
  });

  it('a when: label of a preset axis that no variant has, one of several', async () => {
    expect(await refusal('{ description: a, when: { policy: [quiet, busy] }, metric: vcpu.cpu_pct, le: 5 }')).toMatch(/^exp\.yaml:13:\d+: expect\[0\]\.when\.policy\[1\]: no variant has policy=busy, .*labels are: quiet, polling$/);
  });

  it('a metric nothing writes, with did you mean', async () => {
    expect(await refusal('{ description: a, metric: vcpu.cpu_pc, le: 5 }')).toMatch(/^exp\.yaml:13:31: expect\[0\]\.metric: nothing in this experiment writes vcpu\.cpu_pc; did you mean vcpu\.cpu_pct\?/);
  });

  it('a metric whose collector is not enabled names the collect: entry to add', async () => {
    expect(await refusal('{ description: a, metric: trace.exits.hlt, le: 5 }')).toMatch(/trace\.exits\.hlt is written by the tracefs collector, which this experiment does not enable; add it under collect: \(e\.g\. collect: \{ tracefs: \{\} \}\)/);
    expect(await refusal('{ description: a, metric: kvm.halt_exits, le: 5 }')).toMatch(/kvm-stats collector/);
  });

  it('a metric only some steps write, claimed over a step that does not', async () => {
    expect(await refusal('{ description: a, metric: guest.cpu_online, step: idle, le: 5 }')).toMatch(/^exp\.yaml:13:\d+: expect\[0\]\.step: guest\.cpu_online is written only by step off, not by idle$/);
  });

  it('a preset axis with no labels, which leaves no variant for any claim to select', async () => {
    const file = join(dir, 'empty-axis.yaml');
    await writeFile(file, `${base.replace('  policy: {', '  idle: {}\n  policy: {')}  - { description: a, metric: step.duration_s, le: 60 }\n`);
    await expect(loadChecked(file)).rejects.toThrow(/^.*empty-axis\.yaml:6:9: matrix\.idle: preset axis "idle" has no labels, which leaves the matrix no variant to run or check; give it at least one/);
  });

  it('an entity naming a vCPU the guest can never have', async () => {
    expect(await refusal('{ description: a, metric: vcpu.cpu_pct, entity: vcpu5, le: 5 }')).toMatch(/^exp\.yaml:13:\d+: expect\[0\]\.entity: vcpu5 cannot exist: the guest has 2 vCPUs \(maxcpus 2\); name one of vcpu0-vcpu1, or raise guest\.cpus$/);
    expect(await refusal('{ description: a, metric: vcpu.cpu_pct, entity: [vcpu0, vcpu2], le: 5 }')).toMatch(/^exp\.yaml:13:\d+: expect\[0\]\.entity\[1\]: vcpu2 cannot exist/);
  });

  it('a vCPU above cpus is refused unless a step hot-plugs one, and one at maxcpus always', async () => {
    const file = join(dir, 'slots.yaml');
    const slots = base.replace('cpus: 2 }', 'cpus: 2, maxcpus: 4 }');
    await writeFile(file, `${slots}  - { description: a, metric: vcpu.cpu_pct, entity: vcpu3, le: 5 }\n`);
    await expect(loadChecked(file)).rejects.toThrow(/expect\[0\]\.entity: vcpu3 cannot exist: the guest boots 2 vCPUs and no step hot-plugs one \(maxcpus 4 only leaves slots\); name one of vcpu0-vcpu1, or add a hotplug: step/);
    const plugged = slots.replace('steps:\n', 'steps:\n  - { hotplug: { id: vcpu9 } }\n');
    await writeFile(file, `${plugged}  - { description: a, metric: vcpu.cpu_pct, entity: vcpu3, le: 5 }\n  - { description: b, metric: cpu.hotplugged, entity: vcpu9, eq: 1 }\n`);
    await expect(loadChecked(file)).resolves.toBeDefined();
    await writeFile(file, `${plugged}  - { description: a, metric: vcpu.cpu_pct, entity: vcpu4, le: 5 }\n`);
    await expect(loadChecked(file)).rejects.toThrow(/vcpu4 cannot exist: the guest has maxcpus 4; name one of vcpu0-vcpu3, or raise guest\.maxcpus/);
  });

  it('an unknown when: axis stays refused by the schema', () => {
    expect(() => parseExperiment(`${base}  - { description: a, when: { vendor: [intel] }, metric: vcpu.cpu_pct, le: 5 }\n`, 'exp.yaml')).toThrow(/"vendor" is not a matrix axis/);
  });

  it('accepts claims that can hold', async () => {
    const file = join(dir, 'ok.yaml');
    const withIrqs = base.replace('  vcpu-cpu: {}\n', '  vcpu-cpu: {}\n  interrupts: {}\n');
    await writeFile(file, `${withIrqs}  - { description: a, when: { disable_exits: hlt, policy: [quiet, polling] }, metric: vcpu.cpu_pct, step: idle, le: 5 }\n  - { description: b, metric: guest.cpu_online, step: off, eq: 0 }\n  - { description: c, metric: step.duration_s, le: 60 }\n  - { description: "host CPUs are the host's to know, not the file's", metric: cpu.busy_pct, entity: [pcpu1, pcpu99], le: 90 }\n  - { description: d, metric: vcpu.cpu_pct, entity: [vcpu1, emulator], agg: max, gt: 99.5 }\n`);
    await expect(loadChecked(file)).resolves.toMatchObject({ experiment: { name: 't' } });
  });
});

describe('claims that no observation could make true, or that every one does', () => {
  const withAll = (claim: string) => `${base.replace('  vcpu-cpu: {}\n', '  vcpu-cpu: {}\n  kvm-exits: {}\n  kvm-stats: {}\n  tracefs: { events: ["sched:sched_switch"] }\n')}  - ${claim}\n`;
  const refusedWithAll = (claim: string) => refusal(claim, withAll);

  it('a threshold outside what the metric can be', async () => {
    expect(await refusal('{ description: a, metric: vcpu.cpu_pct, ge: 1000 }')).toMatch(/expect\[0\]\.ge: ge 1000 can never hold: the median of vcpu\.cpu_pct is 0–100 \(%\); no observation could make this claim true$/);
    expect(await refusal('{ description: a, metric: vcpu.cpu_pct, le: -5 }')).toMatch(/expect\[0\]\.le: le -5 can never hold/);
  });

  it('a bound every observation meets checks nothing', async () => {
    expect(await refusedWithAll('{ description: a, metric: exits.hlt, ge: 0 }')).toMatch(/expect\[0\]\.ge: ge 0 holds whatever is observed: the median of exits\.hlt is ≥ 0, so this claim checks nothing/);
    expect(await refusal('{ description: a, metric: vcpu.cpu_pct, between: [0, 100] }')).toMatch(/checks nothing/);
  });

  it('a reversed between', async () => {
    expect(await refusal('{ description: a, metric: vcpu.cpu_pct, between: [90, 10] }')).toMatch(/expect\[0\]\.between: between \[90, 10\] is reversed: no value is ≥ 90 and ≤ 10; write between: \[10, 90\]$/);
  });

  it('a metric claimed on an entity of another kind', async () => {
    expect(await refusal('{ description: a, metric: vcpu.cpu_pct, entity: pcpu2, ge: 50 }')).toMatch(/expect\[0\]\.entity: vcpu\.cpu_pct is written for a vCPU thread \(vcpu0\) or QEMU's non-vCPU threads \(emulator\); pcpu2 is a host CPU, so no row of it can match$/);
    expect(await refusedWithAll('{ description: a, metric: kvm.pages_4k, entity: vcpu0, ge: 1 }')).toMatch(/kvm\.pages_4k is written for the whole VM \(vm\); vcpu0 is a vCPU thread/);
    expect(await refusedWithAll('{ description: a, metric: trace.sched_switch, entity: vcpu0, ge: 1 }')).toMatch(/written for a host CPU \(pcpu2\); vcpu0 is a vCPU thread/);
  });

  it('a misspelled member of a family, with did you mean', async () => {
    expect(await refusedWithAll('{ description: a, metric: exits.hlx, ge: 1 }')).toMatch(/expect\[0\]\.metric: exits\.hlx: "hlx" is not one of exit reasons as KVM names them .*; did you mean exits\.hlt\?$/);
    expect(await refusedWithAll('{ description: a, metric: kvm.halt_exitz, ge: 1 }')).toMatch(/did you mean kvm\.halt_exits\?$/);
    expect(await refusedWithAll('{ description: a, metric: kvm.halt_wait_hist, ge: 1 }')).toMatch(/histograms stay in kvm-stats\.jsonl/);
  });

  it('a collector metric claimed over the boot, which no collector watches', async () => {
    expect(await refusedWithAll('{ description: a, metric: exits.hlt, step: boot, ge: 1 }')).toMatch(/expect\[0\]\.step: exits\.hlt is observed during the steps, and the boot is not one/);
  });

  it('two axes that set one knob, and a sample of no time', () => {
    const clash = base.replace('  policy: {', '  other: { a: { disable_exits: [mwait] } }\n  policy: {');
    expect(() => parseExperiment(clash, 'exp.yaml')).toThrow(/matrix\.other: axis "other" sets disable_exits, which axis "disable_exits" sets too/);
    expect(() => parseExperiment(base.replace('sample: 1s', 'sample: 0s'), 'exp.yaml')).toThrow(/steps\[0\]\.sample: a sample of no time observes nothing/);
  });
});
