#!/usr/bin/env node
// What watching costs the watched: one guest, the workloads where an observer's cost would show —
//   busy: the guest's shell loop on vCPU 0, its iterations per second counted by the guest itself;
//   idle: the same guest idle, the host CPU its QEMU process (vCPU threads included) uses;
//   storm (under KVM: --storm, the default --on nested): vCPU 1 offlined in an Intel-vendor guest
//   that sees MWAIT while KVM intercepts it, parked in an MWAIT exit storm, and the exits per second
//   it achieves, from KVM's own count (debugfs kvm/exits, all VMs: this run's is the only one) —
// run with nothing attached, with each kvmlab collector alone, with all of them at once, and with the
// peer tool that does a collector's job (pidstat -t for vcpu-cpu, trace-cmd record for tracefs and
// kvm-exits, perf kvm stat record for perf and kvm-exits), in shuffled order within each of N pairs
// (every configuration once per pair, "none" included). Each configuration's figures are relative
// to the "none" run of the same pair; across pairs: the median and min–max. Machine CPU (all CPUs,
// kernel included, /proc/stat) over each window says what each observer added in all.
// Under TCG (no usable KVM here) there is no exit storm, and a collector that cannot attach (the
// kvm-exits trigger on a kernel without histogram triggers) is said and left out of the figures.
//   npm run build && node test/bench/observer-effect.mjs [--on local|nested] [--pairs 5] [--window 8]
//                                                         [--configs none,vcpu-cpu,…] [--storm|--no-storm] [--smoke]
// --smoke: one pair of none, vcpu-cpu and pidstat over 1 s windows (numbers not meant to be read),
// so CI keeps this script working. Every run boots a guest (and, --on nested, an L1): 10
// configurations × 5 pairs take about 25 minutes under TCG here.
// In the nested host every configuration's L1 holds the same tracepoints still (nested.tracepoints:
// those of every configuration measured), so "none" carries the same idle pin probes as the
// configuration it is compared with, and the difference is the collector's own.
// The last line is one JSON object: {on, accel, pairs, window_s, baseline, configs: {NAME: {...}}}.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COLLECTOR_NAMES } from '../../dist/experiment/schema.js';
import { parseExperiment } from '../../dist/experiment/load.js';
import { tracepointsToPin } from '../../dist/targets/nested-host.js';
import { arg, marks, runKvmlab, shuffled, stats, stepStdout } from './measure.mjs';

const args = process.argv.slice(2);
const smoke = args.includes('--smoke');
const on = arg('on', 'local');
const PAIRS = Number(arg('pairs', smoke ? 1 : 5));
const WINDOW_S = Number(arg('window', smoke ? 1 : 8));
const STORM = args.includes('--storm') || (on === 'nested' && !args.includes('--no-storm'));
const work = mkdtempSync(join(tmpdir(), 'kvmlab-bench-observer-'));

