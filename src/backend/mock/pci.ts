// The simulated host's PCI bus as sysfs shows it: one network function in an IOMMU group, bound to
// its driver (on a profile with one), and vfio-pci loaded. Writes act as the kernel's do: driver_override, a driver's
// unbind and bind, drivers_probe (to the override if set, else the device's own driver), with the
// kernel's errors for what it refuses. kvmlab's vfio hand-over runs against it unchanged.
import { PCI_DEVICES, PCI_DRIVERS } from '../../host/vfio.js';
import { MOCK_HOST } from './profile.js';

interface PciFunction {
  /** The driver that claims it when nothing overrides (its module's id table). */
  native: string;
  driver: string | undefined;
  override: string | undefined;
  iommuGroup: number;
  vendor: string;
  device: string;
}

const DRIVERS = ['e1000e', 'vfio-pci'];

const err = (code: string, path: string) => Object.assign(new Error(`${code}: ${path}`), { code });

export class MockPci {
  private readonly fns = new Map<string, PciFunction>(MOCK_HOST.pciNic ? [['0000:01:00.0', { native: 'e1000e', driver: 'e1000e', override: undefined, iommuGroup: 12, vendor: '0x8086', device: '0x10d3' }]] : []);

  handles(path: string): boolean {
    return path === '/sys/bus/pci' || path.startsWith('/sys/bus/pci/');
  }

  /** The function QEMU's vfio-pci could open: bound to vfio-pci (QEMU refuses a group that is not). */
  assignable(bdf: string): boolean {
    return this.fns.get(bdf)?.driver === 'vfio-pci';
  }

  private at(path: string): { fn?: PciFunction; bdf?: string; file?: string; driver?: string; action?: string } {
    const d = new RegExp(`^${PCI_DEVICES}/([^/]+)(?:/(.+))?$`).exec(path);
    if (d) return { fn: this.fns.get(d[1]!), bdf: d[1]!, ...(d[2] ? { file: d[2] } : {}) };
    const r = new RegExp(`^${PCI_DRIVERS}/([^/]+)(?:/(.+))?$`).exec(path);
    if (r && DRIVERS.includes(r[1]!)) return { driver: r[1]!, ...(r[2] ? { action: r[2] } : {}) };
    return {};
  }

  async readFile(path: string): Promise<string> {
    const { fn, file } = this.at(path);
    if (!fn) throw err('ENOENT', path);
    switch (file) {
      case 'uevent':
        return `${fn.driver ? `DRIVER=${fn.driver}\n` : ''}PCI_CLASS=20000\nPCI_ID=${fn.vendor.slice(2).toUpperCase()}:${fn.device.slice(2).toUpperCase()}\n`;
      case 'driver_override':
        return `${fn.override ?? '(null)'}\n`;
      case 'vendor':
        return `${fn.vendor}\n`;
      case 'device':
        return `${fn.device}\n`;
      default:
        throw err('ENOENT', path);
    }
  }

  async writeFile(path: string, data: string): Promise<void> {
    const bdf = data.trim();
    if (path === '/sys/bus/pci/drivers_probe') {
      const fn = this.fns.get(bdf);
      if (!fn) throw err('ENODEV', path);
      if (!fn.driver) fn.driver = fn.override ?? fn.native;
      return;
    }
    const { fn, file, driver, action } = this.at(path);
    if (fn && file === 'driver_override') {
      fn.override = bdf || undefined;
      return;
    }
    if (driver && (action === 'unbind' || action === 'bind')) {
      const target = this.fns.get(bdf);
      if (!target) throw err('ENODEV', path);
      if (action === 'unbind') {
        if (target.driver !== driver) throw err('ENODEV', path);
        target.driver = undefined;
      } else {
        if (target.driver || (target.override && target.override !== driver) || (!target.override && driver !== target.native)) throw err('ENODEV', path);
        target.driver = driver;
      }
      return;
    }
    throw err(this.handles(path) ? 'EACCES' : 'ENOENT', path);
  }

  exists(path: string): boolean {
    if (['/sys/bus/pci', PCI_DEVICES, PCI_DRIVERS, '/sys/bus/pci/drivers_probe'].includes(path)) return true;
    const { fn, file, driver, action } = this.at(path);
    if (fn) return file === undefined || ['uevent', 'driver_override', 'vendor', 'device', 'iommu_group'].includes(file) || (file === 'driver' && fn.driver !== undefined);
    return driver !== undefined && (action === undefined || action === 'bind' || action === 'unbind');
  }

  readdir(path: string): string[] {
    if (path === PCI_DEVICES) return [...this.fns.keys()];
    if (path === PCI_DRIVERS) return [...DRIVERS];
    throw err('ENOENT', path);
  }
}
