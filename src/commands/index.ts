// Every kvmlab command, in the order --help lists them. A command's file here says what it takes —
// name, arguments, options, help — and imports nothing heavy; what it does lives in actions/ and is
// loaded by its action, so `kvmlab --help` or `validate` never load vega, ssh2 or a backend.
import type { Command } from 'commander';
import { registerCleanup } from './cleanup.js';
import { registerImage } from './image.js';
import { registerList } from './list.js';
import { registerProbe } from './probe.js';
import { registerRun } from './run.js';
import { registerSchema } from './schema.js';
import { registerValidate } from './validate.js';

export type Register = (program: Command) => void;

/**
 * A command whose file loads what it does when imported (report, compare and bundle: the report
 * code, vega with it). --help lists it from here — its name, the way help writes its arguments, and
 * its one-line description — and its file is loaded only when it is the command being run or asked
 * about. test/unit/commands.test.ts holds each entry to what its file declares.
 */
export interface Deferred {
  name: string;
  term: string;
  description: string;
  load(): Promise<Register>;
}

export const commands: (Register | Deferred)[] = [
  registerRun,
  {
    name: 'report',
    term: 'report [options] <dir>',
    description: 'verdict and key metrics of a results directory; (re)writes summary.md, plots/, index.html and timeline.json',
    load: async () => (await import('./report.js')).registerReport,
  },
  {
    name: 'compare',
    term: 'compare [options] <dir> [dir2]',
    description: 'do two variants of a run (or one variant across two runs) differ? permutation test and effect size per metric',
    load: async () => (await import('./compare.js')).registerCompare,
  },
  {
    name: 'bundle',
    term: 'bundle [options] <dir>',
    description: 'one plain-text repro bundle for a mailing-list reply: host, QEMU command line, guest kernel, results, rerun command, experiment',
    load: async () => (await import('./bundle.js')).registerBundle,
  },
  registerValidate,
  registerList,
  registerProbe,
  registerImage,
  registerSchema,
  registerCleanup,
];
