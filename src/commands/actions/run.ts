// `kvmlab run`: load and check the experiment, run it here or in the nested KVM host, write the
// results, print the verdict.
import { readdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { selectBackend } from '../../backend/select.js';
import { InputError } from '../../errors.js';
import { HostJournal } from '../../host/journal.js';
import { writeReport } from '../../report/report.js';
import { underInterrupts } from './interrupts.js';
import { parseHostKernel, parseRepeat, refuseOnNested, type RunChoices } from './run-options.js';
import { headline, summaryMarkdown, verdictTable, whereMeasured } from '../../report/summary.js';
import { EXIT_INTERRUPTED, exitCodeOf } from '../../model/summary.js';
import { createProgress } from '../../run/progress.js';
import { type Progress } from '../../model/progress.js';
import { defaultOutDir, linkLatest, summaryJson, writeResults } from '../../run/results.js';
import { runExperiment } from '../../run/runner.js';
import { loadChecked } from '../../run/claims.js';
import type { Experiment } from '../../spec/schema.js';
import { collectedTracepoints, insideL1Args, nestedShape, runNested, targetOfThisRun, type HostKernelChoice } from '../../targets/nested.js';
import { buildNestedHostImage } from './image.js';
import { parseOn } from '../../targets/on.js';

export interface RunFlags extends RunChoices {
  out?: string;
  allowHostCommands?: boolean;
  quiet?: boolean;
  force?: boolean;
  strict?: boolean;
}

/** `kvmlab run FILE`: every variant and repetition, the verdict on stdout (summary.json with --json), results in --out. */
export async function run(file: string, flags: RunFlags): Promise<void> {
  const repeat = parseRepeat(flags.repeat);
  const on = parseOn(flags.on);
  const hostKernel = parseHostKernel(flags.hostKernel, flags.hostModules, on);
  const loaded = await loadChecked(file);
  const progress = createProgress(process.stderr, flags.quiet);
  if (on === 'nested') return runOnNested(file, loaded.experiment, flags, repeat, progress, hostKernel);
  let journal: HostJournal | undefined;
  const backend = await selectBackend(flags.backend, loaded.experiment.guest.arch, progress, () => (journal = HostJournal.acquire()));
  const out = flags.out ?? defaultOutDir(loaded.experiment.name);
  await refuseOverwrite(out, flags.force);
  await underInterrupts(progress, () => journal, async (signal) => {
    const { summary, rows } = await runExperiment({
      loaded,
      backend,
      accel: flags.accel,
      out,
      repeat,
      only: flags.only,
      allowHostCommands: flags.allowHostCommands ?? false,
      progress,
      signal,
      strict: flags.strict ?? false,
      target: await targetOfThisRun(),
    });
    await writeResults(out, summary, rows);
    // summary.md first, so a run whose plots fail still leaves its verdict in words
    await writeFile(join(out, 'summary.md'), summaryMarkdown(summary));
    if (flags.out === undefined) await linkLatest(out);
    progress.close();
    // With --json, stdout holds summary.json alone and the words a person reads go to stderr.
    const words = flags.json ? process.stderr : process.stdout;
    words.write(`\n${headline(summary)}\nmeasured on: ${whereMeasured(summary)}\n\n${verdictTable(summary)}\n\nresults: ${out}\n`);
    process.exitCode = exitCodeOf(summary);
    await writeReport(out, { print: words });
    if (flags.json) process.stdout.write(summaryJson(summary));
  });
}

/** `run --on nested`: the same run, inside a KVM host emulated under TCG; results land in --out here. */
async function runOnNested(file: string, exp: Experiment, flags: RunFlags, repeat: number | undefined, progress: Progress, hostKernel: HostKernelChoice | undefined): Promise<void> {
  refuseOnNested(flags.backend, flags.accel);
  const out = resolve(flags.out ?? defaultOutDir(exp.name));
  await refuseOverwrite(out, flags.force);
  const runArgs = insideL1Args(file, out, { repeat, only: flags.only, allowHostCommands: flags.allowHostCommands, json: flags.json, strict: flags.strict });
  const shape = nestedShape(exp, hostKernel);
  // a kernel of the user's own changes between runs: its image is (re)built here, in seconds when current
  if (shape.kernel?.startsWith('path:')) {
    progress.notice(`nested host: building its image with ${shape.kernel.slice('path:'.length)} (modules ${shape.modules})`);
    await buildNestedHostImage(shape.kernel, shape.modules, 'pipe');
  }
  progress.notice(`nested host: booting L1 (${shape.cpus} CPUs, ${shape.memoryMiB} MiB${shape.kernel ? `, kernel ${shape.kernel}` : ''}${shape.cmdline ? `, ${shape.cmdline}` : ''}) under TCG`);
  const journal = HostJournal.acquire();
  await underInterrupts(progress, () => journal, async (signal) => {
    const r = await runNested({ argv: runArgs, out, reads: [dirname(resolve(file))], shape, tracepoints: collectedTracepoints(exp), progress, signal, journal });
    process.stdout.write(r.stdout);
    process.exitCode = signal.aborted ? EXIT_INTERRUPTED : r.exitCode;
    if (flags.out === undefined) await linkLatest(out);
  });
}

/** Results are never overwritten: a results directory that already holds files needs --force. */
async function refuseOverwrite(out: string, force: boolean | undefined): Promise<void> {
  if (force) return;
  const held = await readdir(out).catch(() => [] as string[]);
  if (held.length) throw new InputError(`--out ${out} already holds ${held.length} file${held.length > 1 ? 's' : ''} (${held.slice(0, 3).join(', ')}${held.length > 3 ? ', …' : ''}); give a new directory, leave --out out for a fresh results/<experiment>/<time>/, or add --force to write into it`);
}
