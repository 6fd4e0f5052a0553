// What the benchmark scripts share: their --name value arguments, the median and spread, a seeded
// shuffle, a command's own CPU, and a kvmlab run of an experiment they write, read back.
import { execFileSync, spawnSync } from 'node:child_process';

const root = new URL('../../', import.meta.url);

/** The value after --name on the command line, or the fallback. */
export function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Median, min and max, to four decimals: what a bench prints of a figure taken over pairs or rounds. */
export function stats(xs) {
  const r = (x) => Number(x.toFixed(4));
  return { median: r(median(xs)), min: r(Math.min(...xs)), max: r(Math.max(...xs)) };
}

/** A deterministic shuffle (mulberry32 seeded by `seed`), so a rerun visits configurations in the same order. */
export function shuffled(list, seed) {
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const l = [...list];
  for (let i = l.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [l[i], l[j]] = [l[j], l[i]];
  }
  return l;
}

/**
 * Runs a bash command line, with $1… set to args: its exit status, wall seconds and the CPU seconds
 * (user + system) of everything it started, from bash's `times` afterwards, as the kernel accounted them.
 */
export function timedBash(script, args = [], options = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('bash', ['-c', `${script}; rc=$?; times; exit $rc`, 'bench', ...args], { encoding: 'utf8', ...options });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const child = r.stdout.trim().split('\n').at(-1)?.split(/\s+/) ?? [];
  const seconds = (t) => {
    const m = /^(\d+)m([\d.]+)s$/.exec(t ?? '');
    return m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
  };
  return { status: r.status, wall, cpu: seconds(child[0]) + seconds(child[1]) };
}

/**
 * `kvmlab run FILE --on ON --allow-host-commands --out OUT --force` through dist/'s CLI (`quiet`: with
 * -q and its stdout dropped; `stderr`: inherited, or kept for the error), then its results read back
 * by kvmlab's own reader (report/load.ts loadResults): the run's exit status and what it wrote. A run
 * that failed keeps its results and is returned; one that left none throws, saying why.
 */
export async function runKvmlab(file, { on, out, quiet = true, stderr = 'inherit' }) {
  let status = 0;
  let said = '';
  try {
    execFileSync(process.execPath, [new URL('dist/cli.js', root).pathname, 'run', file, '--on', on, '--allow-host-commands', '--out', out, '--force', ...(quiet ? ['-q'] : [])], { stdio: ['ignore', quiet ? 'ignore' : 'inherit', stderr] });
  } catch (e) {
    status = e.status ?? 1;
    said = String(e.stderr ?? '').trim();
  }
  const { loadResults } = await import(new URL('dist/report/load.js', root).href);
  try {
    return { status, results: await loadResults(out) };
  } catch (e) {
    throw new Error(`kvmlab run exited ${status} with no results (${e.message})${said ? `: ${said}` : ''}`);
  }
}

/** A step's record by name in a repetition read back by runKvmlab (results.reps[i]). */
export const stepOf = (rep, name) => rep.steps.find((s) => s.step === name);

/** What a step's host: command printed. */
export const stepStdout = (rep, name) => String(stepOf(rep, name)?.detail?.stdout ?? '');

/** `name value` lines, as numbers by name: what the benches' mark steps print. */
export const marks = (text) => Object.fromEntries(text.trim().split('\n').map((l) => l.split(' ')).map(([k, v]) => [k, Number(v)]));