const QEMU = "pgrep -f -- '-name kvmlab-observer-effect-' | head -n 1";
// The host's own /tmp, not `work`: in the nested host, this host's paths are read-only.
const PEER_PID = '/tmp/kvmlab-observer-peer.pid';
const PEER_DATA = '/tmp/kvmlab-observer-peer.data';
/** A peer runs in the background from before the windows to after them, in a session of its own. */
const peer = (cmd) => ({
  start: `setsid sh -c ${JSON.stringify(`exec ${cmd}`)} </dev/null >/dev/null 2>&1 & echo $! > ${PEER_PID}`,
  stop: `kill -INT $(cat ${PEER_PID}) 2>/dev/null; while kill -0 $(cat ${PEER_PID}) 2>/dev/null; do sleep 0.1; done; rm -f ${PEER_DATA} ${PEER_PID}`,
});
const KVM_EVENTS = '-e kvm:kvm_exit -e kvm:kvm_entry';
/** Each configuration: kvmlab collectors (collect: block) or a peer tool; `needsKvm` collectors say "not collected" without KVM. */
const CONFIGS = {
  none: { collect: '' },
  'vcpu-cpu': { collect: '  vcpu-cpu: { interval: 100ms }' },
  tracefs: { collect: '  tracefs: { events: [sched:sched_switch, sched:sched_wakeup] }' },
  'kvm-exits': { collect: '  kvm-exits: {}' },
  'kvm-stats': { collect: '  kvm-stats: {}' },
  interrupts: { collect: '  interrupts: {}' },
  perf: { collect: '  perf: {}' },
  // every collector this host can attach (found by a first short run of each alone)
  all: { collect: undefined },
  pidstat: { peer: peer(`pidstat -t -p $(${QEMU}) 1`), peerOf: 'vcpu-cpu' },
  'trace-cmd': { peer: peer(`trace-cmd record -q -e sched:sched_switch -e sched:sched_wakeup ${KVM_EVENTS} -o ${PEER_DATA}`), peerOf: 'tracefs, kvm-exits' },
  'perf-kvm-stat': { peer: peer(`perf kvm stat record -a -o ${PEER_DATA}`), peerOf: 'perf, kvm-exits' },
};
// every collector kvmlab has is measured here: a new one without a configuration fails this bench (and its CI smoke)
const missing = COLLECTOR_NAMES.filter((c) => !CONFIGS[c]?.collect);
if (missing.length) throw new Error(`observer-effect.mjs has no configuration for the collector(s) ${missing.join(', ')}: add each to CONFIGS`);
const chosen = arg('configs', smoke ? 'none,vcpu-cpu,pidstat' : Object.keys(CONFIGS).join(',')).split(',');
for (const c of chosen) if (!CONFIGS[c]) throw new Error(`--configs: no configuration ${c} (${Object.keys(CONFIGS).join(', ')})`);
if (!chosen.includes('none')) chosen.unshift('none');
/** The tracepoints L1 holds still for every configuration measured here: none in the runs that find what attaches. */
let held = [];

// A mark: machine busy jiffies (/proc/stat, all but idle and iowait), the run time of QEMU's threads
// in ns (schedstat: finer than utime+stime's jiffies), KVM's exit count (storm only), uptime.
const KVM_EXITS = 'mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug; echo exits $(cat /sys/kernel/debug/kvm/exits)';
const MARK = `awk '/^cpu /{print "machine", $2+$3+$4+$7+$8+$9}' /proc/stat; cat /proc/$(${QEMU})/task/*/schedstat | awk '{s+=$1} END {print "qemu_ns", s}'; ${STORM ? `${KVM_EXITS}; ` : ''}echo hz $(getconf CLK_TCK); echo uptime $(cut -d' ' -f1 /proc/uptime)`;
// The guest counts its own loop iterations for WINDOW_S seconds of its clock (no fork in the loop).
const LOOP = `read s _ </proc/uptime; end=\${s%.*}; end=$((end+${WINDOW_S})); i=0; while :; do j=0; while [ $j -lt 1000 ]; do j=$((j+1)); done; i=$((i+1000)); read u _ </proc/uptime; [ \${u%.*} -ge $end ] && break; done; awk -v i=$i -v s=$s -v u=$u 'BEGIN{printf "%.1f\\n", i/(u-s)}'`;

function experiment(name, windowS = WINDOW_S) {
  const c = CONFIGS[name];
  const loop = LOOP.replaceAll(`end+${WINDOW_S}`, `end+${windowS}`);
  const host = (step, cmd) => `  - { name: ${step}, host: [sh, -c, ${JSON.stringify(cmd)}] }`;
  return [
    'name: observer-effect',
    `description: observer effect of ${name} on a busy and an idle 1-vCPU guest`,
    STORM
      ? 'guest: { arch: x86_64, cpu: "host,vendor=GenuineIntel,kvm-pv-unhalt=off,kvm-pv-ipi=off,kvm-pv-sched-yield=off", cpus: 2, memory: 512M }\nknobs: { disable_exits: [], expose_mwait: true }'
      : 'guest: { arch: x86_64, cpus: 1, memory: 512M }',
    ...(on === 'nested' && held.length ? [`nested: { tracepoints: [${held.join(', ')}] }`] : []),
    ...(c.collect ? ['collect:', c.collect] : []),
    'steps:',
    ...(c.peer ? [host('peer-start', c.peer.start)] : []),
    '  - { name: settle, sample: 2s }',
    host('m0', MARK),
    `  - { name: idle, sample: ${windowS}s }`,
    host('m1', MARK),
    `  - { name: busy, guest: { cmd: ${JSON.stringify(loop)}, record: loop_rate }, timeout: ${windowS * 4 + 30}s }`,
    host('m2', MARK),
    ...(STORM ? ['  - { name: park, offline: 1 }', host('m3', MARK), `  - { name: storm, sample: ${windowS}s }`, host('m4', MARK), '  - { name: unpark, online: 1 }'] : []),
    ...(c.peer ? [host('peer-stop', c.peer.stop)] : []),
    '',
  ].join('\n');
}

