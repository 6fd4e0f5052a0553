// The runner: expands the matrix and takes every variant through preflight, then each of its
// repetitions (run/repetition.ts: launch → pin → wait for the guest → steps with collectors
// alongside → teardown, always) in the interleaved schedule, then expectations and the verdict.
// One failing variant does not stop the others; Ctrl-C stops after tearing down.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Accel } from '../model/host-facts.js';
import { HostError, InputError } from '../errors.js';
import { chooseAccel } from '../plan/accel.js';
import { planVm } from '../plan/vm.js';
import { mechanismOf } from '../plan/mechanism.js';
import { schedule, selectVariants, shardCells, type Shard, type Variant } from '../experiment/matrix.js';
import { judgeVariant } from './judge.js';
import type { MetricRow } from '../model/metrics.js';
import { type RunTarget, type Summary, type VariantResult } from '../results/summary.js';
import { RESULTS } from '../results/layout.js';
import { hostCommandsRefusal, preflight } from './preflight.js';
import { checkTarget } from '../targets/on.js';
import { declaredWindowsMs } from './steps.js';
import { runRepetition, type RepetitionOptions } from './repetition.js';

export interface RunOptions extends RepetitionOptions {
  accel: 'auto' | Accel;
  repeat?: number;
  only?: string;
  /** --where AXIS=LABEL[,…]: only the variants with those labels. */
  where?: string;
  /** Where the run happens, for the results: this host (the default), or a nested KVM host (see targets/). */
  target?: RunTarget;
  /** run --strict: a claim not checked fails the run (summary.strict). */
  strict?: boolean;
  /** run --shard I/N: only this shard's (variant, repetition) cells (experiment/matrix.ts shardCells). */
  shard?: Shard;
}

export interface RunOutcome {
  summary: Summary;
  rows: MetricRow[];
}

export async function runExperiment(opts: RunOptions): Promise<RunOutcome> {
  const { loaded, backend, progress } = opts;
  const exp = loaded.experiment;
  const startedAt = new Date().toISOString();
  const facts = await backend.probe();
  const mislabelled = opts.target && checkTarget(opts.target, facts);
  if (mislabelled) throw new InputError(mislabelled);
  const { accel, notice } = chooseAccel(opts.accel, exp.guest.arch, facts);
  const notices: string[] = [];
  if (notice) {
    notices.push(notice);
    progress.notice(notice);
  }
  const hostCommands = hostCommandsRefusal(exp, loaded.file, opts.allowHostCommands);
  if (hostCommands) throw new InputError(hostCommands);
  const repetitions = opts.repeat ?? exp.repetitions;
  // a shard runs its cells of the whole matrix: the variants it has none of are not its to report
  const selected = selectVariants(exp, opts.only, opts.where);
  const cells = shardCells(schedule(selected, repetitions), opts.shard);
  const variants = selected.filter((v) => cells.some((c) => c.variant === v));
  await mkdir(opts.out, { recursive: true });
  await writeFile(join(opts.out, RESULTS.experiment), loaded.text);
  await writeFile(join(opts.out, RESULTS.expanded), `${JSON.stringify({ experiment: exp, variants }, null, 2)}\n`);

  const results = new Map<string, VariantResult>();
  const runnable: Variant[] = [];
  const judged = await preflight(exp, loaded.file, variants, facts, accel, opts.target);
  for (const [i, v] of variants.entries()) {
    const reasons = judged.reasons[i]!;
    const r: VariantResult = { id: v.id, labels: v.labels, knobs: v.knobs, status: 'skipped', repetitions: [], expectations: [] };
    if (reasons.length) {
      r.reason = reasons.join('; ');
      progress.notice(`skipping ${v.id}: ${r.reason}`);
    } else runnable.push(v);
    results.set(v.id, r);
  }

  if (judged.refused) throw new HostError(judged.refused);

  const rows: MetricRow[] = [];
  const runs = cells.filter((c) => runnable.includes(c.variant));
  let i = 0;
  for (const run of runs) {
    i++;
    const vr = results.get(run.variant.id)!;
    if (opts.signal.aborted) break;
    progress.variant({
      variant: runnable.indexOf(run.variant) + 1,
      variants: runnable.length,
      id: run.variant.id,
      repetition: run.repetition,
      repetitions,
      run: i,
      runs: runs.length,
      windowsMs: declaredWindowsMs(exp.steps),
    });
    const rep = await runRepetition(opts, exp, run.variant, run.repetition, accel, facts, rows);
    vr.repetitions.push(rep);
    progress.finished(rep.status, rep.reason);
  }
  for (const vr of results.values()) {
    const variant = variants.find((v) => v.id === vr.id)!;
    const ran = !(vr.status === 'skipped' && vr.reason);
    if (ran) {
      const qemu = vr.repetitions.find((r) => r.qemu)?.qemu;
      vr.ranOn = { kernel: facts.kernelRelease, cmdline: facts.kernelCmdline, ...(qemu ? { qemu } : {}) };
    }
    // a skipped variant may be one no plan can be made for (whyNotPlannable): it is never planned here
    const planned = ran && exp.guest.arch === 'x86_64' && accel === 'kvm' ? mechanismOf(planVm(exp.guest, variant.knobs, accel, facts), exp.guest.arch) : undefined;
    judgeVariant(exp, variant, vr, rows.filter((r) => r.variant === vr.id), planned);
  }
  const summary: Summary = {
    experiment: exp.name,
    description: exp.description,
    source: exp.source,
    file: loaded.file,
    backend: backend.name,
    accel,
    simulated: backend.simulated,
    target: opts.target ?? { kind: 'local' },
    startedAt,
    finishedAt: new Date().toISOString(),
    interrupted: opts.signal.aborted,
    ...(opts.strict ? { strict: true } : {}),
    ...(opts.shard ? { shard: { ...opts.shard, repetitions, cells: cells.map((c) => ({ variant: c.variant.id, repetition: c.repetition })) } } : {}),
    host: {
      arch: facts.arch,
      kernelRelease: facts.kernelRelease,
      kernelCmdline: facts.kernelCmdline,
      cpuVendor: facts.cpuVendor,
      cpuModel: facts.cpuModel,
      cpus: facts.cpus,
      kvmUsable: facts.kvm.usable,
      hypervisor: facts.cpuFlags.includes('hypervisor'),
      ...(facts.kvm.module ? { kvmModule: facts.kvm.module } : {}),
      disableExitsMask: facts.kvm.disableExitsMask,
      kvmParams: facts.kvm.params,
    },
    notices,
    variants: [...results.values()],
  };
  return { summary, rows };
}
