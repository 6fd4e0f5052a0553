// The guest kernel command line kvmlab boots with: console, the run's SSH client key for kvmlab's
// image (kvmlab.authkey=, base64 of the OpenSSH line), and the guest-side idle knobs. kvmlab's image
// boots quiet: every console byte is an exit, and under a nested KVM or TCG a chatty boot costs
// minutes; the full kernel log stays in the guest's dmesg.
import type { VmPlan } from '../plan/vm.js';
import type { GuestSpec } from '../spec/schema.js';

export function guestCmdline(guest: GuestSpec, plan: VmPlan, clientPublicKey: string): string {
  const parts = [guest.arch === 'ppc64' ? 'console=hvc0' : 'console=ttyS0', 'panic=-1'];
  if (!guest.ssh) parts.push('quiet', `kvmlab.authkey=${Buffer.from(clientPublicKey, 'utf8').toString('base64')}`);
  parts.push(...plan.guestKernelArgs);
  if (guest.append) parts.push(guest.append);
  return parts.join(' ');
}
