// The pure parts of the host-evidence collectors, on text captured from the build host
// (test/fixtures/) and on the mock host's simulated files.
import fs from 'node:fs';
import { exitReasonName, parseExitHist } from '../../src/formats/kvm-exit-hist.js';
import { describe, expect, it } from 'vitest';
import { interruptRows, statRows as cpuStatRows } from '../../src/collect/interrupts.js';
import { metricOf, snapshotFromQmp, statKind, statRows } from '../../src/collect/kvm-stats.js';
import { parseInterrupts, parseProcStat } from '../../src/formats/procfs.js';
import { parseTraceText } from '../../src/formats/tracefs/trace-stream.js';
import { parseEventFormat, type EventFormat } from '../../src/formats/tracefs/event-format.js';
import { perfMetric } from '../../src/collect/perf.js';
import { parsePerfCsv } from '../../src/formats/perf-stat.js';
import { eventFilter, markerText, stepRows, stepWindows, threadInfo, TraceAggregator, windowOf } from '../../src/collect/tracefs-attribution.js';
import { exitReasonWord as normalizeExitReason } from '../../src/model/metrics.js';
import { VirtualClock } from '../../src/backend/clock.js';
import { MockHostSim } from '../../src/backend/mock/host-sim.js';
import { MockTracefs } from '../../src/backend/mock/tracefs.js';
import { parseFilter } from '../../src/backend/mock/tracefs-filter.js';
import { MOCK_EVENT_FORMATS } from '../../src/backend/mock/tracefs-formats.js';

const fixture = (p: string) => fs.readFileSync(new URL(`../fixtures/${p}`, import.meta.url), 'utf8');
const format = (n: string): EventFormat => parseEventFormat(fixture(`tracefs/format/${n}.format`));

describe('tracefs collector: step windows from markers', () => {
  const markers = [
    { timestamp: 10, text: markerText('a', 'start') },
    { timestamp: 12, text: markerText('a', 'end') },
    { timestamp: 12.5, text: markerText('b', 'start') },
    { timestamp: 15, text: `${markerText('b', 'end')}\n` },
  ];
  it('takes both bounds from the markers', () => {
    const w = stepWindows(['a', 'b'], markers, new Map());
    expect(w).toEqual([
      { step: 'a', start: 10, end: 12, source: 'markers' },
      { step: 'b', start: 12.5, end: 15, source: 'markers' },
    ]);
    expect(windowOf(w, 11)).toBe(0);
    expect(windowOf(w, 12.2)).toBe(-1);
    expect(windowOf(w, 15)).toBe(1);
    expect(windowOf(w, 16)).toBe(-1);
  });
  it('falls back to the clock read at the boundary when a marker was lost', () => {
    const w = stepWindows(['a', 'b', 'c'], markers.slice(0, 3), new Map([['b', { start: 12.4, end: 14.9 }], ['c', { start: 16 }]]));
    expect(w.map((x) => [x.step, x.start, x.end, x.source])).toEqual([
      ['a', 10, 12, 'markers'],
      ['b', 12.5, 14.9, 'mixed'],
    ]); // c has no end at all: no window, no rows
  });
});

