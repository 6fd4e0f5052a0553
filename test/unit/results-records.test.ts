// A repetition's records: the writers write them (stepLine, qmpLine, guestLine, VcpuSampleWriter) and
// report/load reads them back (stepRecords, qmpRecords, guestCommands, parseVcpuSamples), each
// through one schema; what is not such a record is left out, never cast.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { guestCommands, guestLine, parseVcpuSamples, qmpLine, qmpRecords, stepLine, stepRecords, VCPU_SAMPLES_HEADER, VcpuSampleWriter, type VcpuSample } from '../../src/results/records.js';

const lines = (text: string) => text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

describe('steps.jsonl records', () => {
  it('read back what was written, and leave out what is not a step record', () => {
    const written = [
      { step: 'idle', kind: 'sample', start: 10, end: 20, ok: true, detail: { cpus: 2 } },
      { step: 'teardown', end: 21, how: 'quit' },
    ];
    expect(stepRecords(lines(written.map(stepLine).join('')))).toEqual(written);
    expect(stepRecords([{ step: 'x' }, { end: 3 }, { step: 'y', end: '4' }, { step: 'z', end: 5, ok: 'yes' }])).toEqual([]);
  });
});

describe('qmp.jsonl and guest.jsonl records', () => {
  it('read back the greeting and the commands; the notes and strangers are left out of the commands', () => {
    const greeting = { t: 1, dir: '<' as const, msg: { QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: '' } } } };
    expect(qmpRecords(lines(qmpLine(greeting) + qmpLine({ t: 2, dir: '!', msg: { closed: 'eof' } })))).toEqual([greeting, { t: 2, dir: '!', msg: { closed: 'eof' } }]);
    expect(qmpRecords([{ t: 1, dir: '?', msg: {} }, { dir: '<', msg: {} }])).toEqual([]);
    const cmd = { t: 3, cmd: 'uname -r', status: 0, stdout: '6.1.0\n', stderr: '', startedAt: 3000, durationMs: 12, timedOut: false };
    const text = guestLine({ t: 2, ready: true, attempts: 3 }) + guestLine(cmd) + guestLine({ ...cmd, status: null, timedOut: true });
    expect(guestCommands(lines(text))).toEqual([cmd, { ...cmd, status: null, timedOut: true }]);
    expect(guestCommands([{ t: 1, cmd: 7 }, { cmd: 'x', status: 0 }])).toEqual([]);
  });
});

describe('vcpu-cpu.csv', () => {
  const sample: VcpuSample = { t: 1796440000.1, entity: 'vcpu0', tid: 4242, runNs: 123456789, waitNs: 1000, slices: 17, guestNs: 100000000, lastCpu: 1 };
  /** The file as the sampler writes it: the header, then each sample's row at its instant. */
  const written = (samples: readonly VcpuSample[]) => {
    const out: Buffer[] = [];
    const w = new VcpuSampleWriter((b) => out.push(b));
    for (const s of samples) {
      w.instant(s.t);
      w.row(s.entity, s.tid, s);
    }
    w.flush();
    return Buffer.concat(out).toString('latin1');
  };
  const rowsOf = (samples: readonly VcpuSample[]) => written(samples).slice(VCPU_SAMPLES_HEADER.length);

  it('reads back what the sampler writes', () => {
    expect(parseVcpuSamples(written([sample, { ...sample, entity: 'emulator', tid: 4243 }]))).toEqual([sample, { ...sample, entity: 'emulator', tid: 4243 }]);
  });

  it('writes each number as String() does, for any sample, and reads it back', () => {
    const int = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
    const row = fc.record({
      t: fc.double({ min: 0, max: 4e9, noNaN: true }),
      entity: fc.oneof(fc.constant('emulator'), fc.nat(4095).map((i) => `vcpu${i}`)),
      tid: fc.integer({ min: 1, max: 2 ** 22 }),
      runNs: int,
      waitNs: int,
      slices: int,
      guestNs: int,
      lastCpu: fc.nat(8191),
    });
    fc.assert(
      fc.property(fc.array(row, { maxLength: 20 }), (samples) => {
        const text = written(samples);
        expect(text).toBe(VCPU_SAMPLES_HEADER + samples.map((s) => `${s.t},${s.entity},${s.tid},${s.runNs},${s.waitNs},${s.slices},${s.guestNs},${s.lastCpu}\n`).join(''));
        expect(parseVcpuSamples(text)).toEqual(samples.map((s) => ({ ...s, t: s.t === 0 ? 0 : s.t })));
      }),
    );
  });

  it('holds more rows than its first buffer between writes', () => {
    const many = Array.from({ length: 2000 }, (_, i) => ({ ...sample, tid: 5000 + i, runNs: 2 ** 52 + i }));
    expect(parseVcpuSamples(written(many))).toEqual(many);
  });

  it('leaves out a row cut short or not numbers, and reads nothing from a file that is not vcpu-cpu.csv', () => {
    const text = `${written([sample])}1,vcpu1,12,abc,0,0,0,0\n2,vcpu1,12,5,0,0,0,1.5\n3,vcpu1,12,5,0\n4,vcpu1,,5,0,0,0,0\n`;
    expect(parseVcpuSamples(text)).toEqual([sample]);
    expect(parseVcpuSamples(`t,x\n${rowsOf([sample])}`)).toEqual([]);
  });
});
