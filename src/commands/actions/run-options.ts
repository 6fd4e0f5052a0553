// What `run` and `plan` read the same way from their flags: the repetitions, and what `--on nested`
// refuses.
import { InputError } from '../../errors.js';

/** The flags `run` and `plan` both take: where, with what, how often, which variants. */
export interface RunChoices {
  on: string;
  backend: 'auto' | 'qemu' | 'mock';
  accel: 'auto' | 'kvm' | 'tcg';
  repeat?: string;
  only?: string;
  json?: boolean;
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
