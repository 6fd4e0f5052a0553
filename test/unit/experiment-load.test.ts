import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { parseExperiment } from '../../src/experiment/load.js';

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

  it('refuses an axis value repeated, or the same set in another order, naming both lines', () => {
    const text = `${base}matrix:\n  disable_exits:\n    - [hlt]\n    - [hlt]\n    - [hlt, mwait]\n    - [mwait, hlt]\n  halt_poll_ns: [0, 200000, 0]\n`;
    expect(problems(text).split('\n')).toEqual([
      'exp.yaml:9:7: matrix.disable_exits[1]: disable_exits hlt is the same as disable_exits[0] (hlt) at line 8: the variant would run twice under one id, its results overwriting each other; remove one',
      'exp.yaml:11:7: matrix.disable_exits[3]: disable_exits mwait+hlt is the same as disable_exits[2] (hlt+mwait) at line 10: the variant would run twice under two ids; remove one',
      'exp.yaml:12:29: matrix.halt_poll_ns[2]: halt_poll_ns 0 is the same as halt_poll_ns[0] (0) at line 12: the variant would run twice under one id, its results overwriting each other; remove one',
    ]);
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

  it('reports an unknown field at its own line with the field a slip meant, at the top and in every nested mapping', () => {
    const text = `name: t
description: a test
guest:
  arch: x86_64
  cpsu: 2
collect:
  tracefs: { evnets: [kvm:kvm_exit] }
steps:
  - { name: a, sample: 1s, tiemout: 3s }
  - guest: { cmd: "true", recrod: n }
matrix:
  policy:
    quiet:
      halt_pol_ns: 0
expect:
  - description: x
    metric: vcpu.cpu_pct
    le: 1
    enitty: vcpu0
stpes: []
`;
    const lines = problems(text).split('\n');
    expect(lines).toEqual([
      expect.stringMatching(/^exp\.yaml:4:3: guest\.cpus: required field is missing/),
      expect.stringMatching(/^exp\.yaml:5:3: guest: unknown field "cpsu"; did you mean cpus\? allowed here: arch, machine, cpu, cpus,/),
      expect.stringMatching(/^exp\.yaml:7:14: collect\.tracefs: unknown field "evnets"; did you mean events\? allowed here: events, buffer_kb$/),
      expect.stringMatching(/^exp\.yaml:9:28: steps\[0\]: unknown field "tiemout"; did you mean timeout\? /),
      expect.stringMatching(/^exp\.yaml:10:27: steps\[1\]\.guest: unknown field "recrod"; did you mean record\? allowed here: cmd, record, check$/),
      expect.stringMatching(/^exp\.yaml:14:7: matrix\.policy\.quiet: unknown field "halt_pol_ns"; did you mean halt_poll_ns\? /),
      expect.stringMatching(/^exp\.yaml:19:5: expect\[0\]: unknown field "enitty"; did you mean entity\? /),
      expect.stringMatching(/^exp\.yaml:20:1: unknown field "stpes"; did you mean steps\? allowed here: name, description,/),
    ]);
  });

  it('reports each of several unknown fields of one mapping at its own line, and suggests nothing for a word that is no slip', () => {
    const lines = problems(`${base}colour: blue
flavour: sweet
`).split('\n');
    expect(lines).toEqual([expect.stringMatching(/^exp\.yaml:6:1: unknown field "colour"; allowed here: /), expect.stringMatching(/^exp\.yaml:7:1: unknown field "flavour"; allowed here: /)]);
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
  it('refuses a step named after the runner\'s own rows (boot, teardown), and lets a claim read the boot row', () => {
    expect(problems(base.replace('  - wait: 1s', '  - { name: boot, wait: 1s }'))).toMatch(/exp\.yaml:5:\d+: steps\[0\]\.name: step name "boot" is the runner's own \(its guest\.ready_s row goes by it\); give the step another name/);
    expect(problems(base.replace('  - wait: 1s', '  - { name: teardown, wait: 1s }'))).toMatch(/step name "teardown" is the runner's own/);
    const e = parseExperiment(`${base}expect:\n  - { description: boots, metric: guest.ready_s, step: boot, le: 60 }\n`, 'exp.yaml');
    expect(e.expect[0]!.step).toEqual(['boot']);
  });
});
