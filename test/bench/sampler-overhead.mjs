#!/usr/bin/env node
// The vcpu-cpu sampler's own CPU cost, side by side with pidstat sampling the same threads in the
// same run. Not a test: it prints numbers. Needs `npm run build` (it imports dist/) and pidstat
// (sysstat; host-scripts/setup.sh installs it).
//
//   node test/bench/sampler-overhead.mjs [--threads 64] [--duration 60] [--hz 10] [--pidstat-interval 1] [--smoke]
//
// --smoke: 4 threads for 2 s, without waiting for the processes to settle (numbers not meant to be read), so CI keeps this script working.
//
// A child node process runs worker threads that mostly sleep (each wakes every 100 ms); the first
// --threads of its threads are handed to kvmlab's VcpuCpuCollector (a ThreadMap built directly, every
// thread as a "vCPU") which samples /proc/PID/task/TID/{schedstat,stat} at --hz and appends to its raw
// CSV, exactly as in a run. In the same window `pidstat -t -p PID INTERVAL` samples the same process
// (all its threads: pidstat cannot pick threads). pidstat's interval is whole seconds (it refuses
// 0.1), so it takes 10x fewer samples than kvmlab at 10 Hz; per thread-sample costs are comparable.
//
// A third sampler in the same window is the floor under kvmlab's: a bare node process that preads the
// same two files of the same threads at the same rate through the same fs.readSync and does nothing
// with the bytes. kvmlab's cost above it is its own (parsing, records, windows); the floor's kernel
// share (stime) is procfs generating the text, which any sampler of these files pays.
//
// CPU time of each sampler: kvmlab's is this process's (main thread + libuv pool, where the async
// file reads run) from /proc/self/task/*/schedstat (ns) and /proc/self/stat (ticks), over the window
// only; pidstat's and the floor's from /proc/<its pid>/schedstat and stat just before it is stopped.
// The user/kernel split is from stat's utime and stime (ticks, 10 ms each: read it as approximate).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { arg } from './measure.mjs';

const root = new URL('../../', import.meta.url);
const dist = new URL('dist/collect/vcpu-cpu.js', root);
if (!fs.existsSync(dist)) {
  console.error(`missing ${dist.pathname}: run "npm run build" first`);
  process.exit(2);
}
const { VcpuCpuCollector } = await import(dist.href);
const { RealHostView } = await import(new URL('dist/backend/qemu/host-view.js', root).href);
const { realClock } = await import(new URL('dist/backend/clock.js', root).href);
const { parseSchedstat, parseTaskStat } = await import(new URL('dist/formats/procfs.js', root).href);

const args = process.argv.slice(2);
if (args.includes('-h') || args.includes('--help')) {
  console.log('node test/bench/sampler-overhead.mjs [--threads 64] [--duration 60] [--hz 10] [--pidstat-interval 1] [--smoke]');
  process.exit(0);
}
const smoke = args.includes('--smoke');
const nThreads = Number(arg('threads', smoke ? 4 : 64));
const durationS = Number(arg('duration', smoke ? 2 : 60));
const hz = Number(arg('hz', 10));
const pidstatInterval = Number(arg('pidstat-interval', 1));
if (!Number.isInteger(pidstatInterval) || pidstatInterval < 1) {
  console.error('--pidstat-interval: pidstat takes whole seconds (>= 1)');
  process.exit(2);
}
const pidstatBin = ['/usr/bin/pidstat', '/bin/pidstat'].find((p) => fs.existsSync(p));

const TICK = 100; // USER_HZ
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const schedNs = (file) => parseSchedstat(fs.readFileSync(file)).runNs;
/** utime and stime, in ticks. */
const statTicks = (file) => {
  const s = parseTaskStat(fs.readFileSync(file, 'utf8'));
  return { user: s.utimeTicks, kernel: s.stimeTicks };
};
/** This process's CPU, in all and by thread kind: the main thread (the sampler's JS and its reads), libuv's pool, V8's helpers. */
const selfCpu = () => {
  let ns = 0;
  const byKind = {};
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      const t = schedNs(`/proc/self/task/${tid}/schedstat`);
      ns += t;
      const comm = fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      const kind = Number(tid) === process.pid ? 'main thread' : /^libuv-worker/.test(comm) ? 'libuv pool' : /^V8|^DelayedTask|^node$/.test(comm) ? 'V8 helpers' : comm;
      byKind[kind] = (byKind[kind] ?? 0) + t;
    } catch {
      // thread gone
    }
  }
  return { ns, ticks: statTicks('/proc/self/stat'), byKind };
};
const procCpu = (pid) => {
  let ns = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) ns += schedNs(`/proc/${pid}/task/${tid}/schedstat`);
  return { ns, ticks: statTicks(`/proc/${pid}/stat`) };
};
const stopProc = async (proc, signal) => {
  const cpu = procCpu(proc.pid);
  proc.kill(signal);
  await new Promise((r) => proc.on('exit', r));
  return cpu;
};

