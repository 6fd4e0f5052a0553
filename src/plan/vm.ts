// What a variant's knobs ask of KVM and QEMU, decided once: the -cpu model and its switches, how
// disabled exits are requested and which mask KVM will get, whether MONITOR/MWAIT is in the guest
// CPUID, the vendor the guest sees, per-VM halt polling, and the guest kernel parameters the idle
// knobs add. Preflight, the QEMU command line and the mock all take their answers from here; none
// of them derives a rule of its own.
//
// The rules are QEMU's and KVM's (QEMU 7.2, target/i386/kvm/kvm.c; Linux arch/x86/kvm/x86.c):
// - QEMU's only switch for KVM_CAP_X86_DISABLE_EXITS is `-overcommit cpu-pm=on`, which asks for
//   everything the host allows of MWAIT|HLT|PAUSE|CSTATE. Per-bit control is cpu-pm=on with
//   kvmlab's shim rewriting the mask (host-scripts/disable-exits-shim.c).
// - With cpu-pm=on QEMU reports MONITOR as supported when KVM allows MWAIT passthrough, so a guest
//   with `-cpu host` (or max) would see MWAIT whatever mask the shim then applies; a named model does
//   not take supported features, so it gets MONITOR only when asked (monitor=on).
// - kvmlab's default (expose_mwait unset) is MWAIT in CPUID exactly when MWAIT is passed through:
//   otherwise a cell that passes HLT through on a host that allows MWAIT would idle and park in an
//   intercepted MWAIT and measure its NOP spin instead (-monitor takes it out). MWAIT exposed but
//   intercepted is asked for by name (expose_mwait: true).
import type { Accel, HostFacts } from '../model/host-facts.js';
import { CPU_PM_EXITS_MASK, EXIT_BITS, maskOf } from '../model/exits.js';
import type { GuestSpec, Knobs } from '../experiment/schema.js';

/** How kvmlab asks KVM for disabled exits in this VM. */
export type ExitControl =
  | { mode: 'none' }
  /** -overcommit cpu-pm=on and the shim rewriting the mask to `mask`. */
  | { mode: 'shim'; mask: number }
  /** QEMU's own all-allowed mode; the shim only records what QEMU asked and KVM answered. */
  | { mode: 'cpu-pm' };

export interface VmPlan {
  accel: Accel;
  /** The -cpu model: guest.cpu as written, else the default for the accelerator. */
  cpuModel: string;
  /** The whole -cpu value: the model and the switches the knobs imply. */
  cpu: string;
  exitControl: ExitControl;
  /** The disabled-exits mask KVM is asked for (0 when exit control is off). */
  disableExitsMask: number;
  /** MONITOR/MWAIT is in the guest CPUID. */
  mwaitInCpuid: boolean;
  /**
   * The guest's CPUID leaf 5 lists MWAIT sub-states of C1: with cpu-pm=on it is the host's leaf
   * (absent when the host's is not known), otherwise QEMU's own, which lists none.
   */
  guestMwaitC1?: boolean;
  /** The CPU vendor the guest sees, when known (QEMU's vendor= property, or the host's). */
  guestVendor?: string;
  /** Per-VM halt polling window (KVM_CAP_HALT_POLL), when the variant sets one. */
  haltPollNs?: number;
  /** Guest kernel parameters the idle knobs add (idle=, cpuidle_haltpoll.force=1). */
  guestKernelArgs: string[];
}

/** The host facts the plan depends on. */
export type PlanHost = Pick<HostFacts, 'cpuVendor' | 'mwaitC1Substates'> & { kvm: Pick<HostFacts['kvm'], 'disableExitsMask'> };

/** Default -cpu: the host's CPU under KVM, a model TCG emulates well otherwise. */
export function defaultCpuModel(arch: GuestSpec['arch'], accel: Accel): string {
  if (accel === 'kvm') return 'host';
  return arch === 'x86_64' ? 'qemu64' : 'power9';
}

/** -cpu host and -cpu max take every feature KVM reports as supported. */
function takesSupported(model: string): boolean {
  return /^(host|max)$/.test(model);
}

