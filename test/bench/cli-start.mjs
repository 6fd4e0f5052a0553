#!/usr/bin/env node
// How long kvmlab takes to start: wall time of `node -e 0` (the floor no command can beat) and of the
// commands a person types most, each run N times, interleaved so drift in the host's load spreads
// over all of them. Run from anywhere after `npm run build`:
//   node test/bench/cli-start.mjs [N=15] [--smoke]
// --smoke: one run of each (numbers not meant to be read), so CI keeps this script working.
// Prints min/median/max per command in ms; the last line is one JSON object of the medians.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { median } from './measure.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = `${root}dist/cli.js`;
const smoke = process.argv.includes('--smoke');
const n = smoke ? 1 : Number(process.argv[2] ?? 15);
if (!Number.isInteger(n) || n < 1) throw new Error(`N must be a whole number ≥ 1, got ${process.argv[2]}`);

const commands = {
  node_e_0: ['-e', '0'],
  version: [cli, '--version'],
  help: [cli, '--help'],
  validate: [cli, 'validate', 'experiments/smoke-cpu-hotplug.yaml'],
  list: [cli, 'list'],
};

const times = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
for (let i = 0; i < n; i++) {
  for (const [name, args] of Object.entries(commands)) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`${name} exited ${r.status}: ${r.stderr.toString().trim()}`);
    times[name].push(ms);
  }
}

const medians = {};
for (const [name, list] of Object.entries(times)) {
  const m = median(list);
  medians[`${name}_ms`] = Math.round(m);
  console.log(`${name.padEnd(9)} min ${Math.min(...list).toFixed(0).padStart(5)}  median ${m.toFixed(0).padStart(5)}  max ${Math.max(...list).toFixed(0).padStart(5)} ms (${n} runs)`);
}
console.log(JSON.stringify(medians));