describe('tracefs collector: attribution of a real trace', () => {
  // trace-sched-kvm-marker.txt: QEMU 7046 with vCPU threads 7052 (CPU 0/KVM) and 7053 (CPU 1/KVM);
  // its three markers bound two windows.
  const text = fixture('tracefs/trace-sched-kvm-marker.txt');
  const events = [...parseTraceText(text)];
  const marks = events.filter((e) => e.event === 'tracing_mark_write').map((e) => e.timestamp);
  const windows = stepWindows(['boot', 'run'], [], new Map([['boot', { start: marks[0], end: marks[1] }], ['run', { start: marks[1]! + 1e-6, end: marks[2] }]]));
  const formats = new Map(['kvm.kvm_exit', 'kvm.kvm_vcpu_wakeup', 'kvm.kvm_userspace_exit', 'sched.sched_switch', 'sched.sched_wakeup'].map((n) => [n.split('.')[1]!, format(n)]));
  const th = threadInfo([{ pid: 7046, vcpus: [{ index: 0, tid: 7052, qomPath: '', props: {} }, { index: 1, tid: 7053, qomPath: '', props: {} }], others: [7046, 7047, 7050] }]);
  const agg = new TraceAggregator(windows, formats, th);
  for (const e of events) agg.event(e);
  const get = (i: number, metric: string, entity: string) => agg.perStep[i]!.get(`${metric}\u0000${entity}`) ?? 0;

  it('counts per thread entity in the right step (numbers checked with grep on the fixture)', () => {
    expect(get(0, 'trace.userspace_exits', 'vcpu0')).toBe(21);
    expect(get(1, 'trace.userspace_exits', 'vcpu0')).toBe(1);
    expect(get(0, 'trace.switches_out', 'vcpu0')).toBe(2);
    expect(get(1, 'trace.vcpu_wakeups', 'vcpu0') + get(1, 'trace.vcpu_wakeups', 'vcpu1')).toBe(2);
    expect(get(1, 'trace.vcpu_wakeups_polled', 'vcpu0')).toBe(0);
    expect(get(1, 'trace.sched_wakeups', 'vcpu1')).toBe(1);
  });
  it('counts every event per name and never attributes markers', () => {
    const total = agg.perStep.reduce((s, c) => s + [...c].filter(([k]) => k.startsWith('trace.events\u0000')).reduce((a, [, v]) => a + v, 0), 0);
    const nonMarker = events.filter((e) => e.event !== 'tracing_mark_write').length;
    expect(total + agg.outside).toBe(nonMarker);
  });
});

