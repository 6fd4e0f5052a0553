// The runner tells progress which variant and repetition each run is, over the variants that run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/backend/mock/mock-backend.js';
import type { Progress, RunAt } from '../../src/model/progress.js';
import { runExperiment } from '../../src/run/runner.js';
import { parseExperiment } from '../../src/experiment/load.js';

const tmp = mkdtempSync(join(tmpdir(), 'kvmlab-progress-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const text = `name: progress
description: three variants, two repetitions each
guest: { arch: x86_64, cpus: 1 }
matrix: { halt_poll_ns: [0, 1000, 200000] }
repetitions: 2
steps:
  - { name: rest, wait: 200ms }
  - { name: window, sample: 300ms }
`;

describe('progress from the runner', () => {
  it('numbers each run by its variant among the variants and its repetition, with the declared windows', async () => {
    const seen: RunAt[] = [];
    const progress: Progress = { notice: () => undefined, variant: (at) => seen.push(at), step: () => undefined, stage: () => undefined, finished: () => undefined, close: () => undefined };
    const loaded = { file: 'progress.yaml', text, experiment: parseExperiment(text, 'progress.yaml') };
    await runExperiment({ loaded, backend: new MockBackend(), accel: 'auto', out: join(tmp, 'out'), allowHostCommands: false, progress, signal: new AbortController().signal });
    expect(seen.map((s) => [s.variant, s.variants, s.repetition, s.repetitions, s.run, s.runs])).toEqual([
      [1, 3, 1, 2, 1, 6],
      [2, 3, 1, 2, 2, 6],
      [3, 3, 1, 2, 3, 6],
      [1, 3, 2, 2, 4, 6],
      [2, 3, 2, 2, 5, 6],
      [3, 3, 2, 2, 6, 6],
    ]);
    expect(seen.map((s) => s.id)).toEqual(['halt_poll_ns=0', 'halt_poll_ns=1000', 'halt_poll_ns=200000', 'halt_poll_ns=0', 'halt_poll_ns=1000', 'halt_poll_ns=200000']);
    expect(new Set(seen.map((s) => s.windowsMs))).toEqual(new Set([500]));
  });
});
