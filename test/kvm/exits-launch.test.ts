// The QEMU backend on real /dev/kvm with per-bit disabled exits: QEMU is launched with
// -overcommit cpu-pm=on and the shim, and the launch reports the mask KVM actually took (from the
// shim's record). This host's KVM cannot boot a guest kernel, so the VM is launched and shut down
// without waiting for the guest. A variant asking for MWAIT on a host without it is skipped by
// preflight before anything boots.
import { RealHostView } from '../../src/backend/qemu/host-view.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuBackend } from '../../src/backend/qemu/qemu-backend.js';
import { vmName } from '../../src/host/journal.js';
import { planVm } from '../../src/plan/vm.js';
import { generateClientKey } from '../../src/backend/ssh-guest.js';
import { EXIT_BITS, formatMask, maskOf, type ExitName, type ShimRecord } from '../../src/model/exits.js';
import { BUILD_HINT, HOST_SCRIPTS_DIR, runKvmProbe, kvmUsable, allowedDisableExits } from '../../src/host/kvm-probe.js';
import { Guest, Knobs } from '../../src/experiment/schema.js';
import { qemuProcesses, qemuSkipReason, readSummary, runCli } from '../tcg/qemu-helpers.js';

async function prepare(): Promise<{ allowed: number } | string> {
  const made = await execa('make', ['-C', HOST_SCRIPTS_DIR], { reject: false, all: true });
  if (made.exitCode !== 0) return made.failed && (made as { code?: string }).code === 'ENOENT' ? 'make is not installed' : `${BUILD_HINT} failed:\n${made.all}`;
  const q = await qemuSkipReason('x86_64');
  if (q) return q;
  const r = await runKvmProbe(new RealHostView());
  if (r.status !== 'ok') return r.message;
  if (!kvmUsable(r.probe)) return '/dev/kvm is not usable here';
  const allowed = allowedDisableExits(r.probe);
  if (allowed === null) return 'KVM_CHECK_EXTENSION(KVM_CAP_X86_DISABLE_EXITS) failed';
  if ((allowed & (EXIT_BITS.hlt | EXIT_BITS.pause)) !== (EXIT_BITS.hlt | EXIT_BITS.pause)) return `this KVM does not allow hlt and pause passthrough (allows ${formatMask(allowed)})`;
  return { allowed };
}

const prepared = await prepare();
const skip = typeof prepared === 'string' ? prepared : undefined;
if (skip) console.warn(`kvm/exits-launch skipped: ${skip}`);

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'kvmlab-kvm-exits-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe.skipIf(skip !== undefined)('QemuBackend with accel kvm and disabled exits', () => {
  const backend = new QemuBackend({ arch: 'x86_64' });
  const cases: ExitName[][] = [['hlt'], ['hlt', 'pause']];
  for (const names of cases) {
    const mask = maskOf(names);
    it(`disable_exits [${names.join(', ')}] launches with ${formatMask(mask)} applied and KVM returning 0`, async () => {
      const runDir = await mkdtemp(join(tmp, 'run-'));
      const logDir = await mkdtemp(join(tmp, 'log-'));
      const name = vmName(`kvm-exits-test-${names.join('-')}`, 1);
      // -cpu host aborts QEMU on this nested KVM (it cannot set IA32_ARCH_CAPABILITIES); qemu64 starts.
      const guest = Guest.parse({ arch: 'x86_64', cpus: 1, memory: '256M', cpu: 'qemu64' });
      const vm = await backend.launch({
        name,
        guest,
        plan: planVm(guest, Knobs.parse({ disable_exits: names }), 'kvm', await backend.probe()),
        runDir,
        logDir,
        clientKey: generateClientKey(),
      });
      try {
        expect(vm.effective.accel).toBe('kvm');
        expect(vm.effective.argv).toContain('-overcommit');
        expect(vm.effective.argv[vm.effective.argv.indexOf('-accel') + 1]).toBe('kvm');
        expect(vm.effective.disableExitsMask).toBe(mask);
        const records = vm.effective.exitsRecord as ShimRecord[];
        const de = records.filter((r) => r.event === 'disable_exits');
        expect(de).toHaveLength(1);
        expect(de[0]).toMatchObject({ applied: mask, ret: 0, errno: 0, pid: vm.pid });
        expect(vm.exitReason()).toBeUndefined();
      } finally {
        const how = await vm.shutdown();
        expect(how).toMatch(/quit over QMP|SIGTERM|SIGKILL/);
      }
      expect(vm.exitReason()).toBeDefined();
      expect(await qemuProcesses(name)).toEqual([]);
    }, 60_000);
  }
});

describe.skipIf(skip !== undefined)('preflight under --accel kvm', () => {
  it('skips a variant asking for MWAIT passthrough on a host that does not allow it, naming MWAIT', async () => {
    if (typeof prepared === 'string') throw new Error(prepared);
    if (prepared.allowed & EXIT_BITS.mwait) {
      console.warn('kvm/exits-launch: this host allows MWAIT passthrough; nothing to refuse');
      return;
    }
    const file = join(tmp, 'mwait.yaml');
    await writeFile(
      file,
      'name: kvm-mwait-preflight\ndescription: hlt runs, mwait is refused before boot on a host without MWAIT\nguest:\n  arch: x86_64\n  cpu: qemu64\n  cpus: 1\n  memory: 256M\n  ready_timeout: 15s\nmatrix:\n  disable_exits: [[hlt], [mwait]]\nsteps:\n  - name: uname\n    guest: uname -m\n',
    );
    const out = join(tmp, 'mwait-out');
    const r = await runCli(['run', file, '--backend', 'qemu', '--accel', 'kvm', '--out', out]);
    const summary = await readSummary(out, r);
    expect(summary.accel).toBe('kvm');
    const mwait = summary.variants.find((v) => v.id.includes('mwait'));
    const hlt = summary.variants.find((v) => v.id.includes('hlt'));
    expect(mwait, `${r.stdout}\n${r.stderr}`).toBeDefined();
    expect(mwait!.status).toBe('skipped');
    expect(mwait!.reason).toMatch(/MWAIT/);
    expect(mwait!.repetitions).toHaveLength(0);
    // The hlt variant ran (under this nested KVM the guest kernel does not boot, so it may end in error).
    expect(hlt!.status).not.toBe('skipped');
    expect(await qemuProcesses('kvmlab-kvm-mwait-preflight-')).toEqual([]);
  }, 120_000);
});
