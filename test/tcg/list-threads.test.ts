// The shipped list-thread experiments on this host with the real QEMU backend: the pseries one runs
// for real under TCG and its claims hold; the x86 ones need hardware or host boot parameters this
// kind of machine lacks, and must be skipped with reasons naming what is missing — not failed, not faked.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qemuProcesses, qemuSkipReason, readSummary, runCli } from './qemu-helpers.js';

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
    const summary = await readSummary(out);
    expect(summary).toMatchObject({ simulated: false, backend: 'qemu', accel: 'tcg' });
    const v = summary.variants[0]!;
    expect({ code: r.exitCode, status: v.status, failed: v.expectations.filter((e) => !e.passed) }, `${r.stdout}\n${r.stderr}`).toEqual({ code: 0, status: 'passed', failed: [] });
    expect(v.expectations).toHaveLength(6);
    const steps = await readFile(join(v.repetitions[0]!.dir, 'steps.jsonl'), 'utf8');
    expect(steps).toContain('pseries-hotplug-cpu: Unable to remove last online CPU');
    expect(await qemuProcesses('kvmlab-spapr-unplug-last-cpu-')).toEqual([]);
  }, 600_000);
});

// What each x86 experiment must say is missing on a host like this one (no MWAIT, no VT-x/VT-d, no
// isolated CPUs, a nested KVM that cannot boot a guest kernel) when it is asked to use KVM.
const x86: [string, RegExp[]][] = [
  ['offline-vcpu-idle', [/needs a KVM that can boot a guest kernel/, /mwait passthrough, which this host does not allow .*: the host CPU has no MONITOR\/MWAIT/]],
  ['idle-exit-policy', [/needs a KVM that can boot a guest kernel/, /MWAIT in the guest CPUID/]],
  ['rcuc-isolated-pcpu', [/needs host kernel parameter nohz_full/, /needs host kernel parameter rcutree\.use_softirq=0/]],
  ['posted-interrupt-wakeup', [/needs host CPU flag vmx/, /needs host kernel parameter intel_iommu=on/, /needs \/dev\/vfio\/vfio/]],
];

describe.skipIf(x86Skip !== undefined)('x86 list-thread experiments on this host', () => {
  for (const [name, reasons] of x86) {
    it(`${name} is skipped with the reasons`, async () => {
      const out = join(tmp, name);
      const r = await runCli(['run', `experiments/${name}.yaml`, '--backend', 'qemu', '--accel', 'kvm', '--out', out]);
      const probe = await runCli(['probe', '--json']);
      const facts = JSON.parse(probe.stdout) as { kvm?: { canBootGuest?: boolean } };
      if (facts.kvm?.canBootGuest) {
        console.warn(`${name}: this host's KVM boots guests; the skip reasons checked here are for hosts that cannot`);
        return;
      }
      expect(r.exitCode, r.stderr).toBe(3);
      const summary = await readSummary(out);
      expect(summary.variants.map((v) => v.status).every((s) => s === 'skipped')).toBe(true);
      const all = summary.variants.map((v) => v.reason ?? '').join('\n');
      for (const re of reasons) expect(all).toMatch(re);
      expect(summary.variants.every((v) => v.repetitions.length === 0)).toBe(true);
    }, 120_000);
  }
});
