// What the benchmark scripts share: their --name value arguments, the median, and a command's own CPU.
import { spawnSync } from 'node:child_process';

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
