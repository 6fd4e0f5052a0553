// Which accelerator a run's guests get. One owner for the rule, whatever backend runs them: the mock
// answers from its simulated host's facts exactly as real QEMU does from the real host's.
import type { Accel, HostFacts } from '../model/host-facts.js';
import type { GuestSpec } from '../experiment/schema.js';

export interface AccelChoice {
  accel: Accel;
  /** Said once on stderr when the choice is not what was asked, or asks for trouble. */
  notice?: string;
}

/** Why a guest of this architecture cannot run under KVM on this host, or undefined when it can. */
export function whyNoKvm(guestArch: GuestSpec['arch'], facts: HostFacts): string | undefined {
  const native = guestArch === 'x86_64' ? facts.arch === 'x86_64' : facts.arch.startsWith('ppc64');
  if (!native) return `a ${guestArch} guest cannot run under KVM on this ${facts.arch} host`;
  if (!facts.kvm.usable) return facts.kvm.reason ?? 'KVM is not usable on this host';
  return undefined;
}

export function chooseAccel(asked: 'auto' | Accel, guestArch: GuestSpec['arch'], facts: HostFacts): AccelChoice {
  if (asked === 'tcg') return { accel: 'tcg' };
  const noKvm = whyNoKvm(guestArch, facts);
  if (asked === 'kvm') {
    // Kept as asked: preflight then skips every variant with this reason, so the results still say,
    // per variant, why nothing ran.
    if (noKvm) return { accel: 'kvm', notice: `--accel kvm: ${noKvm}; use --accel tcg (or auto)` };
    if (!facts.kvm.canBootGuest) return { accel: 'kvm', notice: `using KVM as asked, but ${facts.kvm.reason ?? 'this KVM cannot boot a guest kernel'}; expect the guest not to boot (--accel tcg runs it under emulation)` };
    return { accel: 'kvm' };
  }
  if (noKvm) return { accel: 'tcg', notice: `using TCG, not KVM: ${noKvm}` };
  if (!facts.kvm.canBootGuest) return { accel: 'tcg', notice: `using TCG, not KVM: ${facts.kvm.reason ?? 'this KVM cannot boot a guest kernel'}` };
  return { accel: 'kvm' };
}
