// What a host is and can do, as preflight, the planner and the collectors need it. The backend's
// probe fills it in: from the real host's files and ioctls, or from the simulated host's.

export type Accel = 'kvm' | 'tcg';

/** What the host is and can do, as far as an experiment's `requires` and preflight care. */
export interface HostFacts {
  simulated: boolean;
  /** uname -m */
  arch: string;
  kernelRelease: string;
  /** Online host CPUs. */
  cpus: number[];
  cpuVendor: string;
  cpuModel: string;
  cpuFlags: string[];
  /**
   * MWAIT sub-states of C1 in CPUID leaf 5 (EDX bits 7:4): with cpu-pm=on the guest sees this leaf,
   * and Linux idles in MWAIT only where it lists some. Absent when not known (the probe did not run).
   */
  mwaitC1Substates?: number;
  /** /proc/cmdline */
  kernelCmdline: string;
  kvm: {
    /** /dev/kvm opens and creates a VM. */
    usable: boolean;
    /** Why not, when it is not. */
    reason?: string;
    /** A standard guest kernel boots under it (false on nested page-table-based KVMs). */
    canBootGuest: boolean;
    /** KVM_CHECK_EXTENSION(KVM_CAP_X86_DISABLE_EXITS) on a VM fd; 0 when unknown. */
    disableExitsMask: number;
    haltPollCap: boolean;
    /** kvm module parameters that matter (name → value as read). */
    params: Record<string, string>;
    /** The vendor module loaded beside kvm (kvm_intel, kvm_amd, kvm_pvm, …), when one is. */
    module?: string;
  };
  tracefs: { path: string | undefined; writable: boolean };
  /** perf as the perf collector needs it: its path on PATH, and kernel.perf_event_paranoid. */
  perf: { path?: string; paranoid?: number };
  root: boolean;
  /** Row names of /proc/interrupts (LOC, PIN, PIW, …). */
  interruptRows: string[];
  /** Does this host path exist? */
  pathExists(path: string): Promise<boolean>;
}
