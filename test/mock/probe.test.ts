// The mock's simulated host is probed by the one probe a real host gets: its HostView serves the
// files and the kvm-probe output, and the facts follow from them (there is no second, hard-coded
// copy of the simulated host's facts).
import { describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/backend/mock/mock-backend.js';
import { MOCK_HOST } from '../../src/backend/mock/profile.js';
import { probeHost } from '../../src/backend/probe.js';

describe('probing the simulated host', () => {
  it('reads what its HostView serves, as on a real host', async () => {
    const mock = new MockBackend();
    const f = await probeHost(mock.host, { simulated: true, tools: true });
    expect(f).toMatchObject({ simulated: true, arch: 'x86_64', kernelRelease: MOCK_HOST.kernelRelease, cpus: [...MOCK_HOST.cpus], cpuVendor: 'GenuineIntel', root: true, tracefs: { path: '/sys/kernel/tracing', writable: true } });
    expect(f.kvm).toMatchObject({ usable: true, canBootGuest: true, disableExitsMask: MOCK_HOST.disableExitsMask, haltPollCap: true });
    // module parameters under their module, as /sys/module names them
    expect(f.kvm.params).toMatchObject({ halt_poll_ns: '200000', 'kvm_intel.enable_apicv': 'Y' });
    expect(f.details).toMatchObject({ kvmModules: ['kvm', 'kvm_intel'], cpuidle: { driver: 'intel_idle', governor: 'menu' }, kvmProbe: { status: 'ok' }, qemu: [{ binary: 'qemu-system-x86_64' }, { binary: 'qemu-system-ppc64' }], perf: {} });
    expect(f.interruptRows).toEqual(expect.arrayContaining(['LOC', 'PIN', 'PIW']));
    expect(await f.pathExists('/dev/vfio/vfio')).toBe(true);
    expect(await f.pathExists('/dev/no-such-device')).toBe(false);
    // and it is the backend's own answer
    const { pathExists: _a, ...mine } = await mock.probe();
    const { pathExists: _b, details: _c, ...probed } = f;
    expect(mine).toMatchObject(probed);
  });
});