// ---- the sampled process: worker threads that mostly sleep
const workers = Math.max(1, nThreads - 1);
const child = spawn(process.execPath, ['-e', `
  const { Worker } = require('worker_threads');
  for (let i = 0; i < ${workers}; i++) new Worker('setInterval(() => {}, 100)', { eval: true, resourceLimits: { maxOldGenerationSizeMb: 16 } });
  setInterval(() => {}, 100);
`], { stdio: 'ignore' });
const cleanup = () => child.kill('SIGKILL');
process.on('exit', cleanup);
for (let i = 0; i < 100; i++) {
  await sleep(100);
  if (fs.readdirSync(`/proc/${child.pid}/task`).length >= nThreads) break;
}
await sleep(500);
const tids = fs.readdirSync(`/proc/${child.pid}/task`).map(Number).sort((a, b) => a - b).slice(0, nThreads);
const allThreads = fs.readdirSync(`/proc/${child.pid}/task`).length;
if (tids.length < nThreads) console.warn(`only ${tids.length} threads came up (asked for ${nThreads})`);

// ---- kvmlab's sampler, as in a run
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmlab-sampler-bench-'));
const host = new RealHostView(); // the QEMU backend's view of the host, as in a real run
const map = { pid: child.pid, vcpus: tids.map((tid, index) => ({ index, tid, qomPath: '', props: {} })), others: [] };
const collector = new VcpuCpuCollector(1000 / hz);

// ---- the floor: the same preads, nothing done with them
const floorScript = `
  const fs = require('fs');
  const [pid, hz, ...tids] = process.argv.slice(1).map(Number);
  const fds = tids.flatMap((t) => ['schedstat', 'stat'].map((f) => fs.openSync('/proc/' + pid + '/task/' + t + '/' + f, 'r')));
  const buf = Buffer.allocUnsafe(4096);
  let sweeps = 0;
  process.on('SIGUSR2', () => setInterval(() => { for (const fd of fds) fs.readSync(fd, buf, 0, buf.length, 0); sweeps++; }, 1000 / hz));
  process.on('SIGTERM', () => { console.log(sweeps); process.exit(0); });
  setInterval(() => {}, 1 << 30); // alive until told to start
  console.log('ready');
`;
const floor = spawn(process.execPath, ['-e', floorScript, String(child.pid), String(hz), ...tids.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] });
let floorOut = '';
floor.stdout.on('data', (d) => (floorOut += d));
while (!floorOut.includes('ready\n')) await sleep(20);

// ---- both node processes settle before the window. V8 collects a new process's start-up garbage
// some 5-10 s after it starts (37 ms of CPU in one burst, measured here), which would land in the
// window and be charged to the sampler: a run's sampler lives in a process long past its start. So
// the window opens once both have lived 12 s and then idled 2 s at under 1 ms of CPU each (at most
// 30 s more); what they then cost idle is printed, to read the figures against.
const floorBorn = Date.now();
let idle = { self: NaN, floor: NaN };
if (!smoke) {
  while (Date.now() - floorBorn < 12_000) await sleep(500);
  for (let i = 0; i < 15; i++) {
    const a = selfCpu().ns;
    const f = procCpu(floor.pid).ns;
    await sleep(2000);
    idle = { self: (selfCpu().ns - a) / 2e6, floor: (procCpu(floor.pid).ns - f) / 2e6 };
    if (idle.self < 0.5 && idle.floor < 0.5) break;
  }
  console.log(`settled: idle, this process used ${idle.self.toFixed(2)} and the floor's ${idle.floor.toFixed(2)} ms of CPU a second`);
}

// ---- pidstat on the same process, from the window's start
// Its output goes straight to a file, counted once it is stopped: read as it came, pidstat's lines
// would be parsed in this process, inside kvmlab's figure.
let pidstat;
const pidstatOut = path.join(dir, 'pidstat.out');
if (pidstatBin) {
  const out = fs.openSync(pidstatOut, 'w');
  pidstat = spawn(pidstatBin, ['-t', '-p', String(child.pid), String(pidstatInterval)], { stdio: ['ignore', out, 'ignore'], env: { ...process.env, LC_ALL: 'C' } });
  fs.closeSync(out);
} else console.warn('pidstat not found (apt-get install sysstat): kvmlab only');

