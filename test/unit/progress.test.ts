// Progress: which variant and repetition a run is at, and the time left from the declared windows
// and what earlier runs took beyond them.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { RunAt } from '../../src/model/progress.js';
import { createProgress, Eta } from '../../src/run/progress.js';

const at = (run: number, extra: Partial<RunAt> = {}): RunAt => ({ variant: ((run - 1) % 8) + 1, variants: 8, id: 'v', repetition: Math.ceil(run / 8), repetitions: 2, run, runs: 16, windowsMs: 20_000, ...extra });

describe('time left', () => {
  it('is at least the declared windows left until a run has completed', () => {
    const eta = new Eta();
    eta.start(at(1), 0);
    expect(eta.text(0)).toBe('at least 5m20s left'); // 16 runs × 20 s of windows
    expect(eta.text(5_000)).toBe('at least 5m15s left');
    eta.finished('error', 3_000); // a run that broke says nothing about how long one takes
    eta.start(at(2), 3_000);
    expect(eta.text(3_000)).toBe('at least 5m0s left');
  });

  it('adds the mean time completed runs spent outside their windows: boot, other steps, teardown', () => {
    const eta = new Eta();
    eta.start(at(1), 0);
    eta.finished('completed', 30_000); // 20 s of windows + 10 s outside them
    eta.start(at(2), 30_000);
    expect(eta.text(30_000)).toBe('about 7m30s left'); // 15 runs × 30 s
    eta.finished('completed', 80_000); // 50 s: 30 s outside
    eta.start(at(3), 80_000);
    expect(eta.text(90_000)).toBe('about 9m10s left'); // a run is now 20 s + a mean 20 s outside: (40 - 10) s + 13 × 40 s
  });

  it('says nothing when nothing is declared and nothing measured', () => {
    const eta = new Eta();
    eta.start(at(1, { windowsMs: 0 }), 0);
    expect(eta.text(0)).toBeUndefined();
  });
});

describe('progress lines', () => {
  it('count variants and repetitions, not runs, and show the time left', () => {
    let text = '';
    const out = new Writable({ write: (chunk, _enc, done) => ((text += String(chunk)), done()) });
    const progress = createProgress(out as unknown as NodeJS.WriteStream);
    progress.variant(at(9, { id: 'disable_exits=none' }));
    progress.finished('completed');
    expect(text).toMatch(/variant 1\/8 disable_exits=none rep 2\/2: starting \(at least 2m40s left\)/);
    expect(text).not.toMatch(/9\/16/);
  });
});
