import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { parseExperiment } from '../../src/spec/load.js';

const base = `name: t
description: a test
guest: { arch: x86_64, cpus: 2, maxcpus: 4 }
steps:
  - wait: 1s
`;

function problems(text: string | Buffer): string {
  try {
    parseExperiment(typeof text === 'string' ? Buffer.from(text) : text, 'exp.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as InputError).message;
  }
  throw new Error('expected the experiment to be refused');
}

describe('experiment loading', () => {
  it('accepts a minimal experiment and fills defaults', () => {
    const e = parseExperiment(base, 'exp.yaml');
    expect(e.repetitions).toBe(1);
    expect(e.knobs.disable_exits).toEqual([]);
    expect(e.steps[0]).toMatchObject({ kind: 'wait', durationMs: 1000, name: '01-wait' });
    expect(e.guest.ready_timeout).toBe(300_000);
  });

  it('accepts JSON too', () => {
    const e = parseExperiment(JSON.stringify({ name: 'j', description: 'd', guest: { arch: 'ppc64', cpus: 1 }, steps: [{ guest: 'true' }] }), 'exp.json');
    expect(e.guest.arch).toBe('ppc64');
  });

  it('refuses an empty file', () => {
    expect(problems('')).toMatch(/exp\.yaml: the file is empty/);
  });

  it('refuses a file that is not YAML, with its line', () => {
    expect(problems('name: [unclosed\ndescription: x\n')).toMatch(/^exp\.yaml:\d+:\d+: not valid YAML/);
  });

  it('refuses a binary file', () => {
    expect(problems(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3]))).toMatch(/not a text file/);
  });

  it('names an unknown field, its line and the allowed fields', () => {
    const msg = problems(base.replace('guest: {', 'guest: { cpu_count: 3,'));
    expect(msg).toMatch(/^exp\.yaml:3:\d+: guest: unknown field "cpu_count"; allowed here: arch, machine, cpu, cpus, maxcpus/);
  });

  it('refuses a negative CPU count at its line', () => {
    expect(problems(base.replace('cpus: 2', 'cpus: -2'))).toMatch(/^exp\.yaml:3:\d+: guest\.cpus: Too small: expected number to be >=1/);
  });

  it('explains a wrong type', () => {
    expect(problems(base.replace('cpus: 2', 'cpus: two'))).toMatch(/guest\.cpus: expected number, found the string "two"/);
  });

  it('says which step action is missing or doubled', () => {
    expect(problems(base.replace('- wait: 1s', '- name: x'))).toMatch(/steps\[0\]: a step needs one action: guest, offline, online/);
    expect(problems(base.replace('- wait: 1s', '- { wait: 1s, online: 1 }'))).toMatch(/exactly one action, this one has online and wait/);
  });

  it('checks cross references: steps named by expectations, axes named by when, vCPUs that exist', () => {
    const text = `${base}expect:\n  - { description: d, metric: vcpu.cpu_pct, step: nope, gt: 1, when: { policy: x } }\npinning:\n  vcpupin: { "7": "0" }\n`;
    const msg = problems(text);
    expect(msg).toMatch(/expect\[0\]\.step: no step is named "nope"; steps are: 01-wait/);
    expect(msg).toMatch(/expect\[0\]\.when\.policy: "policy" is not a matrix axis \(the experiment has no matrix\)/);
    expect(msg).toMatch(/pinning\.vcpupin\.7: vCPU 7 does not exist: the guest has maxcpus 4/);
  });

  it('validates matrix values with the knob schema', () => {
    const msg = problems(`${base}matrix:\n  disable_exits: [[hlt], [hltt]]\n`);
    expect(msg).toMatch(/matrix\.disable_exits\[1\]: "hltt" is not allowed; allowed: "mwait", "hlt"/);
  });

  it('parses durations and sizes and refuses nonsense', () => {
    expect(parseExperiment(base.replace('maxcpus: 4', 'maxcpus: 4, memory: 2G'), 'e').guest.memory).toBe(2048);
    expect(problems(base.replace('1s', '5 parsecs'))).toMatch(/"5 parsecs" is not a duration/);
  });

  it('limits YAML alias expansion (billion laughs)', () => {
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    expect(problems(bomb.join('\n'))).toMatch(/alias|Excessive/i);
  });
});
