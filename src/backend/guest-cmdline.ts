// The guest kernel command line kvmlab boots with: console, the run's SSH client key for kvmlab's
// image (kvmlab.authkey=, base64 of the OpenSSH line), and the guest-side idle knobs. kvmlab's image
// boots quiet: every console byte is an exit, and under a nested KVM or TCG a chatty boot costs
// minutes; the full kernel log stays in the guest's dmesg.
import type { Placeholder } from '../model/placeholder.js';
import type { VmPlan } from '../plan/vm.js';
import type { GuestSpec } from '../experiment/schema.js';

/** `clientPublicKey` is the run's OpenSSH public key line, or its placeholder in a plan. */
export function guestCmdline(guest: GuestSpec, plan: VmPlan, clientPublicKey: string | Placeholder): string {
  const parts = [guest.arch === 'ppc64' ? 'console=hvc0' : 'console=ttyS0', 'panic=-1'];
  const authkey = typeof clientPublicKey === 'string' ? Buffer.from(clientPublicKey, 'utf8').toString('base64') : String(clientPublicKey);
  if (!guest.ssh) parts.push('quiet', `kvmlab.authkey=${authkey}`);
  parts.push(...plan.guestKernelArgs);
  if (guest.append) parts.push(guest.append);
  return parts.join(' ');
}