describe('tracefs collector: exits by reason, filters, rows', () => {
  it('makes the idle exits vendor-neutral', () => {
    expect(['HLT', 'hlt', 'MWAIT_INSTRUCTION', 'mwait', 'MONITOR_INSTRUCTION', 'PAUSE_INSTRUCTION', 'pause'].map(normalizeExitReason)).toEqual(['hlt', 'hlt', 'mwait', 'mwait', 'monitor', 'pause', 'pause']);
    expect(normalizeExitReason('EXTERNAL_INTERRUPT')).toBe('external_interrupt');
    expect(normalizeExitReason('PF excp')).toBe('pf_excp');
  });
  it('counts kvm_exit per vCPU and reason', () => {
    const fmt = new Map([['kvm_exit', format('kvm.kvm_exit')]]);
    const th = threadInfo([{ pid: 1, vcpus: [{ index: 3, tid: 33, qomPath: '', props: {} }], others: [1] }]);
    const agg = new TraceAggregator([{ step: 's', start: 0, end: 10, source: 'markers' }], fmt, th);
    const line = (pid: number, reason: string) => `       CPU 3/KVM-${pid}      [002] d..1.     1.000000: kvm_exit: vcpu 3 reason ${reason} rip 0xffffffff81c3a0fe info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000 requests 0x0000000000000000`;
    for (const l of [line(33, 'HLT'), line(33, 'HLT'), line(33, 'MSR_WRITE'), line(99, 'HLT')]) for (const e of parseTraceText(l)) agg.event(e);
    const c = agg.perStep[0]!;
    expect(c.get('trace.exits\u0000vcpu3')).toBe(3);
    expect(c.get('trace.exits.hlt\u0000vcpu3')).toBe(2);
    expect(c.get('trace.exits.msr_write\u0000vcpu3')).toBe(1);
    expect(c.get('trace.events\u0000kvm_exit')).toBe(4); // the other process's exit is recorded, not attributed
  });
  it('counts RCU scheduler ticks on pinned pCPUs and the rcuc wakeups raised inside them (lines from the nested host, 6.12)', () => {
    const fmt = new Map([['sched_wakeup', format('sched.sched_wakeup')], ['rcu_utilization', format('rcu.rcu_utilization')]]);
    const th = threadInfo([{ pid: 1, vcpus: [{ index: 0, tid: 225, qomPath: '', props: {} }], others: [1] }]);
    const agg = new TraceAggregator([{ step: 'busy', start: 20, end: 30, source: 'markers' }], fmt, th);
    const text = [
      '           <...>-225     [002] d.h1.    24.732134: rcu_utilization: Start scheduler-tick',
      '           <...>-225     [002] dNh4.    24.732215: sched_wakeup: comm=rcuc/2 pid=182 prio=120 target_cpu=002',
      '           <...>-225     [002] dNh1.    24.732220: rcu_utilization: End scheduler-tick',
      // woken from elsewhere (not inside CPU 2's tick hook)
      '           <...>-225     [002] dN.4.    25.000000: sched_wakeup: comm=rcuc/2 pid=182 prio=120 target_cpu=002',
      // a tick on CPU 0, which no vCPU is pinned to, counts in the step but gives no pCPU row
      '          <idle>-0       [000] d.h1.    25.100000: rcu_utilization: Start scheduler-tick',
      '          <idle>-0       [000] d.h1.    25.100100: rcu_utilization: End scheduler-tick',
    ].join('\n');
    for (const e of parseTraceText(text)) agg.event(e);
    const rows = stepRows('busy', agg.perStep[0], { vcpus: ['vcpu0'], entities: ['vcpu0'], pinned: [2, 3], lossStart: new Map(), lossEnd: new Map() }, new Set(['sched:sched_wakeup', 'rcu:rcu_utilization']));
    const v = (m: string, e: string) => rows.find((r) => r.metric === m && r.entity === e)?.value;
    expect([v('trace.rcu_ticks', 'pcpu2'), v('trace.rcuc_wakeups', 'pcpu2'), v('trace.rcuc_tick_wakeups', 'pcpu2'), v('trace.rcuc_other_wakeups', 'pcpu2')]).toEqual([1, 2, 1, 1]);
    expect([v('trace.rcu_ticks', 'pcpu3'), v('trace.rcuc_tick_wakeups', 'pcpu3')]).toEqual([0, 0]);
    expect(v('trace.rcu_ticks', 'pcpu0')).toBeUndefined();
  });
  it('builds filters the kernel accepts (the mock checks them with the real format files)', () => {
    const sw = eventFilter('sched:sched_switch', format('sched.sched_switch'), [5, 6], [2]);
    expect(sw).toBe('prev_pid == 5 || next_pid == 5 || prev_pid == 6 || next_pid == 6 || CPU == 2');
    expect(eventFilter('sched:sched_wakeup', format('sched.sched_wakeup'), [5], [2])).toBe('pid == 5 || comm ~ "rcuc/*"');
    expect(eventFilter('kvm:kvm_exit', format('kvm.kvm_exit'), [5], [])).toBe('common_pid == 5');
    expect(eventFilter('kvm:kvm_exit', format('kvm.kvm_exit'), Array.from({ length: 400 }, (_, i) => 100000 + i), [])).toBeUndefined();
    for (const [name, f] of [['sched:sched_switch', 'sched.sched_switch'], ['sched:sched_wakeup', 'sched.sched_wakeup'], ['kvm:kvm_exit', 'kvm.kvm_exit']] as const) {
      expect(() => parseFilter(eventFilter(name, format(f), [5, 6], [2, 3])!, format(f))).not.toThrow();
    }
    expect(() => parseFilter('no_such_field == 1', format('kvm.kvm_exit'))).toThrow();
  });
  it('writes zeros for enabled events and reports loss per CPU', () => {
    const rows = stepRows('s', new Map([['trace.exits.hlt\u0000vcpu0', 7], ['trace.exits\u0000vcpu0', 7], ['trace.sched_switch\u0000pcpu0', 9]]), {
      vcpus: ['vcpu0', 'vcpu1'],
      entities: ['vcpu0', 'vcpu1', 'emulator'],
      pinned: [2],
      lossStart: new Map([[0, 5], [2, 0]]),
      lossEnd: new Map([[0, 8], [2, 0]]),
    }, new Set(['kvm:kvm_exit', 'sched:sched_switch']));
    const v = (m: string, e: string) => rows.find((r) => r.metric === m && r.entity === e)?.value;
    expect(v('trace.exits.hlt', 'vcpu0')).toBe(7);
    expect(v('trace.exits.hlt', 'vcpu1')).toBe(0);
    expect(v('trace.exits.mwait', 'vcpu1')).toBe(0);
    expect(v('trace.sched_switch', 'pcpu2')).toBe(0);
    expect(v('trace.sched_switch', 'pcpu0')).toBeUndefined(); // not a pinned pCPU
    expect(v('trace.events_lost', 'pcpu0')).toBe(3);
    expect(v('trace.events_lost', 'all')).toBe(3);
    expect(v('trace.vcpu_wakeups', 'vcpu0')).toBeUndefined(); // not enabled: no row, not a zero
  });
});

