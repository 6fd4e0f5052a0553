import fs from 'node:fs';
import fc from 'fast-check';
import { describe, it, expect } from 'vitest';
import { formatCpuList, parseCpuList } from '../../src/model/cpulist.js';
import {
  parseInterrupts,
  parseProcStat,
  parseSchedstat,
  parseTaskStat,
  parseTaskStatCpu,
  parseTaskStatus,
  ProcParseError,
} from '../../src/formats/procfs.js';

// Fixtures are verbatim copies from the build host; see test/fixtures/procfs/SOURCE.md.
const fixture = (name: string): string => fs.readFileSync(new URL(`../fixtures/procfs/${name}`, import.meta.url), 'utf8');
/** A file's bytes as the sampler reads them, for the parsers that take bytes. */
const bytes = (text: string): Uint8Array => Buffer.from(text);

describe('parseSchedstat', () => {
  it('reads the vCPU thread of a paused QEMU', () => {
    expect(parseSchedstat(bytes(fixture('qemu-vcpu0.task-schedstat')))).toEqual({ runNs: 1342449, waitNs: 0, timeslices: 6 });
  });
  it('reads a node main thread', () => {
    expect(parseSchedstat(bytes(fixture('node-6909.task-schedstat')))).toEqual({ runNs: 124475374, waitNs: 186046, timeslices: 8 });
  });
  it('rejects malformed input', () => {
    expect(() => parseSchedstat(bytes(''))).toThrow(ProcParseError);
    expect(() => parseSchedstat(bytes('1 2'))).toThrow(/expected 3 numbers, got 2/);
    expect(() => parseSchedstat(bytes('1 2 3 4'))).toThrow(/expected 3 numbers/);
    expect(() => parseSchedstat(bytes('1 x 3'))).toThrow(/wait time is not an integer/);
    expect(() => parseSchedstat(bytes('99999999999999999999 0 1'))).toThrow(/exact integer range/);
    expect(() => parseSchedstat(bytes('1 -2 3'))).not.toThrow(); // int()'s rules, sign included
    expect(() => parseSchedstat(bytes('1 2\u00a0 3'))).toThrow(/wait time is not an integer: "2\u00a0"/);
  });
  it('reads only the bytes it is given (the buffer beyond holds an earlier, longer read)', () => {
    const b = Buffer.from('7 8 9\n10 11 12\n');
    expect(parseSchedstat(b, 6)).toEqual({ runNs: 7, waitNs: 8, timeslices: 9 });
  });
});

describe('parseTaskStat', () => {
  it('keeps a comm with a space and a slash (QEMU vCPU thread)', () => {
    const s = parseTaskStat(fixture('qemu-vcpu0.task-stat'));
    expect(s.pid).toBe(6817);
    expect(s.comm).toBe('CPU 0/KVM');
    expect(s.state).toBe('S');
    expect(s.ppid).toBe(1);
    expect(s.numThreads).toBe(4);
    expect(s.utimeTicks).toBe(0);
    expect(s.stimeTicks).toBe(0);
    expect(s.processor).toBe(1);
    expect(s.guestTimeTicks).toBe(0);
    expect(s.startTimeTicks).toBe(15289);
    expect(s.vsizeBytes).toBe(432586752);
    expect(s.fields[24]).toBe('18446744073709551615'); // rsslim, field 25, kept as text
    expect(s.fields).toHaveLength(52);
  });
  it('splits on the LAST ")" when the comm contains parentheses and spaces', () => {
    const s = parseTaskStat(fixture('weird-comm.task-stat'));
    expect(s.comm).toBe('a) (b c)');
    expect(s.pid).toBe(6971);
    expect(s.state).toBe('S');
    expect(s.ppid).toBe(6969);
    expect(s.numThreads).toBe(1);
    expect(s.minflt).toBe(180);
  });
  it('reads utime/stime and thread count of a node process', () => {
    const s = parseTaskStat(fixture('node-6909.task-stat'));
    expect(s).toMatchObject({ pid: 6909, comm: 'node', utimeTicks: 10, stimeTicks: 1, numThreads: 7, processor: 0, policy: 0 });
  });
  it('rejects malformed input', () => {
    expect(() => parseTaskStat('')).toThrow(/no "\(comm\)" field/);
    expect(() => parseTaskStat('12 (x) S 1 2 3')).toThrow(/at least 44 fields, got 6/);
    const good = fixture('qemu-vcpu0.task-stat');
    expect(() => parseTaskStat(good.replace(') S ', ') SS '))).toThrow(/state \(field 3\)/);
    expect(() => parseTaskStat(good.replace('6817 (', 'abc ('))).toThrow(/pid \(field 1\)/);
    expect(() => parseTaskStat(good.replace(' 4 0 15289 ', ' four 0 15289 '))).toThrow(/num_threads \(field 20\)/);
  });
});

