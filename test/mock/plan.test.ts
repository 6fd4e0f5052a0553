// One owner for what the knobs ask of KVM and QEMU (plan/vm.ts), and the mock carrying out that
// plan instead of deriving its own: MONITOR/MWAIT in CPUID only where MWAIT is passed through or asked
// for, the vendor the guest sees follows -cpu, the mechanism each cell measures follows from both, and
// the simulated KVM refuses a mask it does not allow as KVM does.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/backend/mock/mock-backend.js';
import { generateClientKey } from '../../src/backend/ssh-guest.js';
import { planVm, type PlanHost } from '../../src/plan/vm.js';
import { mechanismOf } from '../../src/plan/mechanism.js';
import { Guest, Knobs } from '../../src/experiment/schema.js';

const INTEL: PlanHost = { cpuVendor: 'GenuineIntel', kvm: { disableExitsMask: 0xf } };
const NO_MWAIT: PlanHost = { cpuVendor: 'AuthenticAMD', kvm: { disableExitsMask: 0xe } };
const guest = (cpu?: string) => Guest.parse({ arch: 'x86_64', cpus: 2, ...(cpu ? { cpu } : {}) });
const knobs = (k: Record<string, unknown>) => Knobs.parse(k);

describe('planVm', () => {
  it('puts MWAIT in CPUID when it is passed through or asked for by name, and keeps it out otherwise', () => {
    // [hlt] runs with cpu-pm=on (the shim rewrites the mask), where QEMU would report MONITOR as
    // supported: kvmlab takes it out (-monitor), so the cell measures a passed-through HLT
    expect(planVm(guest(), knobs({ disable_exits: ['hlt'] }), 'kvm', INTEL)).toMatchObject({ cpu: 'host,-monitor', exitControl: { mode: 'shim', mask: 0x2 }, disableExitsMask: 0x2, mwaitInCpuid: false });
    expect(planVm(guest(), knobs({ disable_exits: ['hlt', 'mwait'] }), 'kvm', INTEL)).toMatchObject({ cpu: 'host', mwaitInCpuid: true });
    expect(planVm(guest(), knobs({ disable_exits: [], expose_mwait: true }), 'kvm', INTEL)).toMatchObject({ cpu: 'host', mwaitInCpuid: true, disableExitsMask: 0 });
    expect(planVm(guest(), knobs({ disable_exits: 'cpu-pm' }), 'kvm', INTEL).mwaitInCpuid).toBe(true);
    // no exit control: no cpu-pm=on, no MONITOR
    expect(planVm(guest(), knobs({}), 'kvm', INTEL)).toMatchObject({ exitControl: { mode: 'none' }, disableExitsMask: 0, mwaitInCpuid: false });
    // KVM does not allow MWAIT: QEMU does not report MONITOR, nothing to take out
    expect(planVm(guest(), knobs({ disable_exits: ['hlt'] }), 'kvm', NO_MWAIT)).toMatchObject({ cpu: 'host', mwaitInCpuid: false });
    // a named model takes no supported features: no MONITOR unless asked, then monitor=on
    expect(planVm(guest('qemu64'), knobs({ disable_exits: ['hlt'] }), 'kvm', INTEL)).toMatchObject({ cpu: 'qemu64', mwaitInCpuid: false });
    expect(planVm(guest('qemu64'), knobs({ expose_mwait: true }), 'kvm', INTEL)).toMatchObject({ cpu: 'qemu64,monitor=on', mwaitInCpuid: true, exitControl: { mode: 'shim', mask: 0 } });
    expect(planVm(guest(), knobs({ disable_exits: ['mwait'], expose_mwait: false }), 'kvm', INTEL)).toMatchObject({ cpu: 'host,-monitor', mwaitInCpuid: false });
  });

  it('names the mechanism each cell measures, from the plan', () => {
    const m = (cpu: string | undefined, k: Record<string, unknown>, host = INTEL) => {
      const { idle, idleKvm, parked, kvm } = mechanismOf(planVm(guest(cpu), knobs(k), 'kvm', host), 'x86_64');
      return { idle, idleKvm, parked, kvm };
    };
    const intel = 'host,vendor=GenuineIntel';
    expect(m(intel, { disable_exits: ['mwait'] })).toEqual({ idle: 'mwait', idleKvm: 'passed', parked: 'mwait', kvm: 'passed' });
    expect(m(intel, { disable_exits: ['hlt'] })).toEqual({ idle: 'hlt', idleKvm: 'passed', parked: 'hlt', kvm: 'passed' });
    expect(m(intel, { disable_exits: [], expose_mwait: true })).toEqual({ idle: 'mwait', idleKvm: 'nop-spin', parked: 'mwait', kvm: 'nop-spin' });
    expect(m(intel, {})).toEqual({ idle: 'hlt', idleKvm: 'blocks', parked: 'hlt', kvm: 'blocks' });
    // an AMD-vendor guest parks and idles in HLT even with MWAIT in CPUID (Linux >= 5.3)
    expect(m('host,vendor=AuthenticAMD', { disable_exits: ['mwait'] })).toEqual({ idle: 'hlt', idleKvm: 'blocks', parked: 'hlt', kvm: 'blocks' });
    expect(m(intel, { guest_idle: 'poll', disable_exits: ['hlt'] })).toEqual({ idle: 'poll', idleKvm: 'none', parked: 'hlt', kvm: 'passed' });
    expect(mechanismOf(planVm(guest(), knobs({}), 'tcg', INTEL), 'x86_64')).toMatchObject({ idle: 'none', kvm: 'none', notes: ['TCG: no KVM, no exits'] });
  });

  it("idles in MWAIT only where the guest's CPUID leaf 5 lists a C1 sub-state: the host's under cpu-pm", () => {
    const idle = (host: PlanHost, k: Record<string, unknown> = { disable_exits: ['mwait'] }) => mechanismOf(planVm(guest('host,vendor=GenuineIntel'), knobs(k), 'kvm', host), 'x86_64');
    expect(idle({ ...INTEL, mwaitC1Substates: 2 })).toMatchObject({ idle: 'mwait', parked: 'mwait', notes: [] });
    // TCG's -cpu max, as the nested host's L1 sees it: no C1 sub-state, so Linux halts; it still parks in MWAIT
    expect(idle({ ...INTEL, mwaitC1Substates: 0 })).toMatchObject({ idle: 'hlt', idleKvm: 'blocks', parked: 'mwait', kvm: 'passed', notes: [expect.stringMatching(/leaf 5 lists no C1 sub-state/)] });
    expect(idle(INTEL).notes).toEqual([expect.stringMatching(/host's leaf 5 is not known/)]);
    // a named model without cpu-pm gets QEMU's own leaf 5, which lists no C-state
    expect(mechanismOf(planVm(guest('qemu64'), knobs({ expose_mwait: true }), 'kvm', { ...INTEL, mwaitC1Substates: 2 }), 'x86_64')).toMatchObject({ idle: 'hlt' });
  });

  it('cpu-pm asks for everything the host allows of MWAIT|HLT|PAUSE|CSTATE', () => {
    expect(planVm(guest(), knobs({ disable_exits: 'cpu-pm' }), 'kvm', INTEL).disableExitsMask).toBe(0xf);
    expect(planVm(guest(), knobs({ disable_exits: 'cpu-pm' }), 'kvm', { cpuVendor: 'x', kvm: { disableExitsMask: 0x1e } }).disableExitsMask).toBe(0xe);
  });

  it('the guest sees vendor= when given, the host vendor with -cpu host, nothing known for a named model', () => {
    expect(planVm(guest('host,vendor=GenuineIntel'), knobs({}), 'kvm', NO_MWAIT).guestVendor).toBe('GenuineIntel');
    expect(planVm(guest(), knobs({}), 'kvm', NO_MWAIT).guestVendor).toBe('AuthenticAMD');
    expect(planVm(guest('qemu64'), knobs({}), 'kvm', NO_MWAIT).guestVendor).toBeUndefined();
  });

  it('guest-side knobs become guest kernel parameters; halt polling is per VM', () => {
    expect(planVm(guest(), knobs({ guest_idle: 'poll', guest_haltpoll: true, halt_poll_ns: 5000 }), 'kvm', INTEL)).toMatchObject({ guestKernelArgs: ['idle=poll', 'cpuidle_haltpoll.force=1'], haltPollNs: 5000, cpu: 'host,kvm-hint-dedicated=on' });
    expect(planVm(guest(), knobs({}), 'tcg', INTEL)).toMatchObject({ cpu: 'qemu64', guestKernelArgs: [] });
  });
});

describe('the mock carries out the plan', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const launch = async (plan: ReturnType<typeof planVm>) => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmlab-plan-'));
    dirs.push(dir);
    return new MockBackend().launch({ name: 'plan', guest: guest(), plan, runDir: dir, logDir: dir, clientKey: generateClientKey() });
  };

  it('shows the planned CPUID and vendor to its guest, and reports the planned mask as in effect', async () => {
    // a plan no knob rule produces: the mock must not re-derive it from knobs
    const plan = { ...planVm(guest(), knobs({}), 'kvm', INTEL), mwaitInCpuid: true, guestVendor: 'HygonGenuine' };
    const vm = await launch(plan);
    try {
      await vm.waitReady(Date.now() + 30_000);
      const cpuinfo = (await vm.guest.exec('cat /proc/cpuinfo', 10_000)).stdout;
      expect(cpuinfo).toMatch(/vendor_id\s*: HygonGenuine/);
      expect(cpuinfo).toMatch(/flags\s*:.* monitor/);
      expect(vm.effective).toMatchObject({ disableExitsMask: 0, mwaitInGuestCpuid: true });
    } finally {
      await vm.shutdown();
    }
  });

  it('refuses a mask its simulated KVM does not allow, as KVM_ENABLE_CAP does', async () => {
    const plan = { ...planVm(guest(), knobs({ disable_exits: ['aperfmperf'] }), 'kvm', INTEL) };
    await expect(launch(plan)).rejects.toThrow(/KVM_ENABLE_CAP.*0x10 \(aperfmperf\).*Invalid argument/);
  });
});