describe('kvm-stats: deltas per step', () => {
  const qom = (i: number) => `/machine/unattached/device[${i}]`;
  const snap = (halts: number, blocking: number) =>
    snapshotFromQmp(
      [0, 1].map((i) => ({ provider: 'kvm', 'qom-path': qom(i), stats: [{ name: 'halt_exits', value: halts + i }, { name: 'halt_wait_ns', value: halts * 1000 }, { name: 'blocking', value: blocking }, { name: 'halt_wait_hist', value: [1, 2] }] })),
      [{ provider: 'kvm', stats: [{ name: 'max_mmu_page_hash_collisions', value: 4 }] }],
      (p) => (p === qom(0) ? 'vcpu0' : p === qom(1) ? 'vcpu1' : undefined),
    );
  it('subtracts cumulative stats, keeps instant and peak ones, drops histograms', () => {
    const rows = statRows('s', snap(10, 1), snap(25, 0), new Map());
    const v = (m: string, e: string) => rows.find((r) => r.metric === m && r.entity === e);
    expect(v('kvm.halt_exits', 'vcpu1')?.value).toBe(15);
    expect(v('kvm.halt_wait_ns', 'vcpu0')).toMatchObject({ value: 15000, unit: 'ns' });
    expect(v('kvm.blocking', 'vcpu0')?.value).toBe(0);
    expect(v('kvm.max_mmu_page_hash_collisions', 'vm')?.value).toBe(4);
    expect(rows.some((r) => r.metric.includes('hist'))).toBe(false);
  });
  it('takes stat kinds from query-stats-schemas first', () => {
    expect(statKind('blocking', new Map())).toBe('instant');
    expect(statKind('blocking', new Map([['blocking', 'cumulative']]))).toBe('cumulative');
    expect(metricOf('halt_successful_poll')).toBe('kvm.halt_successful_poll');
  });
});

describe('interrupts: per-CPU deltas', () => {
  const a = parseInterrupts(fixture('procfs/interrupts'));
  const bumped = fixture('procfs/interrupts').replace(/^LOC:(\s+)(\d+)(\s+)(\d+)/m, (_m, s1: string, x: string, s2: string, y: string) => `LOC:${s1}${Number(x) + 250}${s2}${Number(y) + 3}`);
  const b = parseInterrupts(bumped);
  it('gives every named row for every CPU, zeros included; one-count rows as host', () => {
    const rows = interruptRows('s', a, b);
    const v = (m: string, e: string) => rows.find((r) => r.metric === m && r.entity === e)?.value;
    expect(v('irq.loc', 'pcpu0')).toBe(250);
    expect(v('irq.loc', 'pcpu1')).toBe(3);
    expect(v('irq.piw', 'pcpu1')).toBe(0);
    expect(v('irq.err', 'host')).toBe(0);
    expect(rows.some((r) => /^irq\.\d+$/.test(r.metric))).toBe(false); // numbered IRQs only when they fired
  });
  it('turns /proc/stat ticks into busy and idle %', () => {
    const s0 = parseProcStat('cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 100 0 50 850 0 0 0 0 0 0\n');
    const s1 = parseProcStat('cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 160 0 70 870 0 0 0 0 40 0\n');
    const rows = cpuStatRows('s', s0, s1);
    expect(rows.find((r) => r.metric === 'cpu.busy_pct')?.value).toBe(80);
    expect(rows.find((r) => r.metric === 'cpu.idle_pct')?.value).toBe(20);
    expect(rows.find((r) => r.metric === 'cpu.guest_pct')?.value).toBe(40);
  });
});

