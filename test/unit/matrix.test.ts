import { describe, expect, it } from 'vitest';
import { parseExperiment } from '../../src/experiment/load.js';
import { expandMatrix, schedule, selects } from '../../src/experiment/matrix.js';
import { globMatch } from '../../src/util/glob.js';

const exp = parseExperiment(
  `name: m
description: d
guest: { arch: x86_64, cpus: 2 }
knobs: { halt_poll_ns: 1000 }
matrix:
  disable_exits: [[], [hlt], [hlt, mwait]]
  policy:
    haltpoll: { guest_haltpoll: true }
    plain: {}
steps: [{ wait: 1s }]
`,
  'm.yaml',
);

describe('matrix expansion', () => {
  const variants = expandMatrix(exp);
  it('makes the cartesian product with stable readable ids, in declaration order', () => {
    expect(variants.map((v) => v.id)).toEqual([
      'disable_exits=none,policy=haltpoll',
      'disable_exits=none,policy=plain',
      'disable_exits=hlt,policy=haltpoll',
      'disable_exits=hlt,policy=plain',
      'disable_exits=hlt+mwait,policy=haltpoll',
      'disable_exits=hlt+mwait,policy=plain',
    ]);
  });
  it('applies axis values and presets over the base knobs', () => {
    const v = variants[2]!;
    expect(v.knobs).toMatchObject({ disable_exits: ['hlt'], guest_haltpoll: true, halt_poll_ns: 1000 });
    expect(variants[3]!.knobs.guest_haltpoll).toBe(false);
  });
  it('interleaves repetitions across variants', () => {
    const runs = schedule(variants.slice(0, 2), 3);
    expect(runs.map((r) => `${r.variant.id.slice(-4)}#${r.repetition}`)).toEqual(['poll#1', 'lain#1', 'poll#2', 'lain#2', 'poll#3', 'lain#3']);
  });
  it('selects variants by glob and by axis labels', () => {
    expect(variants.filter((v) => globMatch('disable_exits=hlt*', v.id)).length).toBe(4);
    expect(variants.filter((v) => selects({ disable_exits: ['hlt+mwait'], policy: ['plain'] }, v)).map((v) => v.id)).toEqual(['disable_exits=hlt+mwait,policy=plain']);
  });
  it('gives a matrix-less experiment one variant called default', () => {
    expect(expandMatrix(parseExperiment('name: x\ndescription: d\nguest: {arch: x86_64, cpus: 1}\nsteps: [{wait: 1}]\n', 'x')).map((v) => v.id)).toEqual(['default']);
  });
});
