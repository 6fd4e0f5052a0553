// Host PCI devices for a guest's `devices: [{vfio: BDF}]`: where sysfs keeps them, and what a host
// needs to give one to QEMU's vfio-pci (preflight). The hand-over itself is the run's
// (run/devices.ts).
import type { HostFacts } from '../model/host-facts.js';

export const PCI_DEVICES = '/sys/bus/pci/devices';
export const PCI_DRIVERS = '/sys/bus/pci/drivers';
export const VFIO_DRIVER = 'vfio-pci';

/** Why this host cannot give the device to a guest through VFIO; none when it can. */
export async function vfioUnmet(bdf: string, facts: Pick<HostFacts, 'pathExists'>): Promise<string[]> {
  const dev = `${PCI_DEVICES}/${bdf}`;
  if (!(await facts.pathExists(dev))) return [`guest.devices: no PCI device ${bdf} on this host (${dev}); give one \`lspci -D\` lists`];
  const reasons: string[] = [];
  if (!(await facts.pathExists(`${dev}/iommu_group`))) reasons.push(`guest.devices: ${bdf} is in no IOMMU group (${dev}/iommu_group): the IOMMU is off; boot the host with intel_iommu=on (amd_iommu=on on AMD)`);
  if (!(await facts.pathExists('/dev/vfio/vfio'))) reasons.push('guest.devices: needs /dev/vfio/vfio (load vfio: modprobe vfio-pci)');
  if (!(await facts.pathExists(`${PCI_DRIVERS}/${VFIO_DRIVER}`))) reasons.push(`guest.devices: the ${VFIO_DRIVER} driver is not loaded (modprobe ${VFIO_DRIVER})`);
  return reasons;
}
