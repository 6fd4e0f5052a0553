// `kvmlab run`: load and check the experiment, run it here or in the nested KVM host, write the
// results, print the verdict.
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { qemuBuild, selectBackend } from '../../backend/select.js';
import { HostJournal } from '../../host/journal.js';
import { underInterrupts } from './interrupts.js';
import { showVerdict } from './verdict.js';
import { parseHostKernel, parseRepeat, refuseMockHost, refuseOnNested, type RunChoices } from './run-options.js';
import { EXIT_INTERRUPTED } from '../../results/summary.js';
import { createProgress } from '../../run/progress.js';
import { type Progress } from '../../model/progress.js';
import { defaultOutDir, linkLatest, readSummary, refuseOverwrite, writeResults } from '../../run/results.js';
import { runExperiment } from '../../run/runner.js';
import { loadChecked } from '../../run/claims.js';
import { bootOut, bootWhere, tracepointsToPin, insideL1Args, nestedBoots, nestedHostFiles, type HostKernelChoice } from '../../targets/nested-host.js';
import { runNested } from '../../targets/nested.js';
import { mergeParts } from '../../run/merge.js';
import { RESULTS } from '../../results/layout.js';
import { parseShard, refuseOverriddenFlag, selectVariants, variantQemu } from '../../experiment/matrix.js';
import type { Experiment } from '../../experiment/schema.js';
import { buildNestedHostImage } from './image.js';
import { delegatedRunArgs, parseOn, targetOfThisRun, type SshBox } from '../../targets/on.js';
import { onBox } from '../../targets/box.js';
import { InputError } from '../../errors.js';

export interface RunFlags extends RunChoices {
  out?: string;
  allowHostCommands?: boolean;
  quiet?: boolean;
  force?: boolean;
  strict?: boolean;
  shard?: string;
}

/** `kvmlab run FILE`: every variant and repetition, the verdict on stdout (summary.json with --json), results in --out. */
export async function run(file: string, flags: RunFlags): Promise<void> {
  const repeat = parseRepeat(flags.repeat);
  const shard = flags.shard === undefined ? undefined : parseShard(flags.shard);
  const on = parseOn(flags.on);
  refuseMockHost(flags.mockHost, flags.backend, on);
  const hostKernel = parseHostKernel(flags.hostKernel, flags.hostModules, on);
  const loaded = await loadChecked(file);
  if (hostKernel) refuseOverriddenFlag(loaded.experiment, '--host-kernel', 'kernel');
  if (flags.qemu !== undefined) refuseOverriddenFlag(loaded.experiment, '--qemu', 'qemu');
  const progress = createProgress(process.stderr, flags.quiet);
  if (on === 'nested') return runOnNested(file, loaded.experiment, flags, repeat, progress, hostKernel);
  if (typeof on === 'object') return runOnBox(file, on, loaded.experiment, flags, repeat, progress);
  let journal: HostJournal | undefined;
  const backend = await selectBackend(flags.backend, loaded.experiment.guest.arch, progress, () => (journal = HostJournal.acquire()), flags.qemu);
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
      where: flags.where,
      allowHostCommands: flags.allowHostCommands ?? false,
      progress,
      signal,
      strict: flags.strict ?? false,
      ...(shard ? { shard } : {}),
      target: await targetOfThisRun(),
    });
    await writeResults(out, summary, rows);
    if (flags.out === undefined) await linkLatest(out);
    progress.close();
    await showVerdict(out, summary, { json: flags.json });
  });
}

/**
 * `run --on nested`: the same run, inside a KVM host emulated under TCG; results land in --out
 * here. With a host axis, one L1 per label, each running that label's variants into
 * hosts/<label>/, then one results directory made of them (run/merge.ts).
 */
