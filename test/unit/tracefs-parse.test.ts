import fs from 'node:fs';
import { Readable } from 'node:stream';
import { describe, it, expect } from 'vitest';
import { countTraceEvents, forEachLine, forEachLineWith, LineSplitter, parseTraceText, scanMarkers } from '../../src/formats/tracefs/trace-stream.js';
import { parsePerCpuStats } from '../../src/formats/tracefs/per-cpu-stats.js';
import { parseEventFields } from '../../src/formats/tracefs/event-fields.js';
import { MARKER_EVENT, parseLostEventsLine, parseTraceLine, type TraceLine } from '../../src/formats/tracefs/trace-line.js';
import { parseEventFormat, type EventFormat } from '../../src/formats/tracefs/event-format.js';
import { TraceParseError } from '../../src/formats/tracefs/errors.js';

// Captured on the build host (kernel 6.18.44, nested kvm_pvm); see test/fixtures/tracefs/SOURCE.md.
const fixture = (name: string): string => fs.readFileSync(new URL(`../fixtures/tracefs/${name}`, import.meta.url), 'utf8');
const format = (sysEvent: string): EventFormat => parseEventFormat(fixture(`format/${sysEvent}.format`));

const formatNames = fs.readdirSync(new URL('../fixtures/tracefs/format/', import.meta.url));
const formatsByEvent = new Map(formatNames.map((f) => {
  const fmt = parseEventFormat(fixture(`format/${f}`));
  return [fmt.name, fmt] as const;
}));

const events = (name: string): TraceLine[] => [...parseTraceText(fixture(name))];

