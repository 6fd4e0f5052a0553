#!/usr/bin/env node
// What tracing one VM exit costs, part by part: the path a kvm:kvm_exit hit takes through the kernel,
// built up one layer at a time beside a running MWAIT exit storm (an offlined vCPU of an
// Intel-vendor guest parked in an exposed-but-intercepted MWAIT), each layer's storm rate against
// the rate with nothing added, in one guest and one host boot:
//   none           nothing added (in the nested host: the two idle probes nested-pin holds on
//                  kvm:kvm_exit, in every window)
//   off            a tracefs instance with kvm_exit enabled and tracing off: one more probe, whose
//                  ring buffer refuses the event before it is built
//   filtered       the same with a filter nothing matches: the filter makes the probe build the
//                  event (TP_fast_assign: the exit's reason and info read from the VMCB/VMCS) in a
//                  per-CPU scratch buffer, then drop it
//   ring-buffer    kvm_exit enabled and recorded into an instance's ring buffer, no reader: the
//                  kernel side of trace-cmd record / perf kvm stat record
//   hist:reason    a histogram trigger keyed by exit reason alone
//   hist:pid       keyed by thread and exit reason
//   kvm-exits      kvmlab's trigger (src/collect/kvm-exits.ts: thread, ISA, reason)
//   bpf            a BPF program on the tracepoint counting per thread and reason in a hash map
//                  (test/bench/exit-count-bpf.c, compiled here with cc): the event built for perf,
//                  then a map update instead of the histogram's; what a BPF counter would cost
// and two layers that leave kvm_exit alone, to price the tracefs collector beside the same storm:
//   sched          sched:sched_switch and sched:sched_wakeup recorded into an instance, unfiltered,
//                  no reader: the kernel side of trace-cmd record -e sched:...
//   tracefs        the same two events set up as kvmlab's tracefs collector sets them (its buffer,
//                  no overwrite, trace_clock mono, and its filters for the VM's threads from
//                  eventFilter in src/collect/tracefs-attribution.ts; no pinned-CPU terms, as nothing
//                  is pinned here): the collector's in-kernel part, which records until its stop()
// Each layer is added by a host: step just before its window and removed just after. Rounds repeat
// the layers in a shuffled order; each layer's rate is compared with the "none" window of its round.
// The cost a layer adds per exit is 1/rate − 1/rate(none), in µs of the host's time.
//   npm run build && node test/bench/exit-trace-cost.mjs [--on nested|local] [--rounds 3] [--window 8] [--smoke]
// Needs real KVM: by default the nested KVM host (--on nested; its exits are emulated hardware's, so
// read the costs as ratios, not as a lab box's µs); --on local on a lab box with KVM. Where the
// kernel has no histogram triggers those layers are said and left out.
// --smoke: one round of 1 s windows (numbers not meant to be read), so CI keeps this script working.
// The last line is one JSON object: {on, rounds, window_s, none_exit_rate, layers: {NAME: {...}}}.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT_HIST_TRIGGER } from '../../dist/collect/kvm-exits.js';
import { whereMeasured } from '../../dist/report/summary.js';
import { arg, marks, runKvmlab, shuffled, stats, stepOf, stepStdout } from './measure.mjs';

const args = process.argv.slice(2);
const smoke = args.includes('--smoke');
const on = arg('on', 'nested');
const ROUNDS = Number(arg('rounds', smoke ? 1 : 3));
const WINDOW_S = Number(arg('window', smoke ? 1 : 8));
const root = new URL('../../', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'kvmlab-bench-exit-trace-'));

const T = '/sys/kernel/tracing';
const INST = `${T}/instances/kvmlab-bench-exit-trace`;
const EV = `${INST}/events/kvm/kvm_exit`;
/**
 * Each layer: the shell that adds it, whose last line says "attached" or "not attached: why", and the
 * shell that takes it away.
 */
