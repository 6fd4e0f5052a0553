// The simulated lab host the mock backend pretends to be: an Intel server with MWAIT, VT-x, VT-d
// posted interrupts and isolated CPUs, so every experiment has a host to run on in CI. These are the
// mock's own facts, never the facts of the machine kvmlab runs on; results say `simulated`.

export const MOCK_HOST = {
  arch: 'x86_64',
  kernelRelease: '6.12.0-kvmlab-sim',
  cpus: [0, 1, 2, 3, 4, 5, 6, 7],
  cpuVendor: 'GenuineIntel',
  cpuModel: 'Simulated Intel(R) Xeon(R) (kvmlab mock host)',
  cpuFlags: ['fpu', 'vme', 'de', 'pse', 'tsc', 'msr', 'pae', 'apic', 'sep', 'cmov', 'pat', 'clflush', 'mmx', 'fxsr', 'sse', 'sse2', 'ht', 'syscall', 'nx', 'lm', 'constant_tsc', 'arat', 'pni', 'monitor', 'mwait', 'vmx', 'ssse3', 'sse4_1', 'sse4_2', 'x2apic', 'tsc_deadline_timer', 'xsave', 'avx', 'avx2', 'ept', 'vpid', 'pts'],
  kernelCmdline: 'BOOT_IMAGE=/vmlinuz-6.12.0-kvmlab-sim root=/dev/sda1 ro intel_iommu=on nohz_full=2-7 isolcpus=managed_irq,domain,2-7 rcu_nocbs=2-7 rcutree.use_softirq=0',
  /** MWAIT|HLT|PAUSE|CSTATE: what KVM allows on an Intel host with MWAIT and no mitigate_smt_rsb. */
  disableExitsMask: 0xf,
  kvmParams: {
    halt_poll_ns: '200000',
    halt_poll_ns_grow: '2',
    halt_poll_ns_grow_start: '10000',
    halt_poll_ns_shrink: '0',
    mitigate_smt_rsb: 'N',
    enable_apicv: 'Y',
  } as Record<string, string>,
  interruptRows: ['NMI', 'LOC', 'SPU', 'PMI', 'IWI', 'RTR', 'RES', 'CAL', 'TLB', 'TRM', 'THR', 'DFR', 'MCE', 'MCP', 'ERR', 'MIS', 'PIN', 'NPI', 'PIW'],
  devices: ['/dev/kvm', '/dev/vfio/vfio', '/sys/kernel/tracing'],
  guestKernelRelease: '6.1.0-kvmlab-sim-amd64',
} as const;

/** The guest kernel the mock boots, by arch. */
export const MOCK_GUEST_KERNEL = { x86_64: '6.1.0-kvmlab-sim-amd64', ppc64: '6.1.0-kvmlab-sim-powerpc64le' } as const;
