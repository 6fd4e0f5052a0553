// The guest kernel command line kvmlab boots with: console, the run's SSH client key for kvmlab's
// image (kvmlab.authkey=, base64 of the OpenSSH line), and the guest-side idle knobs. kvmlab's image
// boots quiet: every console byte is an exit, and under a nested KVM or TCG a chatty boot costs
// minutes; the full kernel log stays in the guest's dmesg.
import type { GuestSpec, Knobs } from '../spec/schema.js';

export function guestCmdline(guest: GuestSpec, knobs: Knobs, clientPublicKey: string): string {
  const parts = [guest.arch === 'ppc64' ? 'console=hvc0' : 'console=ttyS0', 'panic=-1'];
  if (!guest.ssh) parts.push('quiet', `kvmlab.authkey=${Buffer.from(clientPublicKey, 'utf8').toString('base64')}`);
  if (knobs.guest_idle !== 'default') parts.push(`idle=${knobs.guest_idle}`);
  if (knobs.guest_haltpoll) parts.push('cpuidle_haltpoll.force=1');
  if (guest.append) parts.push(guest.append);
  return parts.join(' ');
}
