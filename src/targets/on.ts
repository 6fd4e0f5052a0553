// `--on WHERE`: where a command's host is. local is this host; nested a KVM host kvmlab boots under
// TCG (targets/nested.ts). A remote lab box (`ssh://root@lab-box`) is the next target to come.
import { InputError } from '../errors.js';

export type On = 'local' | 'nested';

export const ON_HELP = 'where it happens: local (this host) or nested (a KVM host kvmlab boots under TCG, for hosts without a usable KVM)';

export function parseOn(on: string): On {
  if (on === 'local' || on === 'nested') return on;
  if (/^ssh:\/\//.test(on)) throw new InputError(`--on ${on}: running on a remote lab box over SSH is not built yet; run kvmlab on that box with --on local, or use --on nested here`);
  throw new InputError(`--on ${on}: give local (this host) or nested (a KVM host emulated under TCG)`);
}
