// /proc/cmdline: which kernel parameters are set, and to what.

/** The kernel command line facts that matter to kvmlab's experiments: value, "" (present) or null. */
export const CMDLINE_FACTS = ['nohz_full', 'isolcpus', 'rcu_nocbs', 'idle', 'intel_iommu', 'amd_iommu', 'rcutree.use_softirq', 'mitigations', 'cpuidle_haltpoll.force'] as const;

/** The words of a kernel command line that are the kernel's: those after a bare "--" belong to init. */
export function kernelWords(cmdline: string): string[] {
  const words = cmdline.trim().split(/\s+/).filter(Boolean);
  const end = words.indexOf('--');
  return end < 0 ? words : words.slice(0, end);
}

/** Is the kernel parameter `want` ("nohz_full" or "nohz_full=2-3") on this command line? */
export function hasKernelParam(cmdline: string, want: string): boolean {
  const words = kernelWords(cmdline);
  return want.includes('=') ? words.includes(want) : words.some((w) => w === want || w.startsWith(`${want}=`));
}

export function cmdlineFacts(cmdline: string): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  const words = kernelWords(cmdline);
  for (const name of CMDLINE_FACTS) {
    const w = [...words].reverse().find((x) => x === name || x.startsWith(`${name}=`));
    out[name] = w === undefined ? null : w.includes('=') ? w.slice(name.length + 1) : '';
  }
  return out;
}
