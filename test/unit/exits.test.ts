import { describe, it, expect } from 'vitest';
import {
  CPU_PM_EXITS_MASK,
  EXIT_BITS,
  EXIT_NAMES,
  KNOWN_EXITS_MASK,
  ShimRecordError,
  cpuPmMask,
  formatMask,
  isExitName,
  maskOf,
  missingBits,
  namesOf,
  parseMask,
  parseShimRecord,
  unknownBits,
  type ExitName,
} from '../../src/model/exits.js';
import { parseKvmProbeOutput, allowedDisableExits, kvmUsable } from '../../src/host/kvm-probe.js';

describe('exit bits', () => {
  it('match include/uapi/linux/kvm.h', () => {
    expect(EXIT_BITS).toEqual({ mwait: 1, hlt: 2, pause: 4, cstate: 8, aperfmperf: 16 });
    expect(KNOWN_EXITS_MASK).toBe(0x1f);
    expect(CPU_PM_EXITS_MASK).toBe(0xf);
    expect(EXIT_NAMES).toEqual(['mwait', 'hlt', 'pause', 'cstate', 'aperfmperf']);
  });

  it('maskOf and namesOf round-trip every subset', () => {
    for (let m = 0; m <= 0x1f; m++) {
      expect(maskOf(namesOf(m))).toBe(m);
    }
    expect(maskOf([])).toBe(0);
    expect(maskOf(['hlt'])).toBe(0x2);
    expect(maskOf(['hlt', 'pause'])).toBe(0x6);
    expect(maskOf(['pause', 'hlt', 'hlt'])).toBe(0x6);
    expect(namesOf(0xe)).toEqual(['hlt', 'pause', 'cstate']);
  });

  it('maskOf rejects unknown names', () => {
    expect(() => maskOf(['hlt', 'halt' as ExitName])).toThrow(/unknown exit "halt"/);
  });

  it('isExitName does not accept prototype keys', () => {
    expect(isExitName('hlt')).toBe(true);
    expect(isExitName('toString')).toBe(false);
  });

  it('namesOf leaves unknown bits to unknownBits', () => {
    expect(namesOf(0x22)).toEqual(['hlt']);
    expect(unknownBits(0x22)).toBe(0x20);
    expect(unknownBits(0x1f)).toBe(0);
    expect(() => namesOf(-1)).toThrow(RangeError);
    expect(() => namesOf(1.5)).toThrow(RangeError);
    expect(() => namesOf(2 ** 32)).toThrow(RangeError);
  });

  it('formatMask', () => {
    expect(formatMask(0xe)).toBe('0xe (hlt|pause|cstate)');
    expect(formatMask(0)).toBe('0x0 (none)');
    expect(formatMask(0x1)).toBe('0x1 (mwait)');
    expect(formatMask(0x12)).toBe('0x12 (hlt|aperfmperf)');
    expect(formatMask(0x22)).toBe('0x22 (hlt|0x20)');
  });

  it('parseMask accepts numbers, hex and names', () => {
    expect(parseMask('14')).toBe(14);
    expect(parseMask('0xe')).toBe(14);
    expect(parseMask('0XE')).toBe(14);
    expect(parseMask('hlt|pause')).toBe(6);
    expect(parseMask('HLT, cstate')).toBe(10);
    expect(parseMask('hlt+mwait')).toBe(3);
    expect(parseMask('')).toBe(0);
    expect(parseMask('none')).toBe(0);
    expect(() => parseMask('hlt|halt')).toThrow(/unknown "halt"/);
    expect(() => parseMask('hlt|')).toThrow(/not an exit mask/);
    expect(() => parseMask('-1')).toThrow();
    expect(() => parseMask('0x1ffffffff')).toThrow(RangeError);
  });

  it('missingBits is requested minus allowed', () => {
    expect(missingBits(0x6, 0xe)).toBe(0);
    expect(missingBits(0x3, 0xe)).toBe(0x1);
    expect(missingBits(0x1f, 0xe)).toBe(0x11);
    expect(missingBits(0, 0)).toBe(0);
    expect(missingBits(0x8000_0000, 0)).toBe(0x8000_0000);
  });

  it('cpuPmMask is what cpu-pm=on asks: allowed ∩ MWAIT|HLT|PAUSE|CSTATE', () => {
    expect(cpuPmMask(0xe)).toBe(0xe);
    expect(cpuPmMask(0x1f)).toBe(0xf);
    expect(cpuPmMask(0x14)).toBe(0x4);
    expect(cpuPmMask(0)).toBe(0);
  });
});