describe('perf: CSV output', () => {
  // `perf stat -x, --per-thread -e sched:sched_switch,cycles,kvm:kvm_exit -p PID -o FILE` on the build host
  const text = `# started on Sat Nov 21 11:15:47 2026

node-516,46,,sched:sched_switch,4727148,100.00,,
node-522,<not counted>,,sched:sched_switch,0,100.00,,
node-516,<not supported>,,cycles,0,100.00,,
CPU 0/KVM-532,0,,kvm:kvm_exit,2496791,100.00,,
`;
  it('reads per-thread counts, not-counted as 0 and not-supported as no value', () => {
    expect(parsePerfCsv(text)).toEqual([
      { comm: 'node', tid: 516, event: 'sched:sched_switch', value: 46 },
      { comm: 'node', tid: 522, event: 'sched:sched_switch', value: 0, note: 'not counted' },
      { comm: 'node', tid: 516, event: 'cycles', value: undefined, note: 'not supported' },
      { comm: 'CPU 0/KVM', tid: 532, event: 'kvm:kvm_exit', value: 0 },
    ]);
    expect(parsePerfCsv('1234,,kvm:kvm_exit,1000,100.00,,\n')).toEqual([{ event: 'kvm:kvm_exit', value: 1234 }]);
  });
  it('names metrics as dotted words', () => {
    expect(perfMetric('kvm:kvm_exit')).toBe('perf.kvm.kvm_exit');
    expect(perfMetric('cache-misses')).toBe('perf.cache_misses');
  });
});

describe('mock tracefs', () => {
  it('serves the format files captured on the build host, unchanged', () => {
    for (const [key, text] of Object.entries(MOCK_EVENT_FORMATS)) expect(text).toBe(fixture(`tracefs/format/${key.replace('/', '.')}.format`));
  });
  it('keeps the global setup read-only and removes instances', async () => {
    const t = new MockTracefs(new MockHostSim(() => [], new VirtualClock()));
    await expect(t.writeFile('/sys/kernel/tracing/tracing_on', '0')).rejects.toThrow(/EPERM/);
    await t.mkdir('/sys/kernel/tracing/instances/x');
    await expect(t.writeFile('/sys/kernel/tracing/instances/x/events/kvm/kvm_exit/filter', 'bogus == 1')).rejects.toThrow(/EINVAL/);
    await t.writeFile('/sys/kernel/tracing/instances/x/trace_marker', 'hello');
    expect(await t.readFile('/sys/kernel/tracing/instances/x/trace')).toMatch(/tracing_mark_write: hello\n$/);
    await t.rmdir('/sys/kernel/tracing/instances/x');
    expect(t.instanceNames()).toEqual([]);
  });
});

