// What `run` and `plan` read the same way from their flags: the repetitions, and what `--on nested`
// refuses.
import { InputError } from '../../errors.js';
import { HostKernel } from '../../spec/schema.js';

/** The flags `run` and `plan` both take: where, with what, how often, which variants. */
export interface RunChoices {
  on: string;
  backend: 'auto' | 'qemu' | 'mock';
  accel: 'auto' | 'kvm' | 'tcg';
  repeat?: string;
  only?: string;
  json?: boolean;
  hostKernel?: string;
}

/** --host-kernel debian:SERIES: only with --on nested, where kvmlab boots the host. */
export function parseHostKernel(flag: string | undefined, on: string): string | undefined {
  if (flag === undefined) return undefined;
  if (on !== 'nested') throw new InputError(`--host-kernel ${flag}: kvmlab chooses the host's kernel only for the host it boots; add --on nested (on this host, boot the kernel you want and run here)`);
  if (!HostKernel.safeParse(flag).success) throw new InputError(`--host-kernel ${flag}: give a Debian kernel series such as debian:6.12`);
  return flag;
}

/** --repeat N: repetitions per variant, overriding the file. */
export function parseRepeat(flag: string | undefined): number | undefined {
  if (flag === undefined) return undefined;
  const repeat = Number(flag);
  if (!(Number.isInteger(repeat) && repeat >= 1 && repeat <= 1000)) throw new InputError(`--repeat ${flag}: give a whole number from 1 to 1000`);
  return repeat;
}

/** --on nested runs real QEMU under KVM inside L1: the mock and TCG are refused there. */
export function refuseOnNested(backend: string, accel: string): void {
  if (backend === 'mock') throw new InputError('--on nested runs real QEMU under the nested host\'s KVM; drop --backend mock (or run the mock with --on local)');
  if (accel === 'tcg') throw new InputError('--on nested exists to run guests under KVM; drop --accel tcg (or run TCG with --on local)');
}