function parseMark(text) {
  const v = marks(text);
  return { machineS: v.machine / v.hz, qemuS: v.qemu_ns / 1e9, exits: v.exits, t: v.uptime };
}

/** One kvmlab run of one configuration: its figures, or why it gave none. */
async function runOnce(name, pair, windowS = WINDOW_S) {
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, experiment(name, windowS));
  const { results } = await runKvmlab(file, { on, out: join(work, `${name}-${pair}`), stderr: 'pipe' }).catch((e) => {
    throw new Error(`${name}: ${e.message}`);
  });
  const { summary } = results;
  const rep = summary.variants[0].repetitions[0];
  if (rep.status !== 'completed') throw new Error(`${name} (pair ${pair}): the run broke: ${rep.reason}`);
  const mark = (s) => parseMark(stepStdout(results.reps[0], s));
  const [m0, m1, m2] = ['m0', 'm1', 'm2'].map(mark);
  const [m3, m4] = STORM ? ['m3', 'm4'].map(mark) : [];
  const loop = results.rows.find((r) => r.metric === 'guest.loop_rate');
  // a collector's reason, with the run's own pids and instance names taken out, so pairs say it once
  const notAttached = Object.entries(rep.collectors).filter(([, s]) => !s.startsWith('collected')).map(([c, s]) => `${c}: ${s.replace(/ for pid \d+/g, '').replace(/kvmlab-\d+-[0-9a-f]+/g, 'kvmlab-…')}`);
  return {
    accel: summary.accel,
    notAttached,
    idleQemuPct: (100 * (m1.qemuS - m0.qemuS)) / (m1.t - m0.t),
    idleMachineCpus: (m1.machineS - m0.machineS) / (m1.t - m0.t),
    loopRate: loop.value,
    busyMachineCpus: (m2.machineS - m1.machineS) / (m2.t - m1.t),
    ...(STORM ? { stormExitRate: (m4.exits - m3.exits) / (m4.t - m3.t), stormMachineCpus: (m4.machineS - m3.machineS) / (m4.t - m3.t) } : {}),
  };
}


// A collector this host cannot attach (its run breaks at the start: no histogram triggers, say) is
// found by one short run of it alone, said, and left out, of "all" too.
const notAttachable = {};
for (const c of COLLECTOR_NAMES.filter((x) => chosen.includes(x) || chosen.includes('all'))) {
  try {
    await runOnce(c, 0, 1);
  } catch (e) {
    notAttachable[c] = e.message.replace(/^.*the run broke: /, '').replace(/kvmlab-\d+-[0-9a-f]+/g, 'kvmlab-…');
    console.error(`${c}: not attached here: ${notAttachable[c]}`);
  }
}
CONFIGS.all.collect = COLLECTOR_NAMES.filter((c) => !notAttachable[c]).map((c) => CONFIGS[c].collect).join('\n');
const planned = chosen.filter((c) => !notAttachable[c]);
held = [...new Set(planned.flatMap((c) => tracepointsToPin(parseExperiment(experiment(c), `${c}.yaml`))))];
if (on === 'nested' && held.length) console.error(`L1 holds still, in every configuration: ${held.join(', ')}`);