async function runOnNested(file: string, exp: Experiment, flags: RunFlags, repeat: number | undefined, progress: Progress, hostKernel: HostKernelChoice | undefined): Promise<void> {
  refuseOnNested(flags.backend, flags.accel);
  const out = resolve(flags.out ?? defaultOutDir(exp.name));
  await refuseOverwrite(out, flags.force);
  const boots = nestedBoots(exp, file, selectVariants(exp, flags.only, flags.where), hostKernel);
  const qemu = flags.qemu === undefined ? undefined : await qemuBuild(flags.qemu);
  // Every L1's image before the first boots: a kernel of the user's own changes between runs (its
  // image is rebuilt, in seconds when current); a Debian series not built yet is built (once, from
  // the archive); what cannot be had stops the run here, not after the first host's part.
  for (const { shape } of boots) {
    if (shape.kernel?.startsWith('path:')) {
      progress.notice(`nested host: building its image with ${shape.kernel.slice('path:'.length)} (modules ${shape.modules})`);
      await buildNestedHostImage(shape.kernel, shape.modules, 'pipe');
    } else if (shape.kernel && !(await nestedHostFiles(shape.kernel).then(() => true, () => false))) {
      progress.notice(`nested host: no image for ${shape.kernel} yet: building it (kvmlab image build --arch nested-host --kernel ${shape.kernel})`);
      await buildNestedHostImage(shape.kernel, undefined, 'pipe');
    }
    await nestedHostFiles(shape.kernel);
  }
  const journal = HostJournal.acquire();
  await underInterrupts(progress, () => journal, async (signal) => {
    const parts: string[] = [];
    let exitCode = 0;
    let stdout = '';
    try {
      for (const [i, boot] of boots.entries()) {
        if (signal.aborted) break;
        const { shape } = boot;
        const partOut = bootOut(out, boot);
        const runArgs = insideL1Args(file, partOut, { repeat, only: flags.only, where: bootWhere(flags.where, boot), qemu, shard: flags.shard, allowHostCommands: flags.allowHostCommands, json: flags.json, strict: flags.strict });
        const which = boot.hosts.length ? ` for host ${boot.hosts.join(', ')} (${i + 1} of ${boots.length})` : '';
        progress.notice(`nested host: booting L1${which} (${shape.cpus} CPUs, ${shape.memoryMiB} MiB${shape.kernel ? `, kernel ${shape.kernel}` : ''}${shape.cmdline ? `, ${shape.cmdline}` : ''}) under TCG`);
        const r = await runNested({ argv: runArgs, out: partOut, reads: [dirname(resolve(file)), resolve(file), ...boot.variants.flatMap((v) => variantQemu(v, file) ?? []), ...(qemu ? [qemu] : [])], shape, tracepoints: tracepointsToPin(exp), progress, signal, journal });
        stdout = r.stdout;
        exitCode = Math.max(exitCode, r.exitCode);
        // a run in L1 that wrote no summary stopped before running anything (it said why, above): so would the next
        if (boot.hosts.length && !existsSync(join(partOut, RESULTS.summary))) break;
        parts.push(partOut);
      }
    } finally {
      // with a host axis, what the L1s finished is one run, also when one of them broke
      if (boots.some((b) => b.hosts.length) && parts.length) await writeMerged(out, parts, flags);
    }
    if (!boots.some((b) => b.hosts.length)) process.stdout.write(stdout);
    process.exitCode = signal.aborted ? EXIT_INTERRUPTED : parts.length < boots.length ? exitCode || 3 : (process.exitCode ?? exitCode);
    if (flags.out === undefined) await linkLatest(out);
  });
}

/**
 * `run --on ssh://…`: the same run on a lab box (targets/box.ts), its results directory brought
 * back into --out here and its verdict shown from it, as a run here shows its own.
 */
async function runOnBox(file: string, box: SshBox, exp: Experiment, flags: RunFlags, repeat: number | undefined, progress: Progress): Promise<void> {
  for (const v of selectVariants(exp, flags.only, flags.where)) {
    const q = v.host?.qemu;
    if (q !== undefined && !isAbsolute(q)) throw new InputError(`${file}: matrix.host label ${v.labels.host ?? ''}: qemu: ${q} is relative to the experiment file, which the box ${box.text} does not have beside it: give the QEMU binary's absolute path on the box`);
  }
  const out = resolve(flags.out ?? defaultOutDir(exp.name));
  await refuseOverwrite(out, flags.force);
  await underInterrupts(progress, () => undefined, async (signal) => {
    const delegated = delegatedRunArgs({ repeat, only: flags.only, where: flags.where, qemu: flags.qemu, shard: flags.shard, allowHostCommands: flags.allowHostCommands, strict: flags.strict });
    const code = await onBox({
      box,
      access: { sshKey: flags.sshKey, hostKey: flags.hostKey },
      progress,
      file,
      out,
      // the box's verdict names its own paths: it is shown here, from the results brought back
      stdout: new Writable({ write: (_c, _e, done) => done() }),
      signal,
      argv: (there) => ['run', there.file, '--out', there.out, '--force', '--backend', flags.backend, '--accel', flags.accel, ...(flags.quiet ? ['--quiet'] : []), ...delegated],
    });
    process.exitCode = code;
    if (!existsSync(join(out, RESULTS.summary))) return;
    await showVerdict(out, await readSummary(out, `the run on ${box.text} wrote no whole summary`), { json: flags.json });
    if (signal.aborted) process.exitCode = EXIT_INTERRUPTED;
    if (flags.out === undefined) await linkLatest(out);
  });
}

/** The parts of a host-axis run as one results directory, its verdict printed as a run prints it. */
async function writeMerged(out: string, parts: readonly string[], flags: RunFlags): Promise<void> {
  const { summary } = await mergeParts(out, parts, { oneRun: true });
  await showVerdict(out, summary, { json: flags.json, where: `(each host's own run in ${join(out, RESULTS.hosts)})` });
}
