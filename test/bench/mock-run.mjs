#!/usr/bin/env node
// How long a whole run on the mock backend takes, end to end as a person types it (results, report
// and plots included): `kvmlab run EXPERIMENT --backend mock --repeat R`, N times, wall time and the
// CPU the process used (user + sys, from the kernel's accounting of the child). Not a test: it prints
// numbers. Run after `npm run build`:
//   node test/bench/mock-run.mjs [--n 3] [--repeat 2] [--experiment experiments/idle-exit-policy.yaml] [--cli dist/cli.js]
// --cli runs another build (e.g. an older checkout's dist/cli.js) for a before/after on one machine.
// The last line is one JSON object: {"experiment":…,"repeat":R,"runs":N,"wall_s_median":…,"cpu_s_median":…}.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const n = Number(arg('n', '3'));
const repeat = arg('repeat', '2');
const experiment = resolve(root, arg('experiment', 'experiments/idle-exit-policy.yaml'));
const cli = resolve(root, arg('cli', 'dist/cli.js'));
if (!Number.isInteger(n) || n < 1) throw new Error(`--n must be a whole number ≥ 1, got ${arg('n')}`);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const walls = [];
const cpus = [];
for (let i = 1; i <= n; i++) {
  const out = mkdtempSync(join(tmpdir(), 'kvmlab-bench-mock-'));
  try {
    // bash's `times` after the child: its user and sys seconds, as the kernel accounted them
    const t0 = process.hrtime.bigint();
    const r = spawnSync('bash', ['-c', '"$@" >/dev/null 2>"$OUT/err"; rc=$?; times; exit $rc', 'bench', process.execPath, cli, 'run', experiment, '--backend', 'mock', '--repeat', repeat, '--out', join(out, 'r'), '-q'], { encoding: 'utf8', env: { ...process.env, OUT: out } });
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) throw new Error(`run ${i} exited ${r.status}: see ${out}/err`);
    const child = r.stdout.trim().split('\n')[1]?.split(/\s+/) ?? [];
    const seconds = (t) => {
      const m = /^(\d+)m([\d.]+)s$/.exec(t ?? '');
      return m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
    };
    const cpu = seconds(child[0]) + seconds(child[1]);
    walls.push(wall);
    cpus.push(cpu);
    console.log(`run ${i}: wall ${wall.toFixed(2)} s, cpu ${cpu.toFixed(2)} s`);
  } finally {
    if (walls.length === i) rmSync(out, { recursive: true, force: true });
  }
}
console.log(JSON.stringify({ experiment: experiment.replace(root, ''), repeat: Number(repeat), runs: n, wall_s_median: Number(median(walls).toFixed(2)), cpu_s_median: Number(median(cpus).toFixed(2)) }));
