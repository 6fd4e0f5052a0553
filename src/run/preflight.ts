// Preflight: what a variant needs from the host, checked before anything boots. Unmet needs skip
// the variant with a reason; a pinning to host CPUs that do not exist refuses the whole run.
import type { Accel, HostFacts } from '../model/host-facts.js';
import { hasKernelParam, kernelWords } from '../formats/cmdline.js';
import { whyNoKvm } from '../plan/accel.js';
import { formatCpuList } from '../model/cpulist.js';
import { EXIT_BITS, EXIT_NAMES, formatMask, type ExitName } from '../model/exits.js';
import { planVm, wantsExitControl, whyNotPlannable } from '../plan/vm.js';
import { HOST_AXIS, type Experiment, type HostValue, type Knobs } from '../experiment/schema.js';
import type { RunTarget } from '../results/summary.js';
import type { Variant } from '../experiment/matrix.js';
import { vfioUnmet } from '../host/vfio.js';

/** Why the host refuses one exit bit, in the words of the kernel's rules. */
export function whyRefused(bit: ExitName, facts: HostFacts): string {
  const smtRsb = /^[Yy1]/.test(facts.kvm.params.mitigate_smt_rsb ?? '');
  if (smtRsb && bit !== 'pause' && bit !== 'aperfmperf') return `kvm.mitigate_smt_rsb is on, so KVM refuses ${bit} passthrough`;
  if (bit === 'mwait') {
    const has = facts.cpuFlags.includes('monitor') || facts.cpuFlags.includes('mwait');
    return has ? 'KVM does not allow MWAIT passthrough here (MONITOR erratum or no always-running APIC timer)' : 'the host CPU has no MONITOR/MWAIT (no monitor flag in /proc/cpuinfo)';
  }
  if (bit === 'aperfmperf') return `the host kernel (${facts.kernelRelease}) does not offer APERFMPERF passthrough (Linux 6.17 or later)`;
  return `KVM does not allow ${bit} passthrough on this host`;
}

/** Why a nested KVM host (L1 under TCG) cannot show an HLT-passthrough variant. */
export const NESTED_HLT_REASON =
  'HLT passthrough is not run in a KVM host nested under TCG: there the L2 guest never reaches its init (seen with QEMU 7.2 and 10.0.2 as L0; the L1 CPU that runs the passed-through HLT does not wake). Run HLT-passthrough cells on a lab box';

export async function unmetRequirements(exp: Experiment, knobs: Knobs, facts: HostFacts, accel: Accel, target: RunTarget = { kind: 'local' }): Promise<string[]> {
  const r = exp.requires;
  const reasons: string[] = [];
  if (r.arch && !r.arch.includes(facts.arch as never)) reasons.push(`needs a ${r.arch.join(' or ')} host; this host is ${facts.arch}`);
  const noKvm = whyNoKvm(exp.guest.arch, facts);
  if (r.accel === 'kvm' && accel !== 'kvm') {
    reasons.push(`needs KVM, but this run uses TCG${noKvm ? ` (${noKvm})` : ''}`);
  } else if (accel === 'kvm' && noKvm) {
    reasons.push(`needs KVM (--accel kvm), but ${noKvm}`);
  } else if (r.accel === 'kvm' && !facts.kvm.canBootGuest) {
    reasons.push(`needs a KVM that can boot a guest kernel; this host's cannot (${facts.kvm.reason ?? 'nested KVM'})`);
  }
  if (r.accel === 'tcg' && accel !== 'tcg') reasons.push('needs TCG (run with --accel tcg)');
  const missingFlags = r.cpu_flags.filter((f) => !facts.cpuFlags.includes(f));
  if (missingFlags.length) reasons.push(`needs host CPU flag${missingFlags.length > 1 ? 's' : ''} ${missingFlags.join(', ')} (absent from /proc/cpuinfo)`);
  for (const want of r.kernel_params) if (!hasKernelParam(facts.kernelCmdline, want)) reasons.push(`needs host kernel parameter ${want} (not on /proc/cmdline)`);
  for (const dev of r.devices) if (!(await facts.pathExists(dev))) reasons.push(`needs ${dev} (not present on this host)`);
  for (const d of exp.guest.devices) reasons.push(...(await vfioUnmet(d.vfio, facts)));
  const rows = r.interrupts.filter((row) => !facts.interruptRows.includes(row));
  if (rows.length) reasons.push(`needs interrupt row${rows.length > 1 ? 's' : ''} ${rows.join(', ')} in /proc/interrupts (${rows.includes('PIW') || rows.includes('PIN') ? 'posted interrupts are not enabled' : 'absent'})`);
  if (r.root && !facts.root) reasons.push('needs root');

  const notPlannable = whyNotPlannable(exp.guest, knobs, accel);
  if (notPlannable) reasons.push(notPlannable);
  else if ((wantsExitControl(knobs) || knobs.halt_poll_ns !== undefined) && !noKvm) {
    const plan = planVm(exp.guest, knobs, accel, facts);
    const allowed = facts.kvm.disableExitsMask;
    const asked = plan.disableExitsMask;
    for (const bit of EXIT_NAMES) {
      if (asked & EXIT_BITS[bit] && !(allowed & EXIT_BITS[bit])) reasons.push(`asks for ${bit} passthrough, which this host does not allow (allowed ${formatMask(allowed)}): ${whyRefused(bit, facts)}`);
    }
    if (knobs.expose_mwait && !(allowed & EXIT_BITS.mwait)) reasons.push(`asks for MWAIT in the guest CPUID, which QEMU offers only when KVM allows MWAIT passthrough: ${whyRefused('mwait', facts)}`);
    if (plan.haltPollNs !== undefined && !facts.kvm.haltPollCap) reasons.push('asks for a per-VM halt_poll_ns, but this KVM lacks KVM_CAP_HALT_POLL');
    if (target.kind === 'nested' && asked & EXIT_BITS.hlt) reasons.push(NESTED_HLT_REASON);
    // An AMD/Hygon-vendor Linux guest parks offlined CPUs in HLT whatever CPUID says
    // (mwait_play_dead skips them since 5.3), so a MWAIT cell there would measure HLT.
    const vendor = plan.guestVendor;
    if ((asked & EXIT_BITS.mwait || knobs.expose_mwait) && vendor && /AuthenticAMD|HygonGenuine/.test(vendor)) {
      reasons.push(`relies on the guest using MWAIT, but the guest CPU vendor is ${vendor} and Linux parks and idles in HLT there (mwait_play_dead skips AMD/Hygon since Linux 5.3); set guest.cpu to host,vendor=GenuineIntel`);
    }
  }
  return reasons;
}

