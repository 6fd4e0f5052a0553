// Claims that cannot mean what they say are refused before anything boots, each at its line: a
// `when:` label no variant has, a metric nothing writes (with "did you mean"), a metric whose
// collector is not enabled, a step-only metric claimed over other steps.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { loadChecked } from '../../src/run/claims.js';
import { parseExperiment } from '../../src/spec/load.js';

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

async function refusal(claim: string): Promise<string> {
  const file = join(dir, `e${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, `${base}  - ${claim}\n`);
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
    await writeFile(file, `${base}  - { description: a, when: { disable_exits: hlt, policy: [quiet, polling] }, metric: vcpu.cpu_pct, step: idle, le: 5 }\n  - { description: b, metric: guest.cpu_online, step: off, eq: 0 }\n  - { description: c, metric: step.duration_s, le: 60 }\n  - { description: "host CPUs are the host's to know, not the file's", metric: vcpu.cpu_pct, entity: [vcpu1, pcpu99], le: 100 }\n`);
    await expect(loadChecked(file)).resolves.toMatchObject({ experiment: { name: 't' } });
  });
});