const attach = (cmds) => `{ ${cmds}; } 2>&1 && echo attached || echo 'not attached: the commands above failed'`;
/** kvm_exit enabled in the instance, after `setup` there. */
const enabled = (setup) => ({ add: attach(`mkdir ${INST} && ${setup} && echo 1 > ${EV}/enable`), remove: `echo 0 > ${EV}/enable; rmdir ${INST}` });
const hist = (trigger) => ({
  add: `if [ -e ${T}/events/kvm/kvm_exit/hist ]; then ${attach(`mkdir ${INST} && echo '${trigger}' > ${EV}/trigger`)}; else echo 'not attached: no histogram triggers (CONFIG_HIST_TRIGGERS off)'; fi`,
  remove: `echo '!${trigger}' > ${EV}/trigger 2>/dev/null; rmdir ${INST}`,
});
// The BPF counter: compiled next to the experiment file (which the nested host sees), run in the
// background for its window; its last line says whether it attached, and at the end what it counted.
const BPF = join(work, 'exit-count-bpf');
const BPF_OUT = '/tmp/kvmlab-bench-exit-count-bpf.out';
const BPF_PID = '/tmp/kvmlab-bench-exit-count-bpf.pid';
// The sched layers. QEMU's threads are listed when the layer is added, in the host that runs it.
const SCHED = `${INST}/events/sched`;
const QEMU_TIDS = "ls /proc/$(pgrep -f -- '-name kvmlab-exit-trace-cost' | head -n 1)/task";
const sched = (setup) => ({
  add: attach(`mkdir ${INST} && ${setup} && echo 1 > ${SCHED}/sched_switch/enable && echo 1 > ${SCHED}/sched_wakeup/enable`),
  remove: `echo 0 > ${SCHED}/sched_switch/enable; echo 0 > ${SCHED}/sched_wakeup/enable; rmdir ${INST}`,
});
const TRACEFS_FILTERS = `sw=; wk=; for t in $(${QEMU_TIDS}); do sw="$sw prev_pid == $t || next_pid == $t ||"; wk="$wk pid == $t ||"; done; [ -n "$sw" ] && echo "\${sw% ||}" > ${SCHED}/sched_switch/filter && echo "$wk comm ~ \\"rcuc/*\\"" > ${SCHED}/sched_wakeup/filter`;
const TRACEFS_SETUP = `echo 0 > ${INST}/tracing_on && echo 8192 > ${INST}/buffer_size_kb && echo 0 > ${INST}/options/overwrite && { echo mono > ${INST}/trace_clock || true; } && ${TRACEFS_FILTERS} && echo 1 > ${INST}/tracing_on`;
const cc = spawnSync('cc', ['-O2', '-Wall', '-o', BPF, join(root, 'test/bench/exit-count-bpf.c')], { encoding: 'utf8' });
const bpfLayer =
  cc.status === 0
    ? {
        add: `rm -f ${BPF_OUT}; setsid ${BPF} > ${BPF_OUT} 2>&1 < /dev/null & echo $! > ${BPF_PID}; i=0; while [ $i -lt 100 ] && ! grep -q attached ${BPF_OUT} && kill -0 $(cat ${BPF_PID}) 2>/dev/null; do sleep 0.1; i=$((i+1)); done; tail -n 1 ${BPF_OUT}`,
        remove: `kill -TERM $(cat ${BPF_PID}) 2>/dev/null; while kill -0 $(cat ${BPF_PID}) 2>/dev/null; do sleep 0.1; done; tail -n 1 ${BPF_OUT}; rm -f ${BPF_OUT} ${BPF_PID}`,
      }
    : { add: `echo 'not attached: cc could not build test/bench/exit-count-bpf.c: ${(cc.stderr || String(cc.error)).split('\n')[0].replace(/'/g, '')}'`, remove: 'true' };
const LAYERS = {
  none: { add: 'echo attached', remove: 'true' },
  off: enabled(`echo 0 > ${INST}/tracing_on`),
  filtered: enabled(`echo 0 > ${INST}/tracing_on && echo 'common_pid < 0' > ${EV}/filter`),
  'ring-buffer': enabled('true'),
  'hist:reason': hist('hist:keys=exit_reason:vals=hitcount:size=16384'),
  'hist:pid': hist('hist:keys=common_pid,exit_reason:vals=hitcount:sort=common_pid:size=16384'),
  'kvm-exits': hist(EXIT_HIST_TRIGGER),
  bpf: bpfLayer,
  sched: sched('true'),
  tracefs: sched(TRACEFS_SETUP),
};
// a run cut short here leaves no counter running (in the nested host it goes with L1)
process.on('exit', () => spawnSync('pkill', ['-TERM', '-f', BPF]));
const names = Object.keys(LAYERS);