/**
 * Why this host is not the one a host-axis value names: its kernel series (debian:X.Y against
 * uname -r) or a boot parameter it adds (against /proc/cmdline). A kernel of the user's own is
 * known only to the nested host booted from it (its target says which kernel that was). A value
 * is never run on a host that merely resembles it: the variant is skipped with the way to run it.
 */
export function hostValueMismatch(label: string, host: HostValue | undefined, facts: Pick<HostFacts, 'kernelRelease' | 'kernelCmdline' | 'simulated'>, target: RunTarget): string[] {
  if (!host) return [];
  const reasons: string[] = [];
  const where = facts.simulated ? 'the simulated host' : target.kind === 'nested' ? 'this nested host' : 'this host';
  const how = target.kind === 'nested' ? '' : ` (kvmlab run --on nested boots a host that is; on a lab box, boot it so)`;
  const k = host.kernel;
  if (typeof k === 'string') {
    const series = k.replace(/^debian:/, '');
    if (!facts.kernelRelease.startsWith(`${series}.`) && facts.kernelRelease !== series) reasons.push(`host ${label} runs kernel ${series}; ${where} runs ${facts.kernelRelease}${how}`);
  } else if (k && target.kind !== 'nested') {
    reasons.push(`host ${label} runs a kernel of your own (${k.path}), which only a nested host booted from it runs${how}`);
  }
  const missing = kernelWords(host.cmdline ?? '').filter((w) => !hasKernelParam(facts.kernelCmdline, w));
  if (missing.length) reasons.push(`host ${label} boots with ${missing.join(' ')}, which ${where}'s /proc/cmdline lacks${how}`);
  if (host.qemu !== undefined && facts.simulated) reasons.push(`host ${label} runs the guest in the QEMU at ${host.qemu}; the mock simulates QEMU and runs none (run it with --backend qemu)`);
  return reasons;
}

/** Why the whole run is refused: its pinning names host CPUs this host does not have. */
function pinningProblem(exp: Experiment, file: string, facts: HostFacts): string | undefined {
  const p = exp.pinning;
  if (!p) return undefined;
  const have = new Set(facts.cpus);
  const problems: string[] = [];
  for (const [vcpu, cpus] of Object.entries(p.vcpupin)) {
    const missing = cpus.filter((c) => !have.has(c));
    if (missing.length) problems.push(`pinning.vcpupin.${vcpu} pins vCPU ${vcpu} to host CPU ${formatCpuList(missing)}`);
  }
  const missingEmu = (p.emulatorpin ?? []).filter((c) => !have.has(c));
  if (missingEmu.length) problems.push(`pinning.emulatorpin names host CPU ${formatCpuList(missingEmu)}`);
  if (problems.length === 0) return undefined;
  return `${file}: ${problems.join('; ')}, but this ${facts.simulated ? 'simulated ' : ''}host has CPUs ${formatCpuList(facts.cpus)}. Pin to CPUs the host has, or run on a larger host.`;
}

export interface Preflight {
  /** Each variant's unmet needs, in the order of the variants given; none when it can run. */
  reasons: string[][];
  /** Why the run is refused as a whole (exit 3), before anything boots. */
  refused?: string;
}

/**
 * Every variant judged on this host. A host that can run none of them is told why, variant by
 * variant; only a run with a runnable variant is held to its pinning.
 */
export async function preflight(exp: Experiment, file: string, variants: readonly Variant[], facts: HostFacts, accel: Accel, target?: RunTarget): Promise<Preflight> {
  const reasons: string[][] = [];
  for (const v of variants) reasons.push([...hostValueMismatch(v.labels[HOST_AXIS] ?? '', v.host, facts, target ?? { kind: 'local' }), ...(await unmetRequirements(exp, v.knobs, facts, accel, target))]);
  const refused = reasons.some((r) => r.length === 0) ? pinningProblem(exp, file, facts) : undefined;
  return { reasons, ...(refused ? { refused } : {}) };
}

/** Why `run` refuses this experiment as given: a step runs a command on the host, and that was not allowed. */
export function hostCommandsRefusal(exp: Experiment, file: string, allowHostCommands: boolean): string | undefined {
  const hostStep = exp.steps.find((s) => s.kind === 'host');
  if (!hostStep || allowHostCommands) return undefined;
  return `${file}: step "${hostStep.name}" runs a command on the host; kvmlab runs host commands only with --allow-host-commands`;
}