const results = {}; // name -> per pair figures
const t0 = Date.now();
for (let p = 1; p <= PAIRS; p++) {
  for (const name of shuffled(planned, p)) {
    const r = await runOnce(name, p);
    (results[name] ??= []).push(r);
    console.error(`pair ${p}/${PAIRS} ${name}: loop ${r.loopRate.toFixed(0)}/s, idle QEMU ${r.idleQemuPct.toFixed(2)} %, machine ${r.idleMachineCpus.toFixed(3)} / ${r.busyMachineCpus.toFixed(3)} CPUs${STORM ? `, storm ${r.stormExitRate.toFixed(0)} exits/s` : ''} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  }
}

const base = results.none;
const configs = {};
for (const name of planned.filter((c) => c !== 'none')) {
  const rs = results[name];
  const notAttached = [...new Set(rs.flatMap((r) => r.notAttached))];
  if (name === 'all') notAttached.push(...Object.entries(notAttachable).map(([c, why]) => `${c}: ${why}`));
  configs[name] = {
    ...(CONFIGS[name].peerOf ? { peer_of: CONFIGS[name].peerOf } : {}),
    ...(notAttached.length ? { not_attached: notAttached } : {}),
    // the guest's loop rate against the same pair's nothing-attached run: -0.5 = half a percent slower
    loop_rate_change_pct: stats(rs.map((r, i) => 100 * (r.loopRate / base[i].loopRate - 1))),
    // host CPU of the idle guest's QEMU (its vCPU thread included), added to the nothing-attached run's, % of one CPU
    idle_qemu_cpu_added_pct: stats(rs.map((r, i) => r.idleQemuPct - base[i].idleQemuPct)),
    // all CPUs of the machine, kernel included, over each window: what the observer added, % of one CPU
    machine_cpu_added_idle_pct: stats(rs.map((r, i) => 100 * (r.idleMachineCpus - base[i].idleMachineCpus))),
    machine_cpu_added_busy_pct: stats(rs.map((r, i) => 100 * (r.busyMachineCpus - base[i].busyMachineCpus))),
    // the parked vCPU's exits per second, against the same pair's nothing-attached run
    ...(STORM ? { storm_exit_rate_change_pct: stats(rs.map((r, i) => 100 * (r.stormExitRate / base[i].stormExitRate - 1))), machine_cpu_added_storm_pct: stats(rs.map((r, i) => 100 * (r.stormMachineCpus - base[i].stormMachineCpus))) } : {}),
  };
}
const fmt = (s) => `${s.median >= 0 ? '+' : ''}${s.median.toFixed(2)} (${s.min.toFixed(2)}…${s.max.toFixed(2)})`;
console.log(`\nobserver effect, ${PAIRS} pair(s), ${WINDOW_S} s windows, --on ${on}, accel ${base[0].accel}; nothing attached: loop ${stats(base.map((r) => r.loopRate)).median}/s, idle QEMU ${stats(base.map((r) => r.idleQemuPct)).median} % of a CPU`);
console.log(`configuration    loop rate change %        idle QEMU CPU added %     ${STORM ? 'storm exit rate change %  ' : ''}machine CPU added % (idle / busy${STORM ? ' / storm' : ''} window)`);
for (const [name, c] of Object.entries(configs)) {
  const storm = STORM ? `${fmt(c.storm_exit_rate_change_pct).padEnd(25)} ` : '';
  console.log(`${name.padEnd(16)} ${fmt(c.loop_rate_change_pct).padEnd(25)} ${fmt(c.idle_qemu_cpu_added_pct).padEnd(25)} ${storm}${fmt(c.machine_cpu_added_idle_pct)} / ${fmt(c.machine_cpu_added_busy_pct)}${STORM ? ` / ${fmt(c.machine_cpu_added_storm_pct)}` : ''}${c.not_attached ? `  [not attached here: ${c.not_attached.join('; ')}]` : ''}`);
}
for (const [c, why] of Object.entries(notAttachable)) console.log(`${c.padEnd(16)} not attached here: ${why}`);
console.log(JSON.stringify({ on, accel: base[0].accel, pairs: PAIRS, window_s: WINDOW_S, not_attachable: notAttachable, baseline: { loop_rate: stats(base.map((r) => r.loopRate)), idle_qemu_cpu_pct: stats(base.map((r) => r.idleQemuPct)), ...(STORM ? { storm_exit_rate: stats(base.map((r) => r.stormExitRate)) } : {}) }, configs }));
