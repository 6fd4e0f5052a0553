#!/usr/bin/env node
// The nested tier (test/kvm/nested.test.ts: every x86 list-thread experiment on real KVM in the KVM
// host kvmlab boots under TCG, and a deliberately wedged one), N times in a row: each run's wall
// time and status, and per experiment run in it the nested host's timings (nested-host.json: L1
// ready, kvmlab started in L1, L1 gone; seconds from L1's launch) and each L2 guest's boot
// (guest.ready_s: launch to the first SSH command). Not a test: it prints numbers. After `npm run build`:
//   node test/bench/nested-tier.mjs [--n 3] [--smoke]
// --smoke runs only the tier's test that boots nothing (seconds), so CI keeps this script working.
// The last line is one JSON object: {"runs":[{"wall_s","status","experiments":[{name,l1_ready_s,…}]}],…}.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arg, median, timedBash } from './measure.mjs';

const smoke = process.argv.includes('--smoke');
const n = Number(arg('n', smoke ? '1' : '3'));
if (!Number.isInteger(n) || n < 1) throw new Error(`--n must be a whole number ≥ 1, got ${arg('n')}`);
const root = fileURLToPath(new URL('../..', import.meta.url));

/** Every results directory the tier kept under dir (those with nested-host.json), with its timings and L2 boots. */
function experiments(dir) {
  const out = [];
  for (const top of readdirSync(dir)) {
    for (const name of readdirSync(join(dir, top))) {
      const res = join(dir, top, name);
      if (!existsSync(join(res, 'nested-host.json'))) continue;
      const host = JSON.parse(readFileSync(join(res, 'nested-host.json'), 'utf8'));
      const csv = existsSync(join(res, 'metrics.csv')) ? readFileSync(join(res, 'metrics.csv'), 'utf8') : '';
      const boots = csv.split('\n').filter((l) => l.includes(',guest.ready_s,')).map((l) => Number(l.split(',').at(-2)));
      out.push({ name, l1_ready_s: host.timings?.readyS ?? null, l1_kvmlab_started_s: host.timings?.jobStartedS ?? null, l1_gone_s: host.timings?.exitedS ?? null, l2_boot_s: boots });
    }
  }
  return out;
}

const runs = [];
for (let i = 1; i <= n; i++) {
  const keep = mkdtempSync(join(tmpdir(), 'kvmlab-bench-nested-'));
  const filter = smoke ? " -t 'without its image'" : '';
  const r = timedBash(`KVMLAB_TEST_KEEP=${keep} npx vitest run --config test/vitest.config.ts test/kvm/nested.test.ts${filter} >/tmp/kvmlab-bench-nested-${i}.log 2>&1`, [], { cwd: root });
  const exps = experiments(keep);
  rmSync(keep, { recursive: true, force: true });
  runs.push({ wall_s: Number(r.wall.toFixed(1)), status: r.status, experiments: exps });
  console.log(`run ${i}/${n}: ${r.status === 0 ? 'green' : `RED (exit ${r.status}, see /tmp/kvmlab-bench-nested-${i}.log)`} in ${r.wall.toFixed(1)} s`);
  for (const e of exps) console.log(`  ${e.name}: L1 ready ${e.l1_ready_s} s, kvmlab in L1 from ${e.l1_kvmlab_started_s} s, L1 gone ${e.l1_gone_s} s; L2 boots ${e.l2_boot_s.map((b) => `${b.toFixed(1)} s`).join(', ') || 'none'}`);
}
const l2 = runs.flatMap((r) => r.experiments.flatMap((e) => e.l2_boot_s));
const l1 = runs.flatMap((r) => r.experiments.map((e) => e.l1_ready_s)).filter((x) => x !== null);
console.log(JSON.stringify({ smoke, runs, wall_s_max: Math.max(...runs.map((r) => r.wall_s)), l1_ready_s_median: l1.length ? median(l1) : null, l2_boot_s_median: l2.length ? median(l2) : null }));
if (runs.some((r) => r.status !== 0)) process.exitCode = 1;
