// steps.jsonl: the runner writes its records with stepLine and report/load reads them back with
// stepRecords, through one schema; a line that is not a step record is left out, never cast.
import { describe, expect, it } from 'vitest';
import { stepLine, stepRecords } from '../../src/results/records.js';

describe('steps.jsonl records', () => {
  it('read back what was written, and leave out what is not a step record', () => {
    const written = [
      { step: 'idle', kind: 'sample', start: 10, end: 20, ok: true, detail: { cpus: 2 } },
      { step: 'teardown', end: 21, how: 'quit' },
    ];
    const lines = written.map((r) => JSON.parse(stepLine(r)) as Record<string, unknown>);
    expect(stepRecords(lines)).toEqual(written);
    expect(stepRecords([{ step: 'x' }, { end: 3 }, { step: 'y', end: '4' }, { step: 'z', end: 5, ok: 'yes' }])).toEqual([]);
  });
});
