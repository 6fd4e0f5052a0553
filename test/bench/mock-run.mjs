#!/usr/bin/env node
// How long a whole run on the mock backend takes, end to end as a person types it (results, report
// and plots included): `kvmlab run EXPERIMENT --backend mock --repeat R`, N times, wall time and the
// CPU the process used (user + sys, from the kernel's accounting of the child). Not a test: it prints
// numbers. Run after `npm run build`:
//   node test/bench/mock-run.mjs [--n 3] [--repeat 2] [--experiment experiments/idle-exit-policy.yaml] [--cli dist/cli.js] [--smoke]
// --smoke: one run, one repetition (numbers not meant to be read), so CI keeps this script working.
// --cli runs another build (e.g. an older checkout's dist/cli.js) for a before/after on one machine.
// The last line is one JSON object: {"experiment":…,"repeat":R,"runs":N,"wall_s_median":…,"cpu_s_median":…}.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arg, median, timedBash } from './measure.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const smoke = process.argv.includes('--smoke');
const n = Number(arg('n', smoke ? '1' : '3'));
const repeat = arg('repeat', smoke ? '1' : '2');
const experiment = resolve(root, arg('experiment', 'experiments/idle-exit-policy.yaml'));
const cli = resolve(root, arg('cli', 'dist/cli.js'));
if (!Number.isInteger(n) || n < 1) throw new Error(`--n must be a whole number ≥ 1, got ${arg('n')}`);

const walls = [];
const cpus = [];
for (let i = 1; i <= n; i++) {
  const out = mkdtempSync(join(tmpdir(), 'kvmlab-bench-mock-'));
  try {
    const r = timedBash('"$@" >/dev/null 2>"$OUT/err"', [process.execPath, cli, 'run', experiment, '--backend', 'mock', '--repeat', repeat, '--out', join(out, 'r'), '-q'], { env: { ...process.env, OUT: out } });
    if (r.status !== 0) throw new Error(`run ${i} exited ${r.status}: see ${out}/err`);
    walls.push(r.wall);
    cpus.push(r.cpu);
    console.log(`run ${i}: wall ${r.wall.toFixed(2)} s, cpu ${r.cpu.toFixed(2)} s`);
  } finally {
    if (walls.length === i) rmSync(out, { recursive: true, force: true });
  }
}
console.log(JSON.stringify({ experiment: experiment.replace(root, ''), repeat: Number(repeat), runs: n, wall_s_median: Number(median(walls).toFixed(2)), cpu_s_median: Number(median(cpus).toFixed(2)) }));