describe('parseShimRecord', () => {
  const good = [
    '{"event":"disable_exits","pid":8155,"vm_fd":9,"requested":14,"applied":6,"ret":0,"errno":0}',
    '{"event":"halt_poll","pid":8155,"vm_fd":9,"ns":50000,"ret":0,"errno":0}',
    '{"event":"disable_exits_not_requested","pid":8155,"vm_fd":6,"wanted":2}',
    '{"event":"config_error","pid":8116,"variable":"KVMLAB_DISABLE_EXITS","reason":"not a decimal or 0x-hex 32-bit mask"}',
    '{"event":"disable_exits","pid":8134,"vm_fd":4,"requested":14,"applied":1,"ret":-1,"errno":22}',
  ];

  it('parses every record kind, typed by event', () => {
    const recs = parseShimRecord(good.join('\n') + '\n');
    expect(recs.map((r) => r.event)).toEqual([
      'disable_exits',
      'halt_poll',
      'disable_exits_not_requested',
      'config_error',
      'disable_exits',
    ]);
    const first = recs[0]!;
    if (first.event !== 'disable_exits') throw new Error('narrowing');
    expect(first.requested).toBe(14);
    expect(first.applied).toBe(6);
    const last = recs[4]!;
    expect(last).toMatchObject({ ret: -1, errno: 22, applied: 1 });
  });

  it('accepts an empty file and blank lines', () => {
    expect(parseShimRecord('')).toEqual([]);
    expect(parseShimRecord('\n\n' + good[1] + '\n\n')).toHaveLength(1);
  });

  it('rejects malformed lines with the line number', () => {
    const text = `${good[0]}\n{"event":"disable_exits","pid":1,"vm_fd":3}\n`;
    let err: unknown;
    try {
      parseShimRecord(text, { source: 'rec.jsonl' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShimRecordError);
    const e = err as ShimRecordError;
    expect(e.line).toBe(2);
    expect(e.message).toMatch(/^rec\.jsonl:2: not a shim record/);
    expect(e.message).toMatch(/requested/);
  });

  it('rejects non-JSON, unknown events, wrong types and out-of-range values', () => {
    expect(() => parseShimRecord('not json\n')).toThrow(/:1: not JSON/);
    expect(() => parseShimRecord('{"event":"mystery","pid":1}\n')).toThrow(ShimRecordError);
    expect(() => parseShimRecord('[1,2]\n')).toThrow(ShimRecordError);
    expect(() =>
      parseShimRecord('{"event":"disable_exits","pid":1,"vm_fd":3,"requested":"14","applied":6,"ret":0,"errno":0}'),
    ).toThrow(/requested/);
    expect(() =>
      parseShimRecord('{"event":"disable_exits","pid":1,"vm_fd":3,"requested":14,"applied":-6,"ret":0,"errno":0}'),
    ).toThrow(/applied/);
    expect(() =>
      parseShimRecord('{"event":"halt_poll","pid":1,"vm_fd":3,"ns":1.5,"ret":0,"errno":0}'),
    ).toThrow(/ns/);
  });

  it('tolerates a partial last line only when asked', () => {
    const text = `${good[0]}\n{"event":"halt_poll","pid":81`;
    expect(() => parseShimRecord(text)).toThrow(/:2: not JSON/);
    expect(parseShimRecord(text, { allowPartialTail: true })).toHaveLength(1);
    // A bad line that is followed by a newline is complete, so it still fails.
    expect(() => parseShimRecord(`garbage\n${good[0]}`, { allowPartialTail: true })).toThrow(/:1:/);
  });
});

describe('parseKvmProbeOutput', () => {
  const seenHere = {
    probe_version: 1,
    host: { sysname: 'Linux', release: '6.18.44-fc-v595', machine: 'x86_64' },
    kvm_params: { halt_poll_ns: 200000, mitigate_smt_rsb: false },
    cpuid_leaf5: { eax: 64, ebx: 64, ecx: 3, edx: 0x2020 },
    dev_kvm: { ok: true },
    api_version: 12,
    vm: { ok: true, type: 0 },
    caps: {
      x86_disable_exits: { vm: 14, system: 14 },
      halt_poll: 1,
      irqchip: 1,
      binary_stats_fd: 1,
      nr_vcpus: 2,
      max_vcpus: 1024,
    },
    enable_disable_exits: { mask: 14, ret: 0, errno: 0 },
    enable_disable_exits_unsupported: { mask: 17, ret: -1, errno: 22, error: 'Invalid argument' },
    vcpu: { ok: true },
    enable_disable_exits_after_vcpu: { mask: 14, ret: -1, errno: 22, error: 'Invalid argument' },
  };
  const noKvm = {
    probe_version: 1,
    host: { sysname: 'Linux', release: '6.1.0-25-amd64', machine: 'x86_64' },
    kvm_params: { halt_poll_ns: null, mitigate_smt_rsb: null },
    cpuid_leaf5: null,
    dev_kvm: { ok: false, errno: 2, error: 'No such file or directory' },
    api_version: null,
    vm: null,
    caps: null,
    enable_disable_exits: null,
    enable_disable_exits_unsupported: null,
    vcpu: null,
    enable_disable_exits_after_vcpu: null,
  };

  it('parses a working host', () => {
    const p = parseKvmProbeOutput(JSON.stringify(seenHere));
    expect(allowedDisableExits(p)).toBe(0xe);
    expect(kvmUsable(p)).toBe(true);
  });

  it('parses a host without /dev/kvm', () => {
    const p = parseKvmProbeOutput(JSON.stringify(noKvm) + '\n');
    expect(allowedDisableExits(p)).toBeNull();
    expect(kvmUsable(p)).toBe(false);
  });

  it('rejects other shapes with the offending path', () => {
    expect(() => parseKvmProbeOutput('nope')).toThrow(/not JSON/);
    expect(() => parseKvmProbeOutput(JSON.stringify({ ...seenHere, api_version: '12' }))).toThrow(/api_version/);
  });
});