// A mark: KVM's exits of all VMs (debugfs; this run's guest is the only one) and the uptime.
const MARK = `mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug; echo exits $(cat /sys/kernel/debug/kvm/exits 2>/dev/null || echo 0); echo uptime $(cut -d' ' -f1 /proc/uptime)`;
const host = (step, cmd) => `  - { name: ${step}, host: [sh, -c, ${JSON.stringify(cmd)}] }`;
const order = Array.from({ length: ROUNDS }, (_, r) => shuffled(names, r + 1));
const exp = [
  'name: exit-trace-cost',
  'description: what each layer of tracing kvm:kvm_exit costs an MWAIT exit storm',
  'requires: { arch: [x86_64], accel: kvm, root: true }',
  'guest: { arch: x86_64, cpu: "host,vendor=GenuineIntel,kvm-pv-unhalt=off,kvm-pv-ipi=off,kvm-pv-sched-yield=off", cpus: 2, memory: 512M }',
  'knobs: { disable_exits: [], expose_mwait: true }',
  // the layers register probes on these: in the nested host they are held still from L1's boot
  'nested: { tracepoints: [kvm:kvm_exit, sched:sched_switch, sched:sched_wakeup] }',
  'steps:',
  `  - { name: cleanup, host: [sh, -c, ${JSON.stringify(`rmdir ${INST} 2>/dev/null; true`)}] }`,
  '  - { name: park, offline: 1 }',
  ...order.flatMap((layers, r) =>
    layers.flatMap((l) => {
      const id = `r${r + 1}-${l.replace(':', '-')}`;
      return [host(`${id}-add`, LAYERS[l].add), host(`${id}-m0`, MARK), `  - { name: ${id}, sample: ${WINDOW_S}s }`, host(`${id}-m1`, MARK), host(`${id}-remove`, LAYERS[l].remove)];
    }),
  ),
  '  - { name: unpark, online: 1 }',
  '',
].join('\n');
const file = join(work, 'exit-trace-cost.yaml');
writeFileSync(file, exp);
const out = join(work, 'results');

const t0 = Date.now();
let results;
try {
  ({ results } = await runKvmlab(file, { on, out }));
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
const { summary } = results;
const variant = summary.variants[0];
if (variant.status === 'skipped') {
  console.error(`not run here: ${variant.reason}`);
  process.exit(1);
}
const rep = variant.repetitions[0];
if (rep.status !== 'completed') {
  console.error(`the run did not complete: ${rep.status}: ${rep.reason ?? ''} (results in ${out})`);
  process.exit(1);
}
const repData = results.reps[0];
const stdout = (name) => stepStdout(repData, name);
const mark = (name) => marks(stdout(name));

const rates = {}; // layer -> per round exits/s
const notAttached = {};
order.forEach((layers, r) => {
  for (const l of layers) {
    const id = `r${r + 1}-${l.replace(':', '-')}`;
    const said = stdout(`${id}-add`).trim().split('\n').at(-1) ?? '';
    if (said !== 'attached') {
      notAttached[l] = said.replace(/^not attached: /, '') || `its host step said nothing (${stepOf(repData, `${id}-add`)?.error ?? 'no error recorded'})`;
      continue;
    }
    const [a, b] = [mark(`${id}-m0`), mark(`${id}-m1`)];
    (rates[l] ??= [])[r] = (b.exits - a.exits) / (b.uptime - a.uptime);
  }
});

const none = rates.none ?? [];
const layers = {};
for (const l of names.filter((x) => x !== 'none')) {
  if (notAttached[l]) {
    layers[l] = { not_attached: notAttached[l] };
    continue;
  }
  const pairs = (rates[l] ?? []).map((x, r) => [x, none[r]]).filter(([x, n]) => x > 0 && n > 0);
  layers[l] = pairs.length
    ? {
        exit_rate_change_pct: stats(pairs.map(([x, n]) => 100 * (x / n - 1))),
        // the host time this layer adds to each exit: 1/rate − 1/rate(none)
        us_added_per_exit: stats(pairs.map(([x, n]) => 1e6 * (1 / x - 1 / n))),
      }
    : { no_exits: 'no exits were counted (no exit storm here)' };
}
const fmt = (s) => (s ? `${s.median.toFixed(2)} (${s.min.toFixed(2)} … ${s.max.toFixed(2)})` : '');
console.log(`measured on: ${whereMeasured(summary)}; ${ROUNDS} round(s) of ${WINDOW_S} s windows, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
console.log(`none: ${fmt(stats(none.filter((x) => x > 0).length ? none.filter((x) => x > 0) : [0]))} exits/s`);
console.log(`layer          exit rate change %            µs added per exit`);
for (const [l, v] of Object.entries(layers)) console.log(`${l.padEnd(14)} ${v.exit_rate_change_pct ? `${fmt(v.exit_rate_change_pct).padEnd(29)} ${fmt(v.us_added_per_exit)}` : v.not_attached ? `not attached: ${v.not_attached}` : v.no_exits}`);
console.log(JSON.stringify({ on, measured: whereMeasured(summary), rounds: ROUNDS, window_s: WINDOW_S, none_exit_rate: none.length ? stats(none) : null, layers }));
