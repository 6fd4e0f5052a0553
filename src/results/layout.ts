// Where a run's results are, file by file: the one place that names them. Writers (the runner, the
// collectors, merge) and readers (report/load.ts, merge) take the names from here.
import { join } from 'node:path';
import type { Placeholder } from '../model/placeholder.js';

/** A results directory's own files. */
export const RESULTS = {
  summary: 'summary.json',
  metrics: 'metrics.csv',
  /** The experiment file as it ran, byte for byte. */
  experiment: 'experiment.yaml',
  /** The parsed experiment and the variants of this run. */
  expanded: 'experiment.expanded.json',
  /** Per host-axis L1 under --on nested: its own whole run. */
  hosts: 'hosts',
  variants: 'variants',
} as const;

/** A repetition's files (besides each collector's directory, named for the collector). */
export const REPETITION = {
  /** What the backend launched and what took effect. */
  launch: 'launch.json',
  /** One line per step, and the teardown. */
  steps: 'steps.jsonl',
  /** The QMP transcript, greeting first. */
  qmp: 'qmp.jsonl',
  /** Guest commands and what they returned. */
  guest: 'guest.jsonl',
  console: 'console.log',
} as const;

/** The vcpu-cpu collector's raw samples, in its directory. */
export const VCPU_SAMPLES = 'vcpu-cpu.csv';

/** A variant id as a directory name under variants/: ids are built from validated labels; still never a path. */
export function variantDir(id: string): string {
  return id.replace(/[^A-Za-z0-9=+,._-]/g, '_').replace(/^\.+/, '_');
}

/** Where one repetition of a variant keeps its files in a results directory: variants/<id>/rep-N. */
export function repetitionDir(out: string, id: string, repetition: number | Placeholder): string {
  return join(out, RESULTS.variants, variantDir(id), `rep-${repetition}`);
}
