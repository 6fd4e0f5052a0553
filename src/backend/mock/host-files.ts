// The simulated host's files that do not move — what the probe reads to learn what a host is — and
// the one program it runs there (kvmlab's kvm-probe), all rendered from MOCK_HOST in the kernel's and
// the probe's own formats. The probe reads these exactly as it reads a real host's.
import { formatCpuList } from '../../model/cpulist.js';
import { KVM_PROBE_PATH, type KvmProbe } from '../../host/kvm-probe.js';
import { MOCK_HOST } from './profile.js';

/** /sys/module/<module>/parameters of the simulated KVM: kvm's own, and its vendor module's. */
const MODULE_PARAMS: Record<string, Record<string, string>> = {
  kvm: MOCK_HOST.kvmParams,
  [MOCK_HOST.vendorModule]: MOCK_HOST.vendorParams,
};

const cpuinfo = MOCK_HOST.cpus
  .map((c) => [`processor\t: ${c}`, `vendor_id\t: ${MOCK_HOST.cpuVendor}`, `model name\t: ${MOCK_HOST.cpuModel}`, `flags\t\t: ${MOCK_HOST.cpuFlags.join(' ')}`, ''].join('\n'))
  .join('\n');

/** Path → content of every static file of the simulated host. */
export const HOST_FILES: ReadonlyMap<string, string> = new Map([
  ['/proc/cpuinfo', `${cpuinfo}\n`],
  ['/proc/cmdline', `${MOCK_HOST.kernelCmdline}\n`],
  ['/proc/sys/kernel/arch', `${MOCK_HOST.arch}\n`],
  ['/proc/sys/kernel/osrelease', `${MOCK_HOST.kernelRelease}\n`],
  ['/proc/sys/kernel/perf_event_paranoid', '2\n'],
  // kvmlab's own process on the simulated host runs as root
  ['/proc/self/status', 'Name:\tkvmlab\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n'],
  ['/sys/devices/system/cpu/online', `${formatCpuList(MOCK_HOST.cpus)}\n`],
  ['/sys/devices/system/cpu/cpuidle/current_driver', 'intel_idle\n'],
  ['/sys/devices/system/cpu/cpuidle/current_governor', 'menu\n'],
  ...Object.entries(MODULE_PARAMS).flatMap(([m, params]) => Object.entries(params).map(([k, v]) => [`/sys/module/${m}/parameters/${k}`, `${v}\n`] as [string, string])),
]);

/** Directories, for readdir: every directory on the way to a file above. */
export const HOST_DIRS: ReadonlyMap<string, string[]> = (() => {
  const dirs = new Map<string, Set<string>>();
  for (const path of [...HOST_FILES.keys(), ...MOCK_HOST.devices]) {
    const parts = path.split('/').filter(Boolean);
    for (let i = 0; i < parts.length; i++) {
      const dir = `/${parts.slice(0, i).join('/')}`;
      const set = dirs.get(dir) ?? new Set<string>();
      set.add(parts[i]!);
      dirs.set(dir, set);
    }
  }
  return new Map([...dirs].map(([d, names]) => [d, [...names].sort()]));
})();

/** What host-scripts/build/kvm-probe prints on the simulated host: KVM as MOCK_HOST has it. */
function kvmProbeOutput(): KvmProbe {
  const allowed = MOCK_HOST.disableExitsMask;
  const cap = (v: number) => v;
  return {
    probe_version: 1,
    host: { sysname: 'Linux', release: MOCK_HOST.kernelRelease, machine: MOCK_HOST.arch },
    kvm_params: { halt_poll_ns: Number(MOCK_HOST.kvmParams.halt_poll_ns), mitigate_smt_rsb: /^[Yy1]/.test(MOCK_HOST.kvmParams.mitigate_smt_rsb ?? 'N') },
    cpuid_leaf5: MOCK_HOST.cpuidLeaf5 ?? null,
    dev_kvm: { ok: true },
    api_version: 12,
    vm: { ok: true, type: 0 },
    caps: { x86_disable_exits: { vm: cap(allowed), system: cap(allowed) }, halt_poll: 1, irqchip: 1, binary_stats_fd: 1, nr_vcpus: MOCK_HOST.cpus.length, max_vcpus: 1024 },
    enable_disable_exits: { mask: allowed, ret: 0, errno: 0 },
    enable_disable_exits_unsupported: { mask: 0x1f & ~allowed, ret: -1, errno: 22, error: 'Invalid argument' },
    vcpu: { ok: true },
    enable_disable_exits_after_vcpu: { mask: allowed, ret: -1, errno: 22, error: 'Invalid argument' },
  };
}

/** Programs installed on the simulated host, by path: their output for any arguments. */
export const HOST_PROGRAMS: ReadonlyMap<string, () => { exitCode: number; stdout: string; stderr: string }> = new Map([
  [KVM_PROBE_PATH, () => ({ exitCode: 0, stdout: `${JSON.stringify(kvmProbeOutput())}\n`, stderr: '' })],
]);