console.log(`sampling ${tids.length} of ${allThreads} threads of pid ${child.pid} for ${durationS} s: kvmlab at ${hz} Hz, pidstat -t every ${pidstatInterval} s (${os.cpus().length} CPUs, node ${process.version})`);
const t0 = Date.now();
const floor0 = procCpu(floor.pid);
floor.kill('SIGUSR2');
const self0 = selfCpu();
await collector.start({ host, clock: realClock, vm: { pid: child.pid }, threads: () => map, dir, emit: () => undefined });
await sleep(durationS * 1000);
await collector.stop();
const self1 = selfCpu();
const wallS = (Date.now() - t0) / 1000;
const floor1 = await stopProc(floor, 'SIGTERM');
const floorSweeps = Number(floorOut.slice(floorOut.indexOf('ready\n') + 6).trim());
const floorSamples = floorSweeps * tids.length;
const floorCpu = { ns: floor1.ns - floor0.ns, ticks: { user: floor1.ticks.user - floor0.ticks.user, kernel: floor1.ticks.kernel - floor0.ticks.kernel } };
const pid1 = pidstat ? await stopProc(pidstat, 'SIGINT') : undefined;
const pidstatLines = pid1 ? fs.readFileSync(pidstatOut, 'utf8').split('\n').filter((l) => /^\d\d:\d\d:\d\d\s+\d+\s+(\d+|-)\s+(\d+|-)\s/.test(l)).length : 0;
const csvLines = fs.readFileSync(path.join(dir, 'vcpu-cpu.csv'), 'utf8').split('\n').filter((l) => l && !l.startsWith('t,')).length;
fs.rmSync(dir, { recursive: true, force: true });
cleanup();

const row = (name, cpu, samplesLabel, threadSamples) => {
  const s = cpu.ns / 1e9;
  return {
    sampler: name,
    'CPU s (schedstat)': s.toFixed(3),
    'CPU s (stat ticks)': ((cpu.ticks.user + cpu.ticks.kernel) / TICK).toFixed(2),
    'kernel share': `${((100 * cpu.ticks.kernel) / Math.max(1, cpu.ticks.user + cpu.ticks.kernel)).toFixed(0)} %`,
    'CPU % of one CPU': ((s / wallS) * 100).toFixed(3),
    samples: samplesLabel,
    'thread-samples': threadSamples,
    'µs per thread-sample': threadSamples ? ((s * 1e6) / threadSamples).toFixed(2) : '-',
  };
};
const kv = { ns: self1.ns - self0.ns, ticks: { user: self1.ticks.user - self0.ticks.user, kernel: self1.ticks.kernel - self0.ticks.kernel } };
const rows = [row(`kvmlab vcpu-cpu ${hz} Hz`, kv, `${Math.round(csvLines / Math.max(1, tids.length))} x ${tids.length} threads`, csvLines)];
rows.push(row(`bare preads ${hz} Hz (floor)`, floorCpu, `${floorSweeps} x ${tids.length} threads`, floorSamples));
if (pid1) rows.push(row(`pidstat -t ${pidstatInterval} s`, pid1, `${Math.round(pidstatLines / Math.max(1, allThreads + 1))} x ${allThreads} threads`, pidstatLines));
console.table(rows);
console.log(`wall ${wallS.toFixed(1)} s. kvmlab's figure includes this whole node process (event loop, timers, libuv pool); pidstat's is the pidstat process.`);
const parts = Object.fromEntries(Object.keys(self1.byKind).map((k) => [k, ((self1.byKind[k] - (self0.byKind[k] ?? 0)) / 1e3 / Math.max(1, csvLines)).toFixed(2)]));
console.log(`kvmlab's µs per thread-sample by thread: ${Object.entries(parts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
const perSample = (cpu, n) => (n ? Number(((cpu.ns / 1e3) / n).toFixed(2)) : null);
console.log(
  JSON.stringify({
    smoke,
    threads: tids.length,
    hz,
    wall_s: Number(wallS.toFixed(1)),
    kvmlab_cpu_pct: Number(((kv.ns / 1e9 / wallS) * 100).toFixed(3)),
    kvmlab_us_per_thread_sample: perSample(kv, csvLines),
    kvmlab_us_by_thread: Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, Number(v)])),
    kvmlab_kernel_share_pct: Number(((100 * kv.ticks.kernel) / Math.max(1, kv.ticks.user + kv.ticks.kernel)).toFixed(0)),
    floor_us_per_thread_sample: perSample(floorCpu, floorSamples),
    floor_kernel_share_pct: Number(((100 * floorCpu.ticks.kernel) / Math.max(1, floorCpu.ticks.user + floorCpu.ticks.kernel)).toFixed(0)),
    pidstat_cpu_pct: pid1 ? Number(((pid1.ns / 1e9 / wallS) * 100).toFixed(3)) : null,
    pidstat_us_per_thread_sample: pid1 ? perSample(pid1, pidstatLines) : null,
    idle_ms_per_s: { kvmlab: Number(idle.self.toFixed(2)), floor: Number(idle.floor.toFixed(2)) },
  }),
);