describe('parseTaskStatCpu (the sampler\'s read)', () => {
  const stats = fs.readdirSync(new URL('../fixtures/procfs/', import.meta.url)).filter((f) => f.endsWith('.task-stat'));
  it.each(stats)('reads what parseTaskStat reads of %s', (name) => {
    const full = parseTaskStat(fixture(name));
    expect(parseTaskStatCpu(bytes(fixture(name)))).toEqual({ processor: full.processor, guestTimeTicks: full.guestTimeTicks });
  });
  it('agrees with parseTaskStat on any comm and field values', () => {
    const comm = fc.string({ unit: 'binary', maxLength: 15 }).filter((c) => !c.includes('\n'));
    const num = fc.integer({ min: 0, max: 2 ** 40 });
    fc.assert(
      fc.property(comm, fc.array(num, { minLength: 49, maxLength: 49 }), (c, nums) => {
        const text = `42 (${c}) S ${nums.join(' ')}\n`;
        const full = parseTaskStat(text);
        expect(parseTaskStatCpu(bytes(text))).toEqual({ processor: full.processor, guestTimeTicks: full.guestTimeTicks });
      }),
    );
  });
  it('reads only the bytes it is given (the buffer beyond holds an earlier, longer read)', () => {
    const text = fixture('qemu-vcpu0.task-stat');
    const b = Buffer.from(`${text}(x) ${'5 '.repeat(60)}`);
    const full = parseTaskStat(text);
    expect(parseTaskStatCpu(b, Buffer.byteLength(text))).toEqual({ processor: full.processor, guestTimeTicks: full.guestTimeTicks });
    expect(() => parseTaskStatCpu(b, 0)).toThrow(/no "\(comm\)" field/);
    expect(() => parseTaskStatCpu(b, text.indexOf(')') + 20)).toThrow(/at least 44 fields/);
  });
  it('rejects what parseTaskStat rejects in its fields', () => {
    const good = fixture('qemu-vcpu0.task-stat');
    expect(() => parseTaskStatCpu(bytes(''))).toThrow(/no "\(comm\)" field/);
    expect(() => parseTaskStatCpu(bytes('12 (x) S 1 2 3'))).toThrow(/at least 44 fields, got 6/);
    const f = good.slice(good.lastIndexOf(')') + 2).split(' ');
    f[39 - 3] = 'x';
    expect(() => parseTaskStatCpu(bytes(`${good.slice(0, good.lastIndexOf(')') + 2)}${f.join(' ')}`))).toThrow(/processor \(field 39\)/);
    f[39 - 3] = '1';
    f[43 - 3] = '-';
    expect(() => parseTaskStatCpu(bytes(`${good.slice(0, good.lastIndexOf(')') + 2)}${f.join(' ')}`))).toThrow(/guest_time \(field 43\)/);
  });
});

describe('parseTaskStatus', () => {
  it('reads a QEMU vCPU thread', () => {
    const s = parseTaskStatus(fixture('qemu-vcpu0.task-status'));
    expect(s).toMatchObject({
      name: 'CPU 0/KVM',
      state: 'S',
      tgid: 6815,
      pid: 6817,
      ppid: 1,
      threads: 4,
      cpusAllowedList: [0, 1],
      voluntaryCtxtSwitches: 6,
      nonvoluntaryCtxtSwitches: 0,
    });
    expect(s.raw['Cpus_allowed']).toBe('3');
  });
  it('reads a thread pinned with taskset', () => {
    const s = parseTaskStatus(fixture('node-6912.task-status'));
    expect(s).toMatchObject({ name: 'node', tgid: 6909, pid: 6912, cpusAllowedList: [1], voluntaryCtxtSwitches: 3, nonvoluntaryCtxtSwitches: 1 });
  });
  it('keeps a name with parentheses', () => {
    expect(parseTaskStatus(fixture('weird-comm.task-status')).name).toBe('a) (b c)');
  });
  it('undoes the kernel escapes in Name and keeps trailing spaces', () => {
    const text = fixture('qemu-main.task-status').replace('Name:\tqemu-system-x86', 'Name:\ta\\nb\\\\c ');
    expect(parseTaskStatus(text).name).toBe('a\nb\\c ');
  });
  it('rejects malformed input', () => {
    const good = fixture('qemu-vcpu0.task-status');
    expect(() => parseTaskStatus(good.replace(/^Tgid:.*\n/m, ''))).toThrow(/no "Tgid:" line/);
    expect(() => parseTaskStatus(good.replace('Cpus_allowed_list:\t0-1', 'Cpus_allowed_list:\t1-0'))).toThrow(/Cpus_allowed_list: .*runs backwards/);
    expect(() => parseTaskStatus(good.replace('voluntary_ctxt_switches:\t6', 'voluntary_ctxt_switches:\tsix'))).toThrow(/voluntary_ctxt_switches is not an integer/);
    expect(() => parseTaskStatus('garbage line\n')).toThrow(/line without "Key:"/);
  });
});

