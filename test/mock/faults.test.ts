// Faults, each ending the variant as error with a reason, keeping what was collected, cleaning up,
// and going on to the next variant. The mock commits the fault; the harness code is the real one.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MockBackend, type MockFaults } from '../../src/backend/mock/mock-backend.js';
import { createProgress } from '../../src/run/progress.js';
import { runExperiment, type RunOutcome } from '../../src/run/runner.js';
import { parseExperiment } from '../../src/experiment/load.js';

const tmp = mkdtempSync(join(tmpdir(), 'kvmlab-faults-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const text = (steps: string, extra = '') => `name: faults
description: two variants, so a fault in one must not stop the other
guest: { arch: x86_64, cpus: 2, maxcpus: 3, ready_timeout: 3s }
matrix: { disable_exits: [[], [hlt]] }
collect: { vcpu-cpu: { interval: 100ms } }
steps:
${steps}
${extra}`;

const STEPS = `  - { name: first, guest: uname -r }
  - { name: window, sample: 1500ms }
  - { name: last, guest: "cat /sys/devices/system/cpu/online" }`;

async function run(name: string, faults: MockFaults, steps = STEPS, onStep?: (out: string, step: string) => void): Promise<RunOutcome & { backend: MockBackend }> {
  const out = join(tmp, name);
  const backend = new MockBackend(faults);
  const progress = createProgress(process.stderr, true);
  if (onStep) progress.step = (_i, _n, step) => onStep(out, step);
  const loaded = { file: `${name}.yaml`, text: text(steps), experiment: parseExperiment(text(steps), `${name}.yaml`) };
  const outcome = await runExperiment({ loaded, backend, accel: 'auto', out, allowHostCommands: false, progress, signal: new AbortController().signal });
  return { ...outcome, backend };
}

function expectAllErrored(o: RunOutcome, reason: RegExp): void {
  expect(o.summary.variants.map((v) => v.status)).toEqual(['error', 'error']); // the second variant ran too
  for (const v of o.summary.variants) {
    expect(v.repetitions).toHaveLength(1);
    expect(v.reason).toMatch(reason);
  }
}

function expectTornDown(b: MockBackend): void {
  // every simulated QEMU was stopped: the simulated host has no process left
  expect((b.host as unknown as { machines: Map<number, unknown> }).machines.size).toBe(0);
}

describe('faults', () => {
  it('guest never becomes ready', async () => {
    const o = await run('never-ready', { neverReady: true });
    expectAllErrored(o, /guest did not answer SSH on 127\.0\.0\.1:\d+ before the deadline/);
    expectTornDown(o.backend);
  });

  it('QEMU dies in the middle of a step', async () => {
    const o = await run('qemu-dies', { dieAfterMs: 1200 });
    expectAllErrored(o, /QEMU exited: killed by signal 11 \(simulated QEMU crash\)/);
    // what was collected before the crash is kept
    expect(o.rows.some((r) => r.step === 'first' && r.metric === 'guest.exit_status')).toBe(true);
    expectTornDown(o.backend);
  });

  it('the QMP socket closes', async () => {
    const o = await run('qmp-closes', { closeQmpAfterMs: 1200 });
    expectAllErrored(o, /QMP connection closed/);
    expectTornDown(o.backend);
  });

  it('SSH drops mid-command', async () => {
    const o = await run('ssh-drops', { dropSshOn: 'cat /sys' });
    expectAllErrored(o, /SSH connection to the guest dropped while running: cat \/sys\/devices\/system\/cpu\/online/);
    expect(o.rows.some((r) => r.step === 'window' && r.metric === 'vcpu.cpu_pct')).toBe(true);
    expectTornDown(o.backend);
  });

  it('device_del never completes: an expected deletion is an error, an open outcome is recorded', async () => {
    const steps = `  - { hotplug: { id: cpu2 } }
  - { online: 2 }
  - { name: unplug, unplug: { id: cpu2, expect: removed }, timeout: 1s }`;
    const o = await run('unplug-hangs', { ignoreUnplug: true }, steps);
    expectAllErrored(o, /unplug of cpu2: expected removed, got no DEVICE_DELETED and no completed eject within 1000 ms/);
    expect(o.rows.filter((r) => r.metric === 'unplug.deleted').map((r) => r.value)).toEqual([0, 0]);
    const open = await run('unplug-open', { ignoreUnplug: true }, steps.replace('expect: removed', 'expect: any'));
    // It ran to the end, and its file claims nothing: unchecked, never passed.
    expect(open.summary.variants.map((v) => v.status)).toEqual(['unchecked', 'unchecked']);
    const log = readFileSync(join(tmp, 'unplug-open/variants/disable_exits=none/rep-1/steps.jsonl'), 'utf8');
    expect(log).toMatch(/"outcome":"timeout"/);
  });

  it('a collector fails', async () => {
    const o = await run('collector-fails', { hostReadsFailAfterMs: 1000 });
    expectAllErrored(o, /collector vcpu-cpu failed at step (window|last): .*EIO/);
    expectTornDown(o.backend);
  });

  it('the results directory becomes unwritable', async () => {
    const o = await run('unwritable', {}, STEPS, (out, step) => {
      if (step !== 'window') return;
      // replace this variant's directory by a file: every later write into it fails (as root,
      // permission bits would not stop us)
      for (const v of ['disable_exits=none', 'disable_exits=hlt']) {
        const dir = join(out, 'variants', v, 'rep-1');
        if (existsSync(join(dir, 'steps.jsonl'))) {
          rmSync(dir, { recursive: true, force: true });
          writeFileSync(dir, 'not a directory');
        }
      }
    });
    expectAllErrored(o, /the results directory .* is not writable \(ENOTDIR/);
    expectTornDown(o.backend);
  });
});
