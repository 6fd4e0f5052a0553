// Shared by the tests that run real QEMU: what the host must have (or the reason to skip), running
// the built CLI, and finding QEMU processes a run left behind.
import { access, constants, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { findExecutable } from '../../src/backend/probe.js';
import { RealHostView } from '../../src/backend/qemu/host-view.js';
import { imagesDir, IMAGE_FILES } from '../../src/backend/qemu/image.js';
import { cleanupHost } from '../../src/host/journal.js';
import { SummarySchema, type Summary } from '../../src/results/summary.js';

export const ROOT = new URL('../../', import.meta.url).pathname;
/** The built CLI: `npm test` builds it first; run `npm run build` before running one test file alone. */
export const CLI = join(ROOT, 'dist/cli.js');

/** Why a real-QEMU test cannot run here, or undefined. */
export async function qemuSkipReason(arch: 'x86_64' | 'ppc64le'): Promise<string | undefined> {
  const bin = arch === 'x86_64' ? 'qemu-system-x86_64' : 'qemu-system-ppc64';
  if (!(await findExecutable(new RealHostView(), bin))) return `${bin} is not installed (bash host-scripts/setup.sh)`;
  const dir = join(imagesDir(), arch);
  for (const f of IMAGE_FILES) {
    if (!(await access(join(dir, f), constants.R_OK).then(() => true, () => false))) return `no ${arch} guest image in ${dir} (kvmlab image build --arch ${arch})`;
  }
  return undefined;
}

/** How long a CLI whose time ran out gets to tear down after SIGTERM before its process group is killed. */
const TEARDOWN_GRACE_MS = 20_000;

/**
 * Runs the CLI; `wrap` is a command it runs under (e.g. WITHOUT_KVM). It runs in a process group of
 * its own: when `timeoutMs` runs out it gets SIGTERM (its own teardown), then the whole group —
 * every QEMU it started, the nested host included — SIGKILL, and what its journal still records is
 * undone, so one test's hang never fails the tests after it on a held lock or a leftover QEMU.
 */
export async function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 600_000, wrap: string[] = []) {
  const [cmd, ...rest] = [...wrap, process.execPath, CLI, ...args];
  const child = execa(cmd!, rest, { cwd: ROOT, reject: false, env: { ...env, KVMLAB_DEBUG: '1' }, stdin: 'ignore', detached: true });
  const killGroup = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      // the group is gone
    }
  };
  let timedOut = false;
  let grace: NodeJS.Timeout | undefined;
  const limit = setTimeout(() => {
    timedOut = true;
    child.kill('SIGTERM');
    grace = setTimeout(() => killGroup('SIGKILL'), TEARDOWN_GRACE_MS);
  }, timeoutMs);
  const r = await child;
  clearTimeout(limit);
  clearTimeout(grace);
  if (!timedOut) return r;
  killGroup('SIGKILL');
  const cleaned = cleanupHost().notes;
  return { ...r, stderr: `${r.stderr}\n[test] kvmlab ${args.join(' ')} ran out of its ${timeoutMs / 1000} s: stopped, its process group killed${cleaned.length ? `; cleaned up: ${cleaned.join('; ')}` : ''}` };
}

/** Runs a command as on a host without /dev/kvm (a private mount namespace; root and unshare needed). */
export const WITHOUT_KVM = [join(ROOT, 'test/tcg/without-kvm.sh')];

/** Why WITHOUT_KVM cannot hide /dev/kvm here, or undefined. */
export async function withoutKvmSkipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root (a private mount namespace is needed to hide /dev/kvm)';
  if (!(await access('/dev/kvm').then(() => true, () => false))) return 'this host has no /dev/kvm: the run above already covers it';
  const r = await execa(WITHOUT_KVM[0]!, ['test', '!', '-e', '/dev/kvm'], { reject: false, stdin: 'ignore' });
  return r.exitCode === 0 ? undefined : `cannot hide /dev/kvm in a mount namespace: ${(r.stderr || r.shortMessage || 'failed').split('\n')[0]}`;
}

/** PIDs of running qemu-system processes whose command line contains `needle`. */
export async function qemuProcesses(needle: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const cmd = await readFile(`/proc/${d}/cmdline`, 'utf8').catch(() => '');
    const argv = cmd.split('\0');
    if (argv[0]?.includes('qemu-system') && cmd.includes(needle)) out.push(Number(d));
  }
  return out;
}

/** The run's summary.json; when the run wrote none, the error carries what the CLI said instead. */
export async function readSummary(out: string, run?: { exitCode?: number; stderr: string }): Promise<Summary> {
  const text = await readFile(join(out, 'summary.json'), 'utf8').catch((e: Error) => {
    if (!run) throw e;
    throw new Error(`${e.message}\nkvmlab exited ${run.exitCode}; the last of its stderr:\n${run.stderr.split('\n').slice(-25).join('\n')}`);
  });
  return SummarySchema.parse(JSON.parse(text));
}
