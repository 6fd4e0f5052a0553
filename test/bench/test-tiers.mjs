#!/usr/bin/env node
// How long the tests without hardware take (unit, mock, report and hostile: vitest's 'without
// hardware' project), wall time and the CPU of everything they started (vitest, its workers, every
// kvmlab process a test spawned), N times. Not a test: it prints numbers. Run after `npm run build`:
//   node test/bench/test-tiers.mjs [--n 1] [--root DIR] [--smoke]
// --smoke: one file of the tier (test/unit/matrix.test.ts; numbers not meant to be read), so CI keeps
// this script working.
// --root runs another checkout's tests and build (e.g. an older commit in a git worktree, built, its
// node_modules linked) for a before/after on one machine; alternate the two, since this host's speed
// drifts by more than the difference between builds.
// The last line is one JSON object: {"root":…,"runs":N,"wall_s":[…],"cpu_s":[…],"wall_s_median":…}.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arg, median, timedBash } from './measure.mjs';

const n = Number(arg('n', '1'));
const root = resolve(arg('root', fileURLToPath(new URL('../..', import.meta.url))));
if (!Number.isInteger(n) || n < 1) throw new Error(`--n must be a whole number ≥ 1, got ${arg('n')}`);

const walls = [];
const cpus = [];
for (let i = 1; i <= n; i++) {
  const only = process.argv.includes('--smoke') ? ' test/unit/matrix.test.ts' : '';
  const r = timedBash(`npx vitest run --config test/vitest.config.ts --project "without hardware"${only} >/tmp/kvmlab-bench-tiers.log 2>&1`, [], { cwd: root });
  if (r.status !== 0) throw new Error(`run ${i} exited ${r.status}: see /tmp/kvmlab-bench-tiers.log`);
  walls.push(Number(r.wall.toFixed(2)));
  cpus.push(Number(r.cpu.toFixed(2)));
  console.log(`run ${i}: wall ${r.wall.toFixed(2)} s, cpu ${r.cpu.toFixed(2)} s`);
}
console.log(JSON.stringify({ root, runs: n, wall_s: walls, cpu_s: cpus, wall_s_median: median(walls) }));
