// What a run's results say, as summary.json holds them: the run, where it happened, each variant
// with its repetitions and expectations, and the exit status that follows from them.
import type { Experiment } from '../spec/schema.js';
import type { Accel, HostFacts } from './host-facts.js';
import type { PinRecord } from './threads.js';

/** What was asked of the VM and what actually took effect, for the results. */
export interface Effective {
  accel: Accel;
  argv: string[];
  /** The disabled-exits mask KVM accepted, when known. */
  disableExitsMask?: number;
  [key: string]: unknown;
}

export interface ExpectationResult {
  description: string;
  metric: string;
  /** e.g. "median vcpu.cpu_pct [vcpu1] @ parked >= 80" */
  claim: string;
  passed: boolean;
  /** The observed value, or null when no row matched. */
  observed: number | null;
  /** One value per repetition, in repetition order. */
  perRepetition: number[];
  rows: number;
  note?: string;
}

/** Where a run happened. On a nested host: the emulator under L1 and L1 itself. */
export type RunTarget =
  | { kind: 'local' }
  | { kind: 'nested'; l0: string; l1: { kernel: string; cpus: number; memoryMiB: number; cmdline: string; image: string } };

export type VariantStatus = 'passed' | 'failed' | 'error' | 'skipped';

export interface RepetitionResult {
  repetition: number;
  /** completed: every step ran; error: something broke (reason says what). */
  status: 'completed' | 'error';
  reason?: string;
  dir: string;
  readySeconds?: number;
  effective?: Effective;
  pinned: PinRecord[];
  collectors: Record<string, string>;
}

export interface VariantResult {
  id: string;
  labels: Record<string, string>;
  knobs: Experiment['knobs'];
  status: VariantStatus;
  reason?: string;
  repetitions: RepetitionResult[];
  expectations: ExpectationResult[];
}

export interface Summary {
  experiment: string;
  description: string;
  source: Experiment['source'];
  file: string;
  backend: string;
  accel: Accel;
  simulated: boolean;
  /** Absent in results written before kvmlab recorded it: those ran on this host. */
  target?: RunTarget;
  startedAt: string;
  finishedAt: string;
  interrupted: boolean;
  host: Pick<HostFacts, 'arch' | 'kernelRelease' | 'cpuModel' | 'cpus' | 'kernelCmdline'> & Partial<Pick<HostFacts, 'cpuVendor'>> & { kvmUsable: boolean; disableExitsMask: number; kvmParams: Record<string, string> };
  notices: string[];
  variants: VariantResult[];
}

export const EXIT_INTERRUPTED = 130;

/** 130 interrupted (whatever had finished), else 0 every expectation held, 1 some failed, 3 could not run (errors or nothing runnable). */
export function exitCodeOf(summary: Summary): number {
  const vs = summary.variants;
  if (summary.interrupted) return EXIT_INTERRUPTED;
  if (vs.some((v) => v.status === 'failed')) return 1;
  if (vs.some((v) => v.status === 'error')) return 3;
  if (vs.every((v) => v.status === 'skipped')) return 3;
  return 0;
}

/** A variant id as a directory name under variants/: ids are built from validated labels; still never a path. */
export function variantDir(id: string): string {
  return id.replace(/[^A-Za-z0-9=+,._-]/g, '_').replace(/^\.+/, '_');
}