describe('parseCpuList / formatCpuList', () => {
  it('expands ranges and singles, sorted and distinct', () => {
    expect(parseCpuList('0-3,8,10-11')).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(parseCpuList('0-1\n')).toEqual([0, 1]);
    expect(parseCpuList('5,1,1-2')).toEqual([1, 2, 5]);
    expect(parseCpuList('')).toEqual([]);
    expect(parseCpuList('7')).toEqual([7]);
  });
  it('formats canonically (runs of two as a-b, like the kernel)', () => {
    expect(formatCpuList([0, 1, 2, 3, 8, 10, 11])).toBe('0-3,8,10-11');
    expect(formatCpuList([1, 0])).toBe('0-1');
    expect(formatCpuList([3, 3, 5])).toBe('3,5');
    expect(formatCpuList([])).toBe('');
  });
  it('round-trips', () => {
    for (const s of ['0', '0-1', '0-3,8,10-11', '1,3,5-7,64-127']) expect(formatCpuList(parseCpuList(s))).toBe(s);
  });
  it('rejects malformed lists and CPU numbers', () => {
    for (const bad of ['1-', '-1', '3-1', 'a', ',', '1,,2', '1-2-3', '0-7:2/4', ' 1 , 2', '+1', '1.5', '0-99999999']) {
      expect(() => parseCpuList(bad), bad).toThrow(/invalid CPU list/);
    }
    expect(() => formatCpuList([-1])).toThrow(/invalid CPU number -1/);
    expect(() => formatCpuList([1.5])).toThrow(/invalid CPU number/);
    expect(() => formatCpuList([Number.NaN])).toThrow(/invalid CPU number/);
  });
});

describe('parseInterrupts', () => {
  const irqs = parseInterrupts(fixture('interrupts'));
  const row = (irq: string) => irqs.rows.find((r) => r.irq === irq);
  it('reads the CPU columns from the header', () => {
    expect(irqs.cpus).toEqual([0, 1]);
    expect(irqs.rows).toHaveLength(35);
  });
  it('reads numbered device rows with their description', () => {
    expect(row('24')).toEqual({ irq: '24', counts: [1, 0], description: 'IO-APIC   5-edge      ACPI:Ged' });
    expect(row('36')).toEqual({ irq: '36', counts: [0, 51589], description: 'PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0' });
  });
  it('reads named per-CPU rows, including the posted-interrupt ones', () => {
    expect(row('LOC')?.description).toBe('Local timer interrupts');
    expect(row('LOC')?.counts).toHaveLength(2);
    expect(row('PIN')).toEqual({ irq: 'PIN', counts: [0, 0], description: 'Posted-interrupt notification event' });
    expect(row('NPI')?.description).toBe('Nested posted-interrupt event');
    expect(row('PIW')).toEqual({ irq: 'PIW', counts: [0, 0], description: 'Posted-interrupt wakeup event' });
  });
  it('keeps single-count rows (ERR, MIS) short', () => {
    expect(row('ERR')).toEqual({ irq: 'ERR', counts: [0], description: '' });
    expect(row('MIS')).toEqual({ irq: 'MIS', counts: [0], description: '' });
  });
  it('handles more CPUs than count columns and descriptions starting with digits', () => {
    const text = '       CPU0  CPU1  CPU2\n  0:  1  2  3  2-edge  timer\nERR:  7\n';
    expect(parseInterrupts(text).rows).toEqual([
      { irq: '0', counts: [1, 2, 3], description: '2-edge  timer' },
      { irq: 'ERR', counts: [7], description: '' },
    ]);
  });
  it('rejects malformed input', () => {
    expect(() => parseInterrupts('')).toThrow(/empty input/);
    expect(() => parseInterrupts('CPU0 CPUx\n')).toThrow(/header token "CPUx"/);
    expect(() => parseInterrupts('CPU0\n 24 1 IO-APIC\n')).toThrow(/no "IRQ:" label/);
    expect(() => parseInterrupts('CPU0\nLOC: timer\n')).toThrow(/row LOC has no counts/);
  });
});

describe('parseProcStat', () => {
  it('reads the aggregate and per-CPU lines', () => {
    const rows = parseProcStat(fixture('stat'));
    expect(rows.map((r) => r.cpu)).toEqual(['all', 0, 1]);
    expect(rows[0]).toEqual({ cpu: 'all', user: 5294, nice: 0, system: 2474, idle: 24896, iowait: 307, irq: 0, softirq: 67, steal: 11, guest: 0, guestNice: 0 });
    expect(rows[2]).toMatchObject({ cpu: 1, user: 3043, system: 1461, idle: 11751, steal: 7 });
  });
  it('fills columns older kernels omit with 0', () => {
    expect(parseProcStat('cpu0 1 2 3 4\n')[0]).toMatchObject({ cpu: 0, user: 1, idle: 4, iowait: 0, steal: 0, guestNice: 0 });
  });
  it('rejects malformed input', () => {
    expect(() => parseProcStat('intr 1 2\n')).toThrow(/no "cpu" lines/);
    expect(() => parseProcStat('cpu 1 2 3\n')).toThrow(/expected at least 4/);
    expect(() => parseProcStat('cpu 1 2 3 4 5 6 7 8 9 10 11\n')).toThrow(/at most 10/);
    expect(() => parseProcStat('cpuX 1 2 3 4\n')).toThrow(/unknown label "cpuX"/);
    expect(() => parseProcStat('cpu 1 2 x 4\n')).toThrow(/cpu system is not an integer/);
  });
});
