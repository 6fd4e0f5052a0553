// Property-based fuzzing of the experiment loader: whatever the bytes or structure, it either
// returns a valid experiment or throws InputError — never anything else, never hangs.
import fc from 'fast-check';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { parseExperiment } from '../../src/experiment/load.js';

const FUZZ_RUNS = Number(process.env.KVMLAB_FUZZ_RUNS ?? 3000);

function outcome(input: Buffer | string): 'ok' | 'refused' {
  try {
    parseExperiment(input, 'fuzz.yaml');
    return 'ok';
  } catch (e) {
    if (e instanceof InputError) {
      expect(e.message.startsWith('fuzz.yaml')).toBe(true);
      return 'refused';
    }
    throw e;
  }
}

const valid = {
  name: 'f',
  description: 'fuzz',
  guest: { arch: 'x86_64', cpus: 2, maxcpus: 4 },
  matrix: { disable_exits: [[], ['hlt']] },
  steps: [{ hotplug: { id: 'cpu2' } }, { online: 2 }, { sample: '1s' }, { unplug: 'cpu2' }],
  expect: [{ description: 'd', metric: 'vcpu.cpu_pct', gt: 1 }],
};

// Any JSON-ish value, including the shapes YAML produces.
const anyValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string(),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

describe('loader fuzzing', () => {
  it('survives arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => void outcome(Buffer.from(bytes))), { numRuns: FUZZ_RUNS });
  });

  it('survives arbitrary text, including YAML syntax soup', () => {
    const soup = fc.stringMatching(/^[-:{}[\],&*!|>'"#%@` \nA-Za-z0-9]{0,200}$/);
    fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 300 }), soup), (text) => void outcome(text)), { numRuns: FUZZ_RUNS });
  });

  it('survives a valid experiment with any one field replaced by anything', () => {
    const paths: (string | number)[][] = [['name'], ['guest'], ['guest', 'cpus'], ['guest', 'arch'], ['matrix'], ['matrix', 'disable_exits'], ['steps'], ['steps', 0], ['steps', 1, 'online'], ['steps', 3], ['expect', 0], ['expect', 0, 'gt'], ['knobs'], ['pinning'], ['collect'], ['repetitions']];
    fc.assert(
      fc.property(fc.constantFrom(...paths), anyValue, (path, replacement) => {
        const doc = structuredClone(valid) as Record<string | number, unknown>;
        let node = doc;
        for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
        node[path[path.length - 1]!] = replacement;
        outcome(stringify(doc));
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('accepts the unmodified valid experiment (so the properties above are not vacuous)', () => {
    expect(outcome(stringify(valid))).toBe('ok');
  });
});