/** Does this variant ask anything of KVM's exit handling (a mask, cpu-pm, or MWAIT in CPUID)? */
export function wantsExitControl(knobs: Knobs): boolean {
  return knobs.disable_exits === 'cpu-pm' || knobs.disable_exits.length > 0 || knobs.expose_mwait === true;
}

/** Why these knobs cannot be given to this guest under this accelerator, or undefined. */
export function whyNotPlannable(guest: GuestSpec, knobs: Knobs, accel: Accel): string | undefined {
  const exits = wantsExitControl(knobs);
  if (!exits && knobs.halt_poll_ns === undefined) return undefined;
  if (accel === 'kvm' && guest.arch === 'x86_64') return undefined;
  return `${exits ? 'disabled exits' : 'halt_poll_ns'} ${exits ? 'need' : 'needs'} an x86_64 guest under KVM; this VM is ${guest.arch} under ${accel.toUpperCase()}`;
}

/** The plan for one VM. Throws when whyNotPlannable says no: preflight skips such variants first. */
export function planVm(guest: GuestSpec, knobs: Knobs, accel: Accel, host: PlanHost): VmPlan {
  const refused = whyNotPlannable(guest, knobs, accel);
  if (refused) throw new Error(refused);
  const de = knobs.disable_exits;
  const exitControl: ExitControl = de === 'cpu-pm' ? { mode: 'cpu-pm' } : wantsExitControl(knobs) ? { mode: 'shim', mask: maskOf(de) } : { mode: 'none' };
  const disableExitsMask = exitControl.mode === 'cpu-pm' ? host.kvm.disableExitsMask & CPU_PM_EXITS_MASK : exitControl.mode === 'shim' ? exitControl.mask : 0;
  const cpuModel = guest.cpu ?? defaultCpuModel(guest.arch, accel);
  const model = cpuModel.split(',')[0]!;
  const cpuPm = exitControl.mode !== 'none';
  const mwaitSupported = cpuPm && (host.kvm.disableExitsMask & EXIT_BITS.mwait) !== 0;
  const mwaitPassed = (disableExitsMask & EXIT_BITS.mwait) !== 0;
  const mwaitInCpuid = knobs.expose_mwait ?? (mwaitSupported && mwaitPassed && takesSupported(model));

  const switches: string[] = [];
  if (knobs.guest_haltpoll && accel === 'kvm' && guest.arch === 'x86_64') switches.push('kvm-hint-dedicated=on');
  // cpu-pm=on puts MONITOR/MWAIT in a host-like CPUID; a "no" (said, or kvmlab's default when MWAIT
  // is not passed through) takes it out again, and an explicit "yes" on a named model puts it in.
  if (!mwaitInCpuid && cpuPm && mwaitSupported && takesSupported(model)) switches.push('-monitor');
  if (knobs.expose_mwait === true && !takesSupported(model)) switches.push('monitor=on');

  // QEMU copies the host's leaf 5 only with cpu-pm=on (target/i386/kvm/kvm-cpu.c); its own lists no C-state.
  const guestMwaitC1 = !mwaitInCpuid ? false : cpuPm && takesSupported(model) ? (host.mwaitC1Substates === undefined ? undefined : host.mwaitC1Substates > 0) : false;
  const vendor = /(?:^|,)vendor=([^,]+)/.exec(cpuModel)?.[1] ?? (takesSupported(model) ? host.cpuVendor : undefined);
  const guestKernelArgs = [...(knobs.guest_idle !== 'default' ? [`idle=${knobs.guest_idle}`] : []), ...(knobs.guest_haltpoll ? ['cpuidle_haltpoll.force=1'] : [])];
  return {
    accel,
    cpuModel,
    cpu: [cpuModel, ...switches].join(','),
    exitControl,
    disableExitsMask,
    mwaitInCpuid: guest.arch === 'x86_64' && accel === 'kvm' && mwaitInCpuid,
    ...(guestMwaitC1 !== undefined ? { guestMwaitC1 } : {}),
    ...(vendor ? { guestVendor: vendor } : {}),
    ...(knobs.halt_poll_ns !== undefined ? { haltPollNs: knobs.halt_poll_ns } : {}),
    guestKernelArgs,
  };
}
