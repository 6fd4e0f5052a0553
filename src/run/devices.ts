// Handing a guest's `devices: [{vfio: BDF}]` to vfio-pci before its QEMU starts — driver_override
// to vfio-pci, unbound from its driver, reprobed — through the HostView, whose journal gives it back
// to its driver when the run ends (or `kvmlab cleanup` after a crash). On the mock the same writes
// go to its simulated sysfs.
import { HostError } from '../errors.js';
import type { HostView } from '../backend/backend.js';
import { PCI_DEVICES, PCI_DRIVERS, VFIO_DRIVER } from '../host/vfio.js';

/** The driver a PCI device is bound to now, from its uevent (DRIVER=…); undefined when none. */
export async function pciDriver(host: HostView, bdf: string): Promise<string | undefined> {
  const uevent = await host.readFile(`${PCI_DEVICES}/${bdf}/uevent`);
  return /^DRIVER=(.+)$/m.exec(uevent)?.[1]?.trim();
}

/** Hands the device to vfio-pci (nothing to do when it is there already). */
export async function bindToVfio(host: HostView, bdf: string): Promise<void> {
  const was = await pciDriver(host, bdf);
  if (was === VFIO_DRIVER) return;
  await host.writeFile(`${PCI_DEVICES}/${bdf}/driver_override`, VFIO_DRIVER);
  if (was) await host.writeFile(`${PCI_DRIVERS}/${was}/unbind`, bdf);
  await host.writeFile('/sys/bus/pci/drivers_probe', bdf);
  const now = await pciDriver(host, bdf);
  if (now !== VFIO_DRIVER) throw new HostError(`guest.devices: ${bdf} did not bind to ${VFIO_DRIVER} (it is ${now ? `bound to ${now}` : 'unbound'}); see dmesg`);
}
