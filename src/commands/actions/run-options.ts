// What `run` and `plan` read the same way from their flags: the repetitions, and for `--on nested`
// what is refused and the kvmlab command that runs inside L1.
import { resolve } from 'node:path';
import { InputError } from '../../errors.js';

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

export interface InsideL1 {
  repeat?: number;
  only?: string;
  allowHostCommands?: boolean;
  json?: boolean;
}

/**
 * The kvmlab command run inside L1 (less --target-info, which says where that is): the same file,
 * real QEMU under L1's KVM, results into `out`, with --force since `out` already holds the nested
 * host's own files.
 */
export function insideL1Args(file: string, out: string, flags: InsideL1): string[] {
  const args = ['run', resolve(file), '--backend', 'qemu', '--accel', 'kvm', '--out', out, '--force'];
  if (flags.repeat !== undefined) args.push('--repeat', String(flags.repeat));
  if (flags.only) args.push('--only', flags.only);
  if (flags.allowHostCommands) args.push('--allow-host-commands');
  if (flags.json) args.push('--json');
  return args;
}
