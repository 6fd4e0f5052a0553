// kvmlab killed mid-run under real QEMU/TCG. SIGKILL leaves QEMU and a tracefs instance behind;
// `kvmlab cleanup` must then leave no QEMU, no instance, and the global tracing setup as it was.
// SIGINT must end the run within seconds with partial results on disk and the host restored.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, qemuProcesses, qemuSkipReason, ROOT, runCli } from './qemu-helpers.js';

const TRACING = '/sys/kernel/tracing';
const canTrace = process.getuid?.() === 0 && existsSync(join(TRACING, 'instances'));
const skip = await qemuSkipReason('x86_64');
if (skip) console.warn(`signal tests skipped: ${skip}`);
if (!skip && !canTrace) console.warn('signal tests run without the tracefs collector: not root or no tracefs instances/');

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'kvmlab-signals-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const globalTracing = () => ['tracing_on', 'current_tracer', 'set_event'].map((f) => (canTrace ? readFileSync(join(TRACING, f), 'utf8') : ''));
const ourInstances = () => (canTrace ? readdirSync(join(TRACING, 'instances')).filter((n) => n.startsWith('kvmlab-')) : []);

async function startRun(name: string) {
  const file = join(tmp, `${name}.yaml`);
  await writeFile(
    file,
    `name: ${name}\ndescription: a long sample window to be interrupted in\nguest: { arch: x86_64, cpus: 1, ready_timeout: 120s }\ncollect:\n  vcpu-cpu: {}\n${canTrace ? '  tracefs: { events: [sched:sched_switch] }\n' : ''}steps:\n  - { name: kernel, guest: uname -r }\n  - { name: long, sample: 120s }\n`,
  );
  const out = join(tmp, `${name}-out`);
  const state = join(tmp, `${name}-state`);
  const child = execa(process.execPath, [CLI, 'run', file, '--backend', 'qemu', '--accel', 'tcg', '--out', out], { cwd: ROOT, reject: false, env: { KVMLAB_STATE_DIR: state }, stdin: 'ignore' });
  // Wait until the run is inside the long window: the first step is logged.
  const steps = join(out, 'variants/default/rep-1/steps.jsonl');
  const deadline = Date.now() + 150_000;
  while (!(existsSync(steps) && readFileSync(steps, 'utf8').includes('"kernel"'))) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the run never reached its sample window: ${(await child).stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { child, out, state, name };
}

describe.skipIf(skip !== undefined)('signals under real QEMU/TCG', () => {
  it('SIGKILL mid-run, then kvmlab cleanup restores the host', async () => {
    const before = globalTracing();
    const { child, state, name } = await startRun('sigkill');
    child.kill('SIGKILL');
    await child;
    // kvmlab is gone; what it started is not
    expect((await qemuProcesses(`kvmlab-${name}-`)).length).toBe(1);
    if (canTrace) expect(ourInstances().length).toBeGreaterThan(0);
    expect(readFileSync(join(state, 'journal.jsonl'), 'utf8')).toMatch(/"kind":"process"/);
    // a new run refuses until cleanup
    const refused = await runCli(['run', 'experiments/smoke-cpu-hotplug.yaml', '--backend', 'qemu', '--accel', 'tcg', '--out', join(tmp, 'refused')], { KVMLAB_STATE_DIR: state });
    expect(refused.exitCode).toBe(3);
    expect(refused.stderr).toMatch(/run `kvmlab cleanup` first/);
    const c = await runCli(['cleanup', '--state-dir', state]);
    expect(c.exitCode, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/killed .*qemu-system-x86_64/);
    expect(await qemuProcesses(`kvmlab-${name}-`)).toEqual([]);
    expect(ourInstances()).toEqual([]);
    expect(globalTracing()).toEqual(before);
    expect(existsSync(join(state, 'journal.jsonl'))).toBe(false);
    expect(existsSync(join(state, 'lock'))).toBe(false);
  }, 300_000);

  it('SIGINT mid-run: exits within seconds, keeps partial results, restores the host', async () => {
    const before = globalTracing();
    const { child, out, state, name } = await startRun('sigint');
    const t0 = Date.now();
    child.kill('SIGINT');
    const r = await child;
    const took = Date.now() - t0;
    expect(took).toBeLessThan(15_000);
    expect(r.exitCode, r.stderr).toBe(130);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.interrupted).toBe(true);
    expect(summary.variants[0].reason).toMatch(/interrupted/);
    expect(readFileSync(join(out, 'metrics.csv'), 'utf8')).toMatch(/,kernel,guest,guest\.exit_status,0,/);
    expect(await qemuProcesses(`kvmlab-${name}-`)).toEqual([]);
    expect(ourInstances()).toEqual([]);
    expect(globalTracing()).toEqual(before);
    expect(existsSync(join(state, 'lock'))).toBe(false);
    console.warn(`SIGINT to exit: ${took} ms`);
  }, 300_000);
});
