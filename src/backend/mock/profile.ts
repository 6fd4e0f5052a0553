// The simulated host the mock backend pretends to be — the mock's own facts, never the facts of the
// machine kvmlab runs on; results say `simulated` and name the profile in the host's CPU model.
// Two profiles, one per process (`run --mock-host`, which sets $KVMLAB_MOCK_HOST):
// - intel-server (the default): an Intel server with MWAIT and two C1 sub-states in CPUID leaf 5,
//   VT-x with APICv, VT-d posted interrupts, a NIC for VFIO and isolated CPUs, so every experiment
//   has a host to run on in CI;
// - nested-l1: the KVM host `--on nested` boots, as its probe saw it (QEMU's TCG `-cpu max`: an AMD
//   CPU with SVM and NPT, MONITOR but no C1 sub-state in leaf 5, kvm_amd without AVIC, 4 CPUs), so
//   the mock can be held against the nested host's real KVM cell by cell (compare --verdicts).
import { InputError } from '../../errors.js';

const INTERRUPT_ROWS = ['NMI', 'LOC', 'SPU', 'PMI', 'IWI', 'RTR', 'RES', 'CAL', 'TLB', 'TRM', 'THR', 'DFR', 'MCE', 'MCP', 'ERR', 'MIS', 'PIN', 'NPI', 'PIW'];

export interface MockHostProfile {
  name: string;
  arch: 'x86_64';
  kernelRelease: string;
  cpus: readonly number[];
  cpuVendor: string;
  cpuModel: string;
  cpuFlags: readonly string[];
  kernelCmdline: string;
  /** What KVM allows to disable (KVM_CAP_X86_DISABLE_EXITS). */
  disableExitsMask: number;
  /** /sys/module/kvm/parameters. */
  kvmParams: Record<string, string>;
  /** The vendor module and its parameters. */
  vendorModule: 'kvm_intel' | 'kvm_amd';
  vendorParams: Record<string, string>;
  /** CPUID leaf 5 (MONITOR/MWAIT) as the probe reads it; absent: none. */
  cpuidLeaf5?: { eax: number; ebx: number; ecx: number; edx: number };
  interruptRows: readonly string[];
  devices: readonly string[];
  /** A PCI function in an IOMMU group, for VFIO (backend/mock/pci.ts). */
  pciNic: boolean;
}

const KVM_PARAMS = { halt_poll_ns: '200000', halt_poll_ns_grow: '2', halt_poll_ns_grow_start: '10000', halt_poll_ns_shrink: '0', mitigate_smt_rsb: 'N' };

const PROFILES: Record<string, MockHostProfile> = {
  'intel-server': {
    name: 'intel-server',
    arch: 'x86_64',
    kernelRelease: '6.12.0-kvmlab-sim',
    cpus: [0, 1, 2, 3, 4, 5, 6, 7],
    cpuVendor: 'GenuineIntel',
    cpuModel: 'Simulated Intel(R) Xeon(R) (kvmlab mock host)',
    cpuFlags: ['fpu', 'vme', 'de', 'pse', 'tsc', 'msr', 'pae', 'apic', 'sep', 'cmov', 'pat', 'clflush', 'mmx', 'fxsr', 'sse', 'sse2', 'ht', 'syscall', 'nx', 'lm', 'constant_tsc', 'arat', 'pni', 'monitor', 'mwait', 'vmx', 'ssse3', 'sse4_1', 'sse4_2', 'x2apic', 'tsc_deadline_timer', 'xsave', 'avx', 'avx2', 'ept', 'vpid', 'pts'],
    kernelCmdline: 'BOOT_IMAGE=/vmlinuz-6.12.0-kvmlab-sim root=/dev/sda1 ro intel_iommu=on nohz_full=2-7 isolcpus=managed_irq,domain,2-7 rcu_nocbs=2-7 rcutree.use_softirq=0',
    // MWAIT|HLT|PAUSE|CSTATE: what KVM allows on an Intel host with MWAIT and no mitigate_smt_rsb
    disableExitsMask: 0xf,
    kvmParams: KVM_PARAMS,
    vendorModule: 'kvm_intel',
    vendorParams: { enable_apicv: 'Y' },
    // an Intel server CPU's MONITOR/MWAIT leaf: 64-byte lines, two C1 sub-states (EDX bits 7:4)
    cpuidLeaf5: { eax: 64, ebx: 64, ecx: 3, edx: 0x2020 },
    interruptRows: INTERRUPT_ROWS,
    devices: ['/dev/kvm', '/dev/vfio/vfio', '/sys/kernel/tracing'],
    pciNic: true,
  },
  'nested-l1': {
    name: 'nested-l1',
    arch: 'x86_64',
    kernelRelease: '6.1.0-kvmlab-sim-l1',
    cpus: [0, 1, 2, 3],
    cpuVendor: 'AuthenticAMD',
    cpuModel: 'Simulated QEMU TCG CPU version 2.5+ (kvmlab mock host modelled on the nested host)',
    cpuFlags: 'fpu de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush acpi mmx fxsr sse sse2 ss ht syscall nx mmxext pdpe1gb rdtscp lm 3dnowext 3dnow rep_good nopl cpuid extd_apicid pni pclmulqdq monitor ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm cmp_legacy svm cr8_legacy abm sse4a 3dnowprefetch vmmcall fsgsbase bmi1 avx2 smep bmi2 erms mpx adx smap clflushopt clwb xsaveopt xgetbv1 arat npt vgif umip pku ospke vaes'.split(' '),
    kernelCmdline: 'console=ttyS0 panic=-1 quiet softlockup_all_cpu_backtrace=1 nokaslr maxcpus=1',
    disableExitsMask: 0xf,
    kvmParams: KVM_PARAMS,
    vendorModule: 'kvm_amd',
    vendorParams: { avic: 'N', npt: 'Y', nested: '1' },
    // QEMU's default MWAIT leaf (target/i386 cpu.c): no line sizes, EMX|IBE, no C1 sub-state
    cpuidLeaf5: { eax: 0, ebx: 0, ecx: 3, edx: 0 },
    interruptRows: INTERRUPT_ROWS,
    devices: ['/dev/kvm', '/sys/kernel/tracing'],
    pciNic: false,
  },
};

export const MOCK_HOST_PROFILES = Object.keys(PROFILES);

function chosen(): MockHostProfile {
  const name = process.env.KVMLAB_MOCK_HOST || 'intel-server';
  const p = PROFILES[name];
  if (!p) throw new InputError(`$KVMLAB_MOCK_HOST=${name}: no such mock host profile; give one of ${MOCK_HOST_PROFILES.join(', ')} (run --mock-host sets it)`);
  return p;
}

/** The mock host of this process. */
export const MOCK_HOST: MockHostProfile = chosen();

/** The guest kernel the mock boots, by arch. */
export const MOCK_GUEST_KERNEL = { x86_64: '6.1.0-kvmlab-sim-amd64', ppc64: '6.1.0-kvmlab-sim-powerpc64le' } as const;