describe('parseEventFormat', () => {
  it('reads kvm_exit on this kernel (vcpu_id, isa, info1/info2, requests)', () => {
    const f = format('kvm.kvm_exit');
    expect(f.name).toBe('kvm_exit');
    expect(f.id).toBe(103);
    expect(f.fields.map((x) => x.name)).toEqual([
      'common_type', 'common_flags', 'common_preempt_count', 'common_pid',
      'exit_reason', 'guest_rip', 'isa', 'info1', 'info2', 'intr_info', 'error_code', 'vcpu_id', 'requests',
    ]);
    expect(f.fields.filter((x) => x.common).map((x) => x.name)).toEqual(['common_type', 'common_flags', 'common_preempt_count', 'common_pid']);
    expect(f.fields.find((x) => x.name === 'guest_rip')).toEqual({ name: 'guest_rip', type: 'unsigned long', offset: 16, size: 8, signed: false, common: false });
    expect(f.fields.find((x) => x.name === 'common_pid')).toMatchObject({ type: 'int', offset: 4, size: 4, signed: true, common: true });
    expect(f.printFmt.startsWith('"vcpu %u reason %s%s%s rip 0x%lx info1 0x%016llx')).toBe(true);
    expect(f.printFmtTemplate).toBe('vcpu %u reason %s%s%s rip 0x%lx info1 0x%016llx info2 0x%016llx intr_info 0x%08x error_code 0x%08x requests 0x%016llx');
    expect(f.printArgs).toHaveLength(10);
    expect(f.printArgs[0]).toBe('REC->vcpu_id');
    expect(f.printArgs[1]).toMatch(/^\(REC->isa == 1\) \? __print_symbolic\(REC->exit_reason & 0xffff, \{ 0, "EXCEPTION_NMI" \}/);
    expect(f.printArgs[9]).toBe('REC->requests');
  });
  it('flags fixed and flexible arrays', () => {
    const sw = format('sched.sched_switch');
    expect(sw.id).toBe(372);
    expect(sw.fields.find((x) => x.name === 'prev_comm')).toEqual({ name: 'prev_comm', type: 'char', offset: 8, size: 16, signed: false, common: false, isArray: true, arrayLength: 16 });
    expect(sw.fields.find((x) => x.name === 'prev_state')).toMatchObject({ type: 'long', size: 8, signed: true });
    const print = format('ftrace.print');
    expect(print.fields.find((x) => x.name === 'buf')).toEqual({ name: 'buf', type: 'char', offset: 16, size: 0, signed: false, common: false, isArray: true });
    expect(print.printFmtTemplate).toBe('%ps: %s');
  });
  it('reads pointer types and dynamic arrays', () => {
    expect(format('rcu.rcu_utilization').fields.find((x) => x.name === 's')).toMatchObject({ type: 'const char *', size: 8 });
    const dyn = parseEventFormat('name: x\nID: 9\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\tfield:__data_loc char[] name;\toffset:8;\tsize:4;\tsigned:1;\n\nprint fmt: "%s", __get_str(name)\n');
    expect(dyn.fields[1]).toEqual({ name: 'name', type: '__data_loc char[]', offset: 8, size: 4, signed: true, common: false, isArray: true, isDynamic: true });
    expect(parseEventFields('hello world', dyn)).toEqual({ name: 'hello world' });
  });
  it('joins adjacent literals and decodes escapes in print fmt', () => {
    const f = parseEventFormat('name: y\nID: 1\nformat:\n\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;\n\nprint fmt: "a=%d" " \\"q\\"", REC->a\n');
    expect(f.printFmtTemplate).toBe('a=%d "q"');
    expect(f.printArgs).toEqual(['REC->a']);
  });
  it('reads every captured format file', () => {
    expect(formatsByEvent.size).toBe(formatNames.length);
    expect(formatsByEvent.get('kvm_vcpu_wakeup')?.printFmtTemplate).toBe('%s time %lld ns, polling %s');
  });
  it('rejects malformed input', () => {
    expect(() => parseEventFormat('')).toThrow(/no "name:" line/);
    expect(() => parseEventFormat('name: a\nformat:\nprint fmt: "x"\n')).toThrow(/no "ID:" line/);
    expect(() => parseEventFormat('name: a\nID: 1\nformat:\n')).toThrow(/no "print fmt:" line/);
    expect(() => parseEventFormat('name: a\nID: x\n')).toThrow(/ID is not a number/);
    expect(() => parseEventFormat('name: a\nID: 1\nformat:\n\tfield:int a;\toffset:x;\tsize:4;\n')).toThrow(TraceParseError);
    expect(() => parseEventFormat('name: a\nID: 1\nformat:\nprint fmt: x, REC->a\n')).toThrow(/does not start with a string literal/);
    expect(() => parseEventFormat('name: a\nID: 1\nformat:\nprint fmt: "abc\n')).toThrow(/unterminated/);
    expect(() => parseEventFormat('name: a\nID: 1\nbogus\n')).toThrow(/unexpected line/);
  });
});

describe('parseTraceLine', () => {
  it('returns null for header, comment, blank and LOST lines', () => {
    expect(parseTraceLine('# tracer: nop')).toBeNull();
    expect(parseTraceLine('#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION')).toBeNull();
    expect(parseTraceLine('')).toBeNull();
    expect(parseTraceLine('   ')).toBeNull();
    expect(parseTraceLine('CPU:1 [LOST 887470 EVENTS]')).toBeNull();
    expect(parseLostEventsLine('CPU:1 [LOST 887470 EVENTS]')).toEqual({ cpu: 1, lost: 887470 });
    expect(parseLostEventsLine('CPU:1 [LOST many EVENTS]')).toBeNull();
  });
  it('splits a comm with a space and a slash (QEMU vCPU thread)', () => {
    expect(parseTraceLine('       CPU 0/KVM-7052    [001] d..2.   171.489607: sched_switch: prev_comm=CPU 0/KVM prev_pid=7052 prev_prio=120 prev_state=S ==> next_comm=CPU 1/KVM next_pid=7053 next_prio=120')).toEqual({
      comm: 'CPU 0/KVM',
      pid: 7052,
      cpu: 1,
      flags: 'd..2.',
      timestamp: 171.489607,
      event: 'sched_switch',
      body: 'prev_comm=CPU 0/KVM prev_pid=7052 prev_prio=120 prev_state=S ==> next_comm=CPU 1/KVM next_pid=7053 next_prio=120',
    });
  });
  it('splits a comm with a dash filling the column', () => {
    expect(parseTraceLine('qemu-system-x86-7046    [001] d..2.   171.490337: sched_switch: prev_comm=qemu-system-x86 prev_pid=7046')).toMatchObject({ comm: 'qemu-system-x86', pid: 7046, cpu: 1 });
    expect(parseTraceLine('          <idle>-0       [001] d.h1.   171.429022: rcu_utilization: Start scheduler-tick')).toMatchObject({ comm: '<idle>', pid: 0, event: 'rcu_utilization', body: 'Start scheduler-tick' });
  });
  it('reads the record-tgid column, including "(-------)"', () => {
    expect(parseTraceLine('       CPU 1/KVM-7147    (   7144) [000] .....   178.725424: kvm_emulate_insn: 10000:0:ea 6c d0 00 f0 (real)')).toEqual({
      comm: 'CPU 1/KVM', pid: 7147, tgid: 7144, cpu: 0, flags: '.....', timestamp: 178.725424, event: 'kvm_emulate_insn', body: '10000:0:ea 6c d0 00 f0 (real)',
    });
    const noTgid = parseTraceLine('          <idle>-0       (-------) [000] d..2.   178.723784: sched_switch: prev_comm=swapper/0');
    expect(noTgid).toMatchObject({ comm: '<idle>', pid: 0, cpu: 0, event: 'sched_switch' });
    expect(noTgid).not.toHaveProperty('tgid');
  });
  it('reads trace_marker lines', () => {
    expect(parseTraceLine('            bash-7043    [000] ...1.   174.493176: tracing_mark_write: kvmlab-capture: qemu running 3s')).toEqual({
      comm: 'bash', pid: 7043, cpu: 0, flags: '...1.', timestamp: 174.493176, event: MARKER_EVENT, body: 'kvmlab-capture: qemu running 3s',
    });
  });
  it('works without the irq-info column, with counter clocks and with awkward comms', () => {
    expect(parseTraceLine('            bash-7043    [000]   171.425427: sched_wakeup: comm=x pid=1')).toMatchObject({ comm: 'bash', cpu: 0, timestamp: 171.425427, event: 'sched_wakeup' });
    expect(parseTraceLine('bash-1 [003] ..... 123456789: sched_wakeup: x')).toMatchObject({ cpu: 3, timestamp: 123456789 });
    expect(parseTraceLine('  a [001] b-99 [002] .... 1.5: ev: body')).toMatchObject({ comm: 'a [001] b', pid: 99, cpu: 2, event: 'ev' });
    expect(parseTraceLine('  x (1) -5 [000] 1.000001: ev: ')).toMatchObject({ comm: 'x (1) ', pid: 5, event: 'ev', body: '' });
    expect(parseTraceLine('bash-1 [000] ..... 2.000000: do_sys_open <-x')).toMatchObject({ event: '', body: 'do_sys_open <-x' });
  });
  it('throws on lines that are not trace lines', () => {
    for (const bad of ['hello world', 'bash-1 [000] ..... notatime: ev: x', 'bash-1 [000] ..... 1.2.3: ev: x', 'bash [000] 1.0: ev: x', 'bash-12 [0x0] 1.0: ev: x', 'bash-1 [000]']) {
      expect(() => parseTraceLine(bad), bad).toThrow(TraceParseError);
    }
  });
  it('parses every line of the captured traces', () => {
    const a = events('trace-sched-kvm-marker.txt');
    expect(a).toHaveLength(312);
    expect(a.every((e) => e.flags !== undefined && e.tgid === undefined)).toBe(true);
    expect(a[0]).toMatchObject({ event: MARKER_EVENT, body: 'kvmlab-capture: qemu start', timestamp: 171.425427 });
    expect(a.filter((e) => e.comm === 'CPU 1/KVM')).toHaveLength(15);
    const b = events('trace-record-tgid.txt');
    expect(b).toHaveLength(139);
    expect(b.filter((e) => e.tgid === 7144).length).toBeGreaterThan(100);
  });
});

describe('parseEventFields with the captured formats', () => {
  const fieldsOf = (line: string) => {
    const ev = parseTraceLine(line)!;
    return parseEventFields(ev.body, formatsByEvent.get(ev.event));
  };
  it('sched_switch: comms with spaces, prev_state letters', () => {
    expect(fieldsOf('       CPU 0/KVM-7052    [001] d..2.   171.489607: sched_switch: prev_comm=CPU 0/KVM prev_pid=7052 prev_prio=120 prev_state=S ==> next_comm=CPU 1/KVM next_pid=7053 next_prio=120')).toEqual({
      prev_comm: 'CPU 0/KVM', prev_pid: 7052, prev_prio: 120, prev_state: 'S', next_comm: 'CPU 1/KVM', next_pid: 7053, next_prio: 120,
    });
    expect(parseEventFields('prev_comm=a prev_pid=1 prev_prio=120 prev_state=R+ ==> next_comm=b next_pid=2 next_prio=120', formatsByEvent.get('sched_switch'))).toMatchObject({ prev_state: 'R+' });
  });
  it('sched_wakeup: zero-padded target_cpu', () => {
    expect(fieldsOf('          <idle>-0       [000] dNh2.   178.725240: sched_wakeup: comm=CPU 1/KVM pid=7147 prio=120 target_cpu=000')).toEqual({ comm: 'CPU 1/KVM', pid: 7147, prio: 120, target_cpu: 0 });
  });
  it('softirq_raise and rcu_utilization', () => {
    expect(parseEventFields('vec=9 [action=RCU]', formatsByEvent.get('softirq_raise'))).toEqual({ vec: 9, action: 'RCU' });
    expect(parseEventFields('Start scheduler-tick', formatsByEvent.get('rcu_utilization'))).toEqual({ s: 'Start scheduler-tick' });
  });
  it('kvm_vcpu_wakeup and kvm_userspace_exit ("key value" style)', () => {
    expect(parseEventFields('wait time 2140763161 ns, polling valid', formatsByEvent.get('kvm_vcpu_wakeup'))).toEqual({ waited: 'wait', time: 2140763161, ns: 2140763161, polling: 'valid', valid: 'valid' });
    expect(parseEventFields('reason KVM_EXIT_IO (2)', formatsByEvent.get('kvm_userspace_exit'))).toEqual({ reason: 'KVM_EXIT_IO', arg1: 2 });
    expect(parseEventFields('reason restart (4)', formatsByEvent.get('kvm_userspace_exit'))).toEqual({ reason: 'restart', arg1: 4 });
  });
  it('kvm_exit as this kernel prints it (tracepoint did not fire here: bodies follow its print fmt)', () => {
    const f = formatsByEvent.get('kvm_exit');
    expect(parseEventFields('vcpu 1 reason HLT rip 0xffffffff81e3c7ee info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000 requests 0x0000000000000000', f)).toEqual({
      vcpu: 1, vcpu_id: 1, reason: 'HLT', rip: '0xffffffff81e3c7ee', guest_rip: '0xffffffff81e3c7ee',
      info1: '0x0000000000000000', info2: '0x0000000000000000', intr_info: '0x00000000', error_code: '0x00000000', requests: '0x0000000000000000',
    });
    expect(parseEventFields('vcpu 0 reason hlt rip 0xfff0 info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000 requests 0x0000000000000000', f)).toMatchObject({ reason: 'hlt', vcpu_id: 0 });
    expect(parseEventFields('vcpu 0 reason EPT_VIOLATION FAILED_VMENTRY rip 0xfff0 info1 0x0000000000000184 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000 requests 0x0000000000000000', f)).toMatchObject({ reason: 'EPT_VIOLATION FAILED_VMENTRY', info1: '0x0000000000000184' });
  });
  it('kvm_exit as older kernels print it falls back to pairs, keyed by the format\'s field names', () => {
    expect(parseEventFields('reason EXTERNAL_INTERRUPT rip 0xffffffff8102d3f6 info 0 0', formatsByEvent.get('kvm_exit'))).toEqual({ reason: 'EXTERNAL_INTERRUPT', rip: '0xffffffff8102d3f6', info: 0 });
  });
  it('kvm_entry: comma after vcpu, optional [immediate exit] glued to error_code', () => {
    const f = formatsByEvent.get('kvm_entry');
    expect(parseEventFields('vcpu 0, rip 0xfff0 intr_info 0x00000000 error_code 0x00000000', f)).toEqual({ vcpu: 0, vcpu_id: 0, rip: '0xfff0', intr_info: '0x00000000', error_code: '0x00000000', immediate_exit: '' });
    expect(parseEventFields('vcpu 1, rip 0xfff0 intr_info 0x80000030 error_code 0x00000000[immediate exit]', f)).toMatchObject({ error_code: '0x00000000', immediate_exit: '[immediate exit]' });
  });
  it('kvm_halt_poll_ns and kvm_pi_irte_update', () => {
    expect(parseEventFields('vcpu 0: halt_poll_ns 10000 (grow 0)', formatsByEvent.get('kvm_halt_poll_ns'))).toEqual({ vcpu: 0, vcpu_id: 0, halt_poll_ns: 10000, new: 10000, grow: 'grow', old: 0 });
    expect(parseEventFields('PI is disabled for irq 45, vcpu -1, gsi: 0x19, gvec: 0xef', formatsByEvent.get('kvm_pi_irte_update'))).toMatchObject({ set: 'disabled', host_irq: 45, vcpu_id: -1, gsi: '0x19', gvec: '0xef' });
  });
  it('kvm_msr, kvm_cpuid, kvm_write_tsc_offset from the record-tgid capture', () => {
    expect(fieldsOf('       CPU 1/KVM-7147    (   7144) [000] .....   178.726167: kvm_msr: msr_write 250 = 0x606060606060606')).toEqual({ write: 'write', ecx: '0x250', data: '0x606060606060606', exception: '' });
    expect(fieldsOf('       CPU 1/KVM-7147    (   7144) [000] .....   178.725499: kvm_cpuid: func 1 idx 2 rax 60fb1 rbx 1020800 rcx f6f83203 rdx 178bfbff, cpuid entry found')).toMatchObject({ function: '0x1', rax: '0x60fb1', rdx: '0x178bfbff', found: 'found' });
    // 64-bit decimals above 2^53 stay strings.
    expect(parseEventFields('vcpu=0 prev=0 next=18446743610329289584', formatsByEvent.get('kvm_write_tsc_offset'))).toEqual({ vcpu: 0, vcpu_id: 0, prev: 0, previous_tsc_offset: 0, next: '18446743610329289584', next_tsc_offset: '18446743610329289584' });
  });
  it('trace_marker bodies stay whole with the ftrace print format', () => {
    expect(parseEventFields('kvmlab-capture: qemu start', formatsByEvent.get('print'))).toEqual({ buf: 'kvmlab-capture: qemu start' });
  });
  it('parses every event of the captured traces that has a format, without falling back to argN for sched', () => {
    for (const ev of [...events('trace-sched-kvm-marker.txt'), ...events('trace-record-tgid.txt')]) {
      const f = formatsByEvent.get(ev.event);
      if (f === undefined) continue;
      const fields = parseEventFields(ev.body, f);
      expect(Object.keys(fields).length, `${ev.event}: ${ev.body}`).toBeGreaterThan(0);
      if (ev.event === 'sched_switch') expect(typeof fields['next_pid']).toBe('number');
      if (ev.event === 'sched_wakeup') expect(typeof fields['target_cpu']).toBe('number');
    }
  });
});

describe('parseEventFields without a format', () => {
  it('key=value bodies, values with spaces, "==>" dropped', () => {
    expect(parseEventFields('prev_comm=CPU 0/KVM prev_pid=7052 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120')).toEqual({
      prev_comm: 'CPU 0/KVM', prev_pid: 7052, prev_prio: 120, prev_state: 'S', next_comm: 'swapper/0', next_pid: 0, next_prio: 120,
    });
    expect(parseEventFields('vec=9 [action=RCU]')).toEqual({ vec: 9, action: 'RCU' });
  });
  it('key value bodies (kvm_exit, lowercase SVM reasons included)', () => {
    expect(parseEventFields('vcpu 0 reason hlt rip 0xfff0 info1 0x0 info2 0x0 intr_info 0x00000000 error_code 0x00000000 requests 0x0')).toMatchObject({ vcpu: 0, reason: 'hlt', rip: '0xfff0', requests: '0x0' });
    expect(parseEventFields('reason HLT rip 0xffffffff8102d3f6 info 0 0')).toEqual({ reason: 'HLT', rip: '0xffffffff8102d3f6', info: 0 });
    expect(parseEventFields('vcpu 0, rip 0xfff0 intr_info 0x00000000 error_code 0x00000000')).toEqual({ vcpu: 0, rip: '0xfff0', intr_info: '0x00000000', error_code: '0x00000000' });
    expect(parseEventFields('wait time 15209620 ns, polling valid')).toEqual({ time: 15209620 });
    expect(parseEventFields('')).toEqual({});
  });
});

describe('parsePerCpuStats', () => {
  it('reads the captured per_cpu stats', () => {
    expect(parsePerCpuStats(fixture('per_cpu-cpu0.stats'))).toEqual({
      entries: 3440, overrun: 0, commitOverrun: 0, bytes: 115220, oldestEventTs: 171.425427, nowTs: 175.010633, droppedEvents: 0, readEvents: 0,
    });
    expect(parsePerCpuStats(fixture('per_cpu-cpu1.stats'))).toMatchObject({ entries: 3727, bytes: 88056, oldestEventTs: 171.429022 });
  });
  it('rejects malformed input', () => {
    const good = fixture('per_cpu-cpu0.stats');
    expect(() => parsePerCpuStats(good.replace(/^overrun:.*\n/m, ''))).toThrow(/no "overrun:" line/);
    expect(() => parsePerCpuStats(good.replace('bytes: 115220', 'bytes: lots'))).toThrow(/bytes is not a number/);
    expect(() => parsePerCpuStats('entries 5\n')).toThrow(/line without "key:"/);
  });
});

describe('streaming', () => {
  it('counts the captured trace by event, with markers', async () => {
    const c = await countTraceEvents(fixture('trace-sched-kvm-marker.txt'));
    expect(c.lines).toBe(324);
    expect(c.events).toBe(312);
    expect(c.malformed).toBe(0);
    expect(Object.fromEntries(c.byEvent)).toEqual({
      tracing_mark_write: 3, rcu_utilization: 158, softirq_raise: 32, sched_switch: 57, sched_wakeup: 36, kvm_userspace_exit: 24, kvm_vcpu_wakeup: 2,
    });
    expect(c.markers.map((m) => m.text)).toEqual(['kvmlab-capture: qemu start', 'kvmlab-capture: qemu running 3s', 'kvmlab-capture: qemu killed']);
    expect(c.markers[1]).toEqual({ timestamp: 174.493176, cpu: 0, pid: 7043, comm: 'bash', text: 'kvmlab-capture: qemu running 3s' });
    expect(c.firstTimestamp).toBe(171.425427);
    expect(c.lastTimestamp).toBe(174.996936);
  });
  it('finds the markers and LOST notices without parsing the rest, as the full count does', async () => {
    const text = fixture('trace-sched-kvm-marker.txt');
    const withLoss = `${text}CPU:1 [LOST 17 EVENTS]\n`;
    const full = await countTraceEvents(withLoss);
    expect(scanMarkers(withLoss)).toEqual({ markers: full.markers, lostEvents: 17 });
    expect(scanMarkers('')).toEqual({ markers: [], lostEvents: 0 });
  });
  it('gives the same counts from byte chunks cut anywhere (even inside UTF-8 sequences)', async () => {
    const text = `${fixture('trace-record-tgid.txt')}CPU:1 [LOST 12 EVENTS]\nnot a trace line\n  naïve-1 [000] ..... 1.000000: ev: ü\r\n`;
    const bytes = Buffer.from(text, 'utf8');
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 7) chunks.push(bytes.subarray(i, i + 7));
    const seen: string[] = [];
    const c = await countTraceEvents(Readable.from(chunks), { onEvent: (e) => { if (e.event === 'ev') seen.push(`${e.comm}|${e.body}`); } });
    const whole = await countTraceEvents(text);
    expect(c.events).toBe(140);
    expect(whole.events).toBe(140);
    expect(c.byEvent).toEqual(whole.byEvent);
    expect(c.byEvent.get('kvm_emulate_insn')).toBe(103);
    expect(c.lostEvents).toBe(12);
    expect(c.malformed).toBe(1);
    expect(c.malformedSamples).toEqual(['not a trace line']);
    expect(seen).toEqual(['naïve|ü']);
  });
  it('parseTraceText: sync for strings, async for streams; malformed lines throw', async () => {
    const text = fixture('trace-sched-kvm-marker.txt');
    const sync = [...parseTraceText(text)];
    const asyncOut: TraceLine[] = [];
    for await (const e of parseTraceText(Readable.from([text.slice(0, 1000), text.slice(1000)]))) asyncOut.push(e);
    expect(asyncOut).toEqual(sync);
    expect(() => [...parseTraceText('# header\ngarbage\n')]).toThrow(TraceParseError);
  });
  it('LineSplitter / forEachLine handle a missing final newline and CRLF', () => {
    const out: string[] = [];
    const s = new LineSplitter((l) => out.push(l));
    s.push('a\r\nb');
    s.push('c\n\nd');
    s.end();
    expect(out).toEqual(['a', 'bc', '', 'd']);
    const lines: string[] = [];
    forEachLine('x\ny\n', (l) => lines.push(l));
    expect(lines).toEqual(['x', 'y']);
  });
  it('forEachLineWith gives each line holding the needle once, the way forEachLine splits them, and stops when asked', () => {
    const text = 'kvm_exit: a kvm_exit: b\r\nsched\nkvm_exit\nlast kvm_exit: c';
    const every: string[] = [];
    forEachLine(text, (l) => void (l.includes('kvm_exit:') && every.push(l)));
    const found: string[] = [];
    forEachLineWith(text, 'kvm_exit:', (l) => void found.push(l));
    expect(found).toEqual(every);
    expect(found).toEqual(['kvm_exit: a kvm_exit: b', 'last kvm_exit: c']);
    const first: string[] = [];
    forEachLineWith(text, 'kvm_exit:', (l) => first.push(l) < 1);
    expect(first).toEqual(['kvm_exit: a kvm_exit: b']);
  });
});