describe('kvm-exits: the kernel histogram of kvm:kvm_exit', () => {
  // The shape of /sys/kernel/tracing/instances/*/events/kvm/kvm_exit/hist (Linux 6.1) for
  // hist:keys=common_pid,isa,exit_reason:vals=hitcount (isa 2 = SVM, 0x8a monitor, 0x8b mwait, 0x78 hlt).
  const hist = [
    '# event histogram',
    '#',
    '# trigger info: hist:keys=common_pid,isa,exit_reason:vals=hitcount:sort=common_pid:size=16384 [active]',
    '#',
    '',
    '{ common_pid:        812, isa:          2, exit_reason:        120 } hitcount:        205',
    '{ common_pid:        812, isa:          2, exit_reason:        123 } hitcount:        360',
    '{ common_pid:        813, isa:          2, exit_reason:        138 } hitcount:     196603',
    '{ common_pid:        813, isa:          2, exit_reason:        139 } hitcount:     196604',
    '{ common_pid:        813, isa:          1, exit_reason:         36 } hitcount:          1',
    '',
    'Totals:',
    '    Hits: 393773',
    '    Entries: 5',
    '    Dropped: 7',
    '',
  ].join('\n');

  it('counts per thread and reason, in the words tracefs prints, with the loss', () => {
    const h = parseExitHist(hist);
    expect(h.hits).toBe(393773);
    expect(h.dropped).toBe(7);
    expect(Object.fromEntries(h.byThread.get(812)!)).toEqual({ hlt: 205, io: 360 });
    expect(Object.fromEntries(h.byThread.get(813)!)).toEqual({ monitor: 196603, mwait: 196604, MWAIT_INSTRUCTION: 1 });
  });

  it('names VMX and SVM reasons as the tracefs collector does, and unknown ones by number', () => {
    expect(normalizeExitReason(exitReasonName(1, 12))).toBe('hlt');
    expect(normalizeExitReason(exitReasonName(1, 36))).toBe('mwait');
    expect(normalizeExitReason(exitReasonName(2, 0x8b))).toBe('mwait');
    expect(normalizeExitReason(exitReasonName(2, 0x400))).toBe('npf');
    expect(exitReasonName(2, 0x14)).toBe('write_cr4');
    expect(exitReasonName(1, 99)).toBe('reason_1_0x63');
  });

  it('reads the histogram captured in the nested KVM host during an MWAIT storm', () => {
    const h = parseExitHist(fixture('tracefs/kvm_exit-hist-storm.txt'), (isa, r) => normalizeExitReason(exitReasonName(isa, r)));
    expect({ hits: h.hits, dropped: h.dropped }).toEqual({ hits: 136325, dropped: 0 });
    expect(h.byThread.get(198)!.get('mwait')).toBe(45133);
    expect(h.byThread.get(198)!.get('monitor')).toBe(45134);
    expect([...h.byThread.values()].reduce((s, m) => s + [...m.values()].reduce((a, b) => a + b, 0), 0)).toBe(h.hits);
  });

  it('refuses text that is not a histogram', () => {
    expect(() => parseExitHist('# Available triggers:\n# traceon traceoff\n')).toThrow(/not a tracefs histogram/);
  });
});

describe('mock tracefs: a kvm_exit histogram whose table is full drops, as the kernel does', () => {
  it('counts every hit, keeps the keys that fit, and says how many it dropped', async () => {
    const sim = new MockHostSim(() => [], new VirtualClock());
    const t = new MockTracefs(sim);
    await t.mkdir('/sys/kernel/tracing/instances/h');
    await t.writeFile('/sys/kernel/tracing/instances/h/events/kvm/kvm_exit/trigger', 'hist:keys=common_pid,isa,exit_reason:vals=hitcount:size=128');
    const sink = [...(sim as unknown as { sinks: Set<{ offer: (b: unknown[], f: number, t: number) => void }> }).sinks][0]!;
    const batches = Array.from({ length: 200 }, (_, i) => ({ cpu: 0, comm: 'CPU 0/KVM', pid: 1000 + i, sys: 'kvm', event: 'kvm_exit', fields: { vcpu_id: 0, exit_reason: 'HLT' }, count: 3, body: () => '' }));
    sink.offer(batches, 0, 1);
    const h = parseExitHist(await t.readFile('/sys/kernel/tracing/instances/h/events/kvm/kvm_exit/hist'));
    expect(h.hits).toBe(600);
    expect(h.byThread.size).toBe(128);
    expect(h.dropped).toBe(72 * 3);
  });
});
