#!/usr/bin/env node
// Launch → guest-ready time of kvmlab's x86_64 image under TCG, through the QEMU backend as the
// runner uses it (launch, then waitReady: console "kvmlab-guest: ready", then an SSH command).
//   npm run build && node test/bench/boot-time.mjs [N=5] [--cpus 2] [--accel tcg] [--smoke]
// --smoke: one boot (the number not meant to be read), so CI keeps this script working.
// Prints each run and min/median/max in seconds, the last line JSON. Reference: 6.8 s by hand on a
// 2-core build host with the bzImage kernel; 2.1-2.6 s with the PVH vmlinux (2026-12-04).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuBackend } from '../../dist/backend/qemu/qemu-backend.js';
import { generateClientKey } from '../../dist/backend/ssh-guest.js';
import { Guest, Knobs } from '../../dist/experiment/schema.js';
import { planVm } from '../../dist/plan/vm.js';
import { arg, median } from './measure.mjs';

const args = process.argv.slice(2);
const positional = args.filter((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
const n = args.includes('--smoke') ? 1 : Number(positional[0] ?? 5);
if (!Number.isInteger(n) || n < 1) throw new Error(`N must be a whole number ≥ 1, got ${positional[0]}`);
const cpus = Number(arg('cpus', '2'));
const accel = arg('accel', 'tcg');

const backend = new QemuBackend({ arch: 'x86_64' });
const guest = Guest.parse({ arch: 'x86_64', cpus, maxcpus: cpus + 2, memory: '512M' });
const plan = planVm(guest, Knobs.parse({}), accel, await backend.probe());
const times = [];
for (let i = 1; i <= n; i++) {
  const dir = await mkdtemp(join(tmpdir(), 'kvmlab-bench-boot-'));
  const t0 = Date.now();
  const vm = await backend.launch({ name: `kvmlab-bench-boot-${process.pid}-${i}`, guest, plan, runDir: dir, logDir: dir, clientKey: generateClientKey() });
  const launched = Date.now();
  try {
    await vm.waitReady(t0 + 120_000);
    const s = (Date.now() - t0) / 1000;
    times.push(s);
    console.log(`run ${i}/${n}: ready after ${s.toFixed(2)} s (QMP up after ${((launched - t0) / 1000).toFixed(2)} s)`);
  } finally {
    await vm.shutdown();
    await rm(dir, { recursive: true, force: true });
  }
}
console.log(`x86_64 ${accel} -smp ${cpus}: launch→ready over ${times.length} runs: min ${Math.min(...times).toFixed(2)} s, median ${median(times).toFixed(2)} s, max ${Math.max(...times).toFixed(2)} s`);
console.log(JSON.stringify({ accel, cpus, runs: times.length, ready_s: times.map((t) => Number(t.toFixed(2))), ready_s_median: Number(median(times).toFixed(2)) }));
