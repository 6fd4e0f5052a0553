// A host PCI device given to a guest through VFIO, on the simulated host's sysfs: preflight says
// what a host lacks, the hand-over to vfio-pci acts as the kernel's sysfs does, the simulated QEMU
// refuses a device not handed over, and only a VM with one sees posted-interrupt wakeups (PIW).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { kvmlab, root, scratch } from './kvmlab-cli.js';
import { VirtualClock } from '../../src/backend/clock.js';
import { MockHostView } from '../../src/backend/mock/host-view.js';
import { vfioUnmet } from '../../src/host/vfio.js';
import { bindToVfio, pciDriver } from '../../src/run/devices.js';
import { parseCsv } from '../../src/model/metrics.js';

const tmp = scratch('vfio');

describe('a PCI device through VFIO on the simulated host', () => {
  it('is handed from its driver to vfio-pci through sysfs, once', async () => {
    const host = new MockHostView(new VirtualClock());
    const facts = { pathExists: (p: string) => host.exists(p) };
    expect(await vfioUnmet('0000:01:00.0', facts)).toEqual([]);
    expect((await vfioUnmet('0000:02:00.0', facts))[0]).toMatch(/no PCI device 0000:02:00\.0 on this host .*lspci -D/);
    expect(await pciDriver(host, '0000:01:00.0')).toBe('e1000e');
    expect(host.pci.assignable('0000:01:00.0')).toBe(false);
    await bindToVfio(host, '0000:01:00.0');
    expect(await pciDriver(host, '0000:01:00.0')).toBe('vfio-pci');
    expect(await host.readFile('/sys/bus/pci/devices/0000:01:00.0/driver_override')).toBe('vfio-pci\n');
    await bindToVfio(host, '0000:01:00.0'); // already there: nothing written
    expect(host.pci.assignable('0000:01:00.0')).toBe(true);
    // the kernel's refusals: unbinding from a driver it is not bound to, binding against the override
    await expect(host.writeFile('/sys/bus/pci/drivers/e1000e/unbind', '0000:01:00.0')).rejects.toThrow(/ENODEV/);
    await host.writeFile('/sys/bus/pci/drivers/vfio-pci/unbind', '0000:01:00.0');
    await expect(host.writeFile('/sys/bus/pci/drivers/e1000e/bind', '0000:01:00.0')).rejects.toThrow(/ENODEV/);
    // what the journal does to give it back: clear the override, bind the driver it had
    await host.writeFile('/sys/bus/pci/devices/0000:01:00.0/driver_override', '\n');
    await host.writeFile('/sys/bus/pci/drivers/e1000e/bind', '0000:01:00.0');
    expect(await pciDriver(host, '0000:01:00.0')).toBe('e1000e');
  });

  it('posted-interrupt-wakeup: PIW where the vCPU blocks in a VM with the device; without it the PIW claim fails', async () => {
    const run = (file: string, out: string) => kvmlab('run', file, '--backend', 'mock', '--repeat', '1', '-q', '--out', out);
    const withDevice = await run('experiments/posted-interrupt-wakeup.yaml', join(tmp, 'with'));
    expect(withDevice.exitCode, withDevice.stderr).toBe(0);
    const piw = (out: string, variant: string) => parseCsv(readFileSync(join(out, 'metrics.csv'), 'utf8')).rows.filter((r) => r.variant === variant && r.step === 'idle' && r.metric === 'irq.piw' && /^pcpu[23]$/.test(r.entity)).reduce((a, r) => a + r.value, 0);
    expect(piw(join(tmp, 'with'), 'disable_exits=none')).toBeGreaterThan(0);
    expect(piw(join(tmp, 'with'), 'disable_exits=hlt')).toBe(0);
    const file = join(tmp, 'no-device.yaml');
    writeFileSync(file, readFileSync(join(root, 'experiments/posted-interrupt-wakeup.yaml'), 'utf8').replace(/^ {2}devices: .*$/m, ''));
    const without = await run(file, join(tmp, 'without'));
    expect(without.exitCode).toBe(1);
    expect(piw(join(tmp, 'without'), 'disable_exits=none')).toBe(0);
    expect(without.stdout).toMatch(/FAIL\s+sum irq\.piw \[pcpu2,pcpu3\] @ idle >= 1/);
  });
});
