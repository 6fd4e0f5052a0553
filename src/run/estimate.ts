// How long a run takes, said before it starts (`kvmlab plan`): each run of a variant is its declared
// windows (sample: and wait:, steps.ts) plus its guest's boot, taken from figures measured where runs
// happen. Steps without a window count nothing: they take what they take, and their timeouts bound
// them far above what a healthy run needs. While a run goes, progress.ts measures instead.
import type { Accel } from '../model/host-facts.js';
import type { GuestSpec, Step } from '../experiment/schema.js';
import { declaredWindowsMs } from './steps.js';

/** A time and where the figure comes from. */
export interface Figure {
  seconds: number;
  source: string;
}

/** Where the runs happen: the mock's virtual time, this host, or a nested KVM host. */
export type EstimatedOn = 'mock' | 'local' | 'nested';

/** One guest's boot, launch to its first SSH command, where it runs. */
export function bootFigure(on: EstimatedOn, arch: GuestSpec['arch'], accel: Accel): Figure {
  if (on === 'mock') return { seconds: 0, source: "no boot is counted: the mock boots, and runs its windows, on its virtual clock (a mock run takes seconds of wall time)" };
  if (on === 'nested') return { seconds: 105, source: "a run in the nested KVM host spends about 105 s outside its windows, its guest's boot of about 55 s included (experiments/README.md: offline-vcpu-idle's 2 runs took about 5 min with L1's start)" };
  if (accel === 'kvm') return { seconds: 5, source: 'a run on a lab host with KVM spends about 5 s outside its windows (experiments/README.md: offline-vcpu-idle, about 20 s a run with 15 s of windows)' };
  if (arch === 'x86_64') return { seconds: 7, source: "kvmlab's x86_64 image answers SSH about 7 s after launch under TCG (experiments/README.md)" };
  return { seconds: 15, source: 'a ppc64 guest boots in 10–15 s under TCG (experiments/README.md)' };
}

/** Booting L1 and starting kvmlab in it, once for a whole `--on nested` run. */
export const L1_START: Figure = { seconds: 55, source: 'L1 boots in 15–25 s and kvmlab starts there in about 30 s (experiments/README.md)' };

export interface Estimate {
  runs: number;
  /** Per run. */
  bootSeconds: number;
  /** Per run: the declared windows. */
  windowsSeconds: number;
  /** All runs. */
  seconds: number;
}

export function estimateRuns(steps: readonly Step[], runs: number, boot: Figure): Estimate {
  const windowsSeconds = declaredWindowsMs(steps) / 1000;
  return { runs, bootSeconds: boot.seconds, windowsSeconds, seconds: runs * (boot.seconds + windowsSeconds) };
}
