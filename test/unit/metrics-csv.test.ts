// metrics.csv both ways: whatever text a field holds reads back as written, and a file that is not
// what toCsv writes is refused at its line and field, except a last line a killed run cut short.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { parseCsv, toCsv, type MetricRow } from '../../src/model/metrics.js';

const HEADER = 'variant,repetition,step,entity,metric,value,unit\n';
const row = (over: Partial<MetricRow> = {}): MetricRow => ({ variant: 'v', repetition: 1, step: 'idle', entity: 'vcpu0', metric: 'vcpu.cpu_pct', value: 1.5, unit: '%', ...over });

function refusal(text: string, opts?: Parameters<typeof parseCsv>[1]): string {
  try {
    parseCsv(text, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as Error).message;
  }
  throw new Error('parseCsv accepted it');
}

describe('metrics.csv round trip', () => {
  it('reads back fields holding newlines, carriage returns, quotes and commas', () => {
    const odd = [
      row({ step: 'guest said\nhello', entity: 'a\r\nb', unit: '' }),
      row({ variant: 'a,b="c"', metric: 'm.x', entity: '\r', value: -0.25 }),
      row({ step: ' padded ', entity: '"', value: 1e-7 }),
    ];
    expect(parseCsv(toCsv(odd))).toEqual({ rows: odd, warnings: [] });
  });

  it('reads back any text in any field', () => {
    const text = fc.string({ minLength: 1, unit: 'binary' });
    fc.assert(
      fc.property(fc.array(fc.record({ variant: text, repetition: fc.integer({ min: 1, max: 1000 }), step: text, entity: text, metric: text, value: fc.integer(), unit: fc.string({ unit: 'binary' }) })), (rows) => {
        expect(parseCsv(toCsv(rows)).rows).toEqual(rows);
      }),
    );
  });
});

describe('metrics.csv refused', () => {
  it('names the line and the field of a value or a repetition that is not a number', () => {
    const text = `${HEADER}v,1,idle,vcpu0,vcpu.cpu_pct,1.5,%\nv,1,idle,vcpu1,vcpu.cpu_pct,abc,%\nv,x,idle,vcpu0,vcpu.cpu_pct,2,%\n`;
    const msg = refusal(text, { file: 'r/metrics.csv' });
    expect(msg).toContain('r/metrics.csv:3: value: "abc" is not a number');
    expect(msg).toContain('r/metrics.csv:4: repetition: "x" is not a repetition number');
    expect(msg).toMatch(/\nmetrics\.csv is the table `kvmlab run` wrote .*: restore it, or run the experiment again$/);
  });

  it('refuses a short line, an empty line and broken quoting before the end', () => {
    expect(refusal(`${HEADER}v,1,idle,vcpu0\nv,1,idle,vcpu0,m,1,%\n`)).toContain('metrics.csv:2: 4 fields, expected 7');
    expect(refusal(`${HEADER}v,1,idle,vcpu0,m,1,%\n\nv,1,idle,vcpu0,m,1,%\n`)).toContain('metrics.csv:3: an empty line');
    expect(refusal(`${HEADER}v,1,idle,vcpu0,m,1"x,%\nv,1,idle,vcpu0,m,1,%\n`)).toMatch(/^metrics\.csv:2: not valid CSV/);
    expect(refusal(`${HEADER}v,1,,vcpu0,m,1,%\n`)).toContain('metrics.csv:2: step: empty');
  });

  it('refuses another header, an empty file and a variant the run does not have', () => {
    expect(refusal('a,b\n1,2\n')).toContain('metrics.csv:1: not a kvmlab metrics.csv: the header is "a,b"');
    expect(refusal('')).toContain('the file is empty');
    expect(refusal(`${HEADER}w,1,idle,vcpu0,m,1,%\n`, { variants: ['v'] })).toContain('metrics.csv:2: variant: "w" is not a variant of this run');
  });

  it('leaves out only a last line cut short, with a warning', () => {
    const whole = `${HEADER}v,1,idle,vcpu0,m,1,%\n`;
    expect(parseCsv(`${whole}v,1,idle,vcp`)).toEqual({ rows: [row({ metric: 'm', value: 1 })], warnings: ['metrics.csv:3: the last line is cut short (no newline at its end: the run was killed while writing it); it is left out'] });
    expect(parseCsv(`${whole}v,1,"step\nwith a newl`).warnings).toEqual([expect.stringMatching(/^metrics\.csv:3: the last line is cut short/)]);
    // the same line in the middle of the file is refused
    expect(refusal(`${whole}v,1,idle,vcp\n${whole.slice(HEADER.length)}`)).toContain('metrics.csv:3: 4 fields');
  });
});
