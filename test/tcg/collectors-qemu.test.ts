// Collectors on a real QEMU/TCG run: vcpu-cpu yields per-vCPU rows, tracefs (sched events) counts
// context switches of the QEMU threads; afterwards no kvmlab tracefs instance exists and the global
// tracing files are as before; and each step says what kvmlab's own watching cost.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCsv } from '../../src/model/metrics.js';
import { qemuProcesses, qemuSkipReason, runCli } from './qemu-helpers.js';

const TRACING = '/sys/kernel/tracing';
const skip = (await qemuSkipReason('x86_64')) ?? (process.getuid?.() !== 0 ? 'not root' : !existsSync(join(TRACING, 'instances')) ? `no tracefs instances/ at ${TRACING}` : undefined);
if (skip) console.warn(`collectors on real QEMU skipped: ${skip}`);

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'kvmlab-collect-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe.skipIf(skip !== undefined)('vcpu-cpu and tracefs under real QEMU/TCG', () => {
  it('per-vCPU rows and sched_switch counts for the QEMU threads, nothing left behind', async () => {
    const global = () => ['tracing_on', 'current_tracer', 'set_event', 'buffer_size_kb', 'events/enable'].map((f) => readFileSync(join(TRACING, f), 'utf8'));
    const before = global();
    const file = join(tmp, 'collect.yaml');
    await writeFile(
      file,
      `name: collect-real\ndescription: collectors on a real guest\nguest: { arch: x86_64, cpus: 2, ready_timeout: 120s }\ncollect:\n  vcpu-cpu: { interval: 100ms }\n  tracefs: { events: [sched:sched_switch, sched:sched_wakeup] }\nsteps:\n  - { name: load, guest: "kvmlab-load busy 1 3" }\n  - { name: busy, sample: 3s }\n`,
    );
    const out = join(tmp, 'out');
    const r = await runCli(['run', file, '--backend', 'qemu', '--accel', 'tcg', '--out', out]);
    expect(r.exitCode, r.stderr).toBe(0);
    const { rows } = parseCsv(readFileSync(join(out, 'metrics.csv'), 'utf8'));
    const cpu = rows.filter((x) => x.step === 'busy' && x.metric === 'vcpu.cpu_pct');
    expect(cpu.map((x) => x.entity).sort()).toEqual(['emulator', 'vcpu0', 'vcpu1']);
    // the busy loop runs on guest CPU 1: under TCG its vCPU thread is busy on the host
    expect(cpu.find((x) => x.entity === 'vcpu1')!.value).toBeGreaterThan(50);
    const switches = rows.filter((x) => x.step === 'busy' && x.metric === 'trace.switches_out');
    expect(switches.map((x) => x.entity)).toEqual(expect.arrayContaining(['vcpu0', 'vcpu1']));
    expect(switches.reduce((s, x) => s + x.value, 0)).toBeGreaterThan(0);
    expect(rows.some((x) => x.metric === 'trace.events' && x.entity === 'sched_switch' && x.value > 0)).toBe(true);
    // what watching cost, per step: kvmlab's own CPU over the 3 s window, with the sampler at 10 Hz and
    // tracefs read at the step's end, is some but far from a CPU's worth (0.3-3 % seen on 2-core boxes)
    const cost = rows.find((x) => x.step === 'busy' && x.metric === 'observer.cpu_pct' && x.entity === 'kvmlab')!;
    expect(cost.value).toBeGreaterThan(0);
    expect(cost.value).toBeLessThan(50);
    expect(rows.filter((x) => x.metric === 'observer.cpu_s').map((x) => x.step)).toEqual(['load', 'busy']);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.variants[0].observer).toMatchObject({ maxCpuPct: expect.any(Number), medianCpuPct: expect.any(Number) });
    expect(readdirSync(join(TRACING, 'instances')).filter((n) => n.startsWith('kvmlab-'))).toEqual([]);
    expect(global()).toEqual(before);
    expect(await qemuProcesses('kvmlab-collect-real-')).toEqual([]);
  }, 300_000);
});
