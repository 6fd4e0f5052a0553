// The shipped list-thread experiments on this host with the real QEMU backend: the pseries one runs
// for real under TCG and its claims hold; the x86 ones run under KVM where this host can run them and
// are skipped, with reasons naming what is missing, where it cannot — not failed, not faked.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maskOf } from '../../src/model/exits.js';
import { loadExperiment } from '../../src/experiment/load.js';
import { expandMatrix } from '../../src/experiment/matrix.js';
import type { Experiment, Knobs } from '../../src/experiment/schema.js';
import { qemuProcesses, qemuSkipReason, readSummary, ROOT, runCli, WITHOUT_KVM, withoutKvmSkipReason } from './qemu-helpers.js';

const ppcSkip = await qemuSkipReason('ppc64le');
const x86Skip = await qemuSkipReason('x86_64');
if (ppcSkip) console.warn(`spapr-unplug-last-cpu on QEMU skipped: ${ppcSkip}`);
if (x86Skip) console.warn(`x86 list-thread experiments on QEMU skipped: ${x86Skip}`);

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'kvmlab-threads-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe.skipIf(ppcSkip !== undefined)('spapr-unplug-last-cpu under real QEMU/TCG', () => {
  it('every device_del reaches the guest, none completes while CPU0 is offline, the last one does', async () => {
    const out = join(tmp, 'spapr');
    const r = await runCli(['run', 'experiments/spapr-unplug-last-cpu.yaml', '--backend', 'qemu', '--accel', 'tcg', '--out', out]);
    const summary = await readSummary(out, r);
    expect(summary).toMatchObject({ simulated: false, backend: 'qemu', accel: 'tcg' });
    const v = summary.variants[0]!;
    expect({ code: r.exitCode, status: v.status, failed: v.expectations.filter((e) => !e.passed) }, `${r.stdout}\n${r.stderr}`).toEqual({ code: 0, status: 'passed', failed: [] });
    expect(v.expectations).toHaveLength(6);
    const steps = await readFile(join(v.repetitions[0]!.dir, 'steps.jsonl'), 'utf8');
    expect(steps).toContain('pseries-hotplug-cpu: Unable to remove last online CPU');
    expect(await qemuProcesses('kvmlab-spapr-unplug-last-cpu-')).toEqual([]);
  }, 600_000);
});

// The x86 experiments under `--accel kvm`, checked against what the probe says this host is: every
// variant the host cannot run is skipped with each reason the probe predicts (no usable KVM, a KVM
// that cannot boot a guest, a missing CPU flag, kernel parameter, device or interrupt row, an exit
// KVM will not pass through), and every variant it can run runs and holds its claims. Nothing here
// remembers the machine it was written on.
interface ProbeFacts {
  arch: string;
  cpuFlags: string[];
  kernelCmdline: string;
  root: boolean;
  interruptRows: string[];
  kvm: { usable: boolean; canBootGuest: boolean; disableExitsMask: number };
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

async function predictedReasons(exp: Experiment, knobs: Knobs, facts: ProbeFacts): Promise<RegExp[]> {
  const r = exp.requires;
  const out: RegExp[] = [];
  const kvm = facts.arch === 'x86_64' && facts.kvm.usable;
  if (!kvm) out.push(/needs KVM \(--accel kvm\), but .*(kvm|KVM)/);
  else if (r.accel === 'kvm' && !facts.kvm.canBootGuest) out.push(/needs a KVM that can boot a guest kernel/);
  for (const f of r.cpu_flags) if (!facts.cpuFlags.includes(f)) out.push(new RegExp(`needs host CPU flags? [^;]*\\b${esc(f)}\\b`));
  const words = facts.kernelCmdline.split(/\s+/);
  for (const p of r.kernel_params) if (!words.some((w) => w === p || (!p.includes('=') && w.startsWith(`${p}=`)))) out.push(new RegExp(`needs host kernel parameter ${esc(p)}`));
  for (const d of r.devices) if (!existsSync(d)) out.push(new RegExp(`needs ${esc(d)}`));
  for (const row of r.interrupts) if (!facts.interruptRows.includes(row)) out.push(new RegExp(`interrupt rows? [^;]*\\b${row}\\b`));
  if (r.root && !facts.root) out.push(/needs root/);
  if (kvm && Array.isArray(knobs.disable_exits)) {
    for (const bit of knobs.disable_exits) if (!(facts.kvm.disableExitsMask & maskOf([bit]))) out.push(new RegExp(`asks for ${bit} passthrough, which this host does not allow`));
    if (knobs.expose_mwait && !(facts.kvm.disableExitsMask & maskOf(['mwait']))) out.push(/asks for MWAIT in the guest CPUID/);
  }
  return out;
}

const noKvmSkip = await withoutKvmSkipReason();
if (noKvmSkip) console.warn(`x86 list-thread experiments with /dev/kvm hidden: skipped: ${noKvmSkip}`);

const hosts: { title: string; wrap: string[]; skip: string | undefined }[] = [
  { title: 'this host', wrap: [], skip: x86Skip },
  { title: 'this host with /dev/kvm hidden', wrap: WITHOUT_KVM, skip: x86Skip ?? noKvmSkip },
];

for (const host of hosts) {
  describe.skipIf(host.skip !== undefined)(`x86 list-thread experiments under --accel kvm on ${host.title}`, () => {
    let facts: ProbeFacts;
    beforeAll(async () => {
      const probe = await runCli(['probe', '--json'], {}, 60_000, host.wrap);
      expect(probe.exitCode, probe.stderr).toBe(0);
      facts = JSON.parse(probe.stdout) as ProbeFacts;
    });
    for (const name of ['offline-vcpu-idle', 'idle-exit-policy', 'rcuc-isolated-pcpu', 'posted-interrupt-wakeup']) {
      it(`${name}: skipped with the reasons the probe predicts, or run and held to its claims`, async () => {
        const { experiment } = await loadExperiment(join(ROOT, 'experiments', `${name}.yaml`));
        const out = join(tmp, `${name}${host.wrap.length ? '-nokvm' : ''}`);
        const r = await runCli(['run', `experiments/${name}.yaml`, '--backend', 'qemu', '--accel', 'kvm', '--repeat', '1', '--out', out], {}, 1_800_000, host.wrap);
        const summary = await readSummary(out, r);
        let runnable = 0;
        for (const v of expandMatrix(experiment)) {
          const got = summary.variants.find((x) => x.id === v.id)!;
          const want = await predictedReasons(experiment, v.knobs, facts);
          if (want.length) {
            expect(got.status, `${v.id}: ${got.reason ?? ''}`).toBe('skipped');
            for (const re of want) expect(got.reason, v.id).toMatch(re);
            expect(got.repetitions).toEqual([]);
            console.warn(`${name} ${v.id} on ${host.title}: skipped: ${got.reason}`);
          } else {
            runnable++;
            expect({ status: got.status, reason: got.reason, failed: got.expectations.filter((e) => !e.passed) }, v.id).toEqual({ status: 'passed', reason: undefined, failed: [] });
          }
        }
        expect(r.exitCode, r.stderr).toBe(runnable === 0 ? 3 : 0);
        expect(r.stderr).not.toMatch(/internal error/);
      }, 1_800_000);
    }
  });
}
