// What a cell of an experiment measures, decided from its VmPlan before anything boots: the
// instruction the guest idles in and the one an offlined vCPU parks in, and what KVM does with
// each. A verdict is evidence only when this is the mechanism its claim's words name; the plan
// shows it per variant, and the mock carries it out (it never derives its own).
//
// The rules (Linux 6.1 guests; arch/x86/kernel/smpboot.c, process.c; arch/x86/kvm/x86.c, svm.c, vmx.c):
// - An offlined x86 CPU parks in mwait_play_dead when MONITOR/MWAIT is in its CPUID — except on
//   AMD and Hygon vendors, which Linux >= 5.3 sends straight to hlt_play_dead — else in HLT.
// - An idle CPU takes what its cpuidle driver picks: idle=poll polls; idle=halt and idle=nomwait
//   halt; cpuidle-haltpoll polls in the guest, then halts; by default an Intel-vendor guest with
//   MWAIT idles in MWAIT where CPUID leaf 5 lists a C1 sub-state (the host's leaf under cpu-pm=on,
//   read by the probe; TCG's -cpu max, as in the nested host, lists none: it halts), everyone else
//   in HLT.
// - KVM passes the instruction through when its bit is in the disabled-exits mask (the pCPU stays
//   in guest mode: the thread looks busy, almost no exits); an intercepted HLT blocks the vCPU thread
//   until a wakeup; an intercepted MWAIT is emulated as a NOP, so the guest's loop around it spins
//   through an exit storm.
import { EXIT_BITS } from '../model/exits.js';
import type { VmPlan } from './vm.js';

export type GuestInstruction = 'hlt' | 'mwait' | 'poll' | 'none';
export type KvmAction = 'passed' | 'blocks' | 'nop-spin' | 'none';

export interface Mechanism {
  /** What an idle vCPU executes, and what KVM does with it. */
  idle: GuestInstruction;
  idleKvm: KvmAction;
  /** What an offlined vCPU parks in, and what KVM does with it. */
  parked: GuestInstruction;
  kvm: KvmAction;
  /** What the plan cannot know for sure, in words. */
  notes: string[];
}

const AMD_LIKE = /^(AuthenticAMD|HygonGenuine)$/;

/** What KVM does with one guest instruction under this plan's mask. Pure. */
export function kvmActionOn(insn: GuestInstruction, disableExitsMask: number): KvmAction {
  if (insn === 'mwait') return disableExitsMask & EXIT_BITS.mwait ? 'passed' : 'nop-spin';
  if (insn === 'hlt') return disableExitsMask & EXIT_BITS.hlt ? 'passed' : 'blocks';
  return 'none';
}

/** The mechanism of one VM as planned. Pure. */
export function mechanismOf(plan: VmPlan, arch: 'x86_64' | 'ppc64'): Mechanism {
  if (arch !== 'x86_64' || plan.accel !== 'kvm') {
    const why = arch !== 'x86_64' ? `${arch} guest: no x86 HLT/MWAIT exits` : 'TCG: no KVM, no exits';
    return { idle: 'none', idleKvm: 'none', parked: 'none', kvm: 'none', notes: [why] };
  }
  const notes: string[] = [];
  const vendor = plan.guestVendor;
  const amdLike = vendor !== undefined && AMD_LIKE.test(vendor);
  if (vendor === undefined && plan.mwaitInCpuid) notes.push('guest vendor unknown: taken as Intel (an AMD or Hygon guest parks in HLT)');
  const mwaitUsable = plan.mwaitInCpuid && !amdLike;
  const parked: GuestInstruction = mwaitUsable ? 'mwait' : 'hlt';
  const args = plan.guestKernelArgs;
  let idle: GuestInstruction;
  if (args.includes('idle=poll')) idle = 'poll';
  else if (args.includes('idle=halt') || args.includes('idle=nomwait')) idle = 'hlt';
  else if (args.includes('cpuidle_haltpoll.force=1')) {
    idle = 'hlt';
    notes.push('cpuidle-haltpoll polls in the guest before each HLT');
  } else if (mwaitUsable && plan.guestMwaitC1 !== false) {
    idle = 'mwait';
    if (plan.guestMwaitC1 === undefined) notes.push("idles in MWAIT only where CPUID leaf 5 lists a C1 sub-state, and the host's leaf 5 is not known; else in HLT");
  } else {
    idle = 'hlt';
    if (mwaitUsable) notes.push('MWAIT is in CPUID, but leaf 5 lists no C1 sub-state, so Linux idles in HLT');
  }
  return { idle, idleKvm: kvmActionOn(idle, plan.disableExitsMask), parked, kvm: kvmActionOn(parked, plan.disableExitsMask), notes };
}

/** "parks in MWAIT, passed through" — for plan's text. Pure. */
export function describeMechanism(m: Mechanism): string {
  const what = (insn: GuestInstruction, kvm: KvmAction) => (insn === 'none' ? 'none' : `${insn.toUpperCase()}, ${({ passed: 'passed through (the thread burns its pCPU, almost no exits)', blocks: 'intercepted and blocks (the thread sleeps until a wakeup)', 'nop-spin': 'intercepted and emulated as a NOP (the thread spins through an MWAIT exit storm)', none: 'no exit' } as const)[kvm]}`);
  return `idles in ${what(m.idle, m.idleKvm)}; an offlined vCPU parks in ${what(m.parked, m.kvm)}${m.notes.length ? ` (${m.notes.join('; ')})` : ''}`;
}
