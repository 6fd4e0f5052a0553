// The runner: expands the matrix and takes every variant through preflight → launch → pin → wait for
// the guest → steps (each stamped) with collectors alongside → teardown (always) → expectations →
// verdict. One failing variant does not stop the others; Ctrl-C stops after tearing down.
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend, Vm } from '../backend/backend.js';
import type { Accel, HostFacts } from '../model/host-facts.js';
import { generateClientKey } from '../backend/ssh-guest.js';
import { COLLECTORS } from '../collect/registry.js';
import type { Collector } from '../collect/collector.js';
import { InputError, errorMessage } from '../errors.js';
import { chooseAccel } from '../plan/accel.js';
import type { Loaded } from '../spec/load.js';
import { expandMatrix, matchesPattern, schedule, type Variant } from '../spec/matrix.js';
import type { CollectorName, Experiment } from '../spec/schema.js';
import { applicable, evaluate } from './expect.js';
import type { MetricRow } from '../model/metrics.js';
import { variantDir, type RepetitionResult, type RunTarget, type Summary, type VariantResult } from '../model/summary.js';
import { checkPinning, unmetRequirements } from './preflight.js';
import type { Progress } from '../model/progress.js';
import { declaredWindowsMs, runStep, StepFailed } from './steps.js';
import { applyPinning, queryThreads } from './threads.js';
import type { ThreadMap } from '../model/threads.js';

export interface RunOptions {
  loaded: Loaded;
  backend: Backend;
  accel: 'auto' | Accel;
  out: string;
  repeat?: number;
  only?: string;
  allowHostCommands: boolean;
  progress: Progress;
  signal: AbortSignal;
  /** Where the run happens, for the results: this host (the default), or a nested KVM host (see targets/). */
  target?: RunTarget;
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
  const { accel, notice } = chooseAccel(opts.accel, exp.guest.arch, facts);
  const notices: string[] = [];
  if (notice) {
    notices.push(notice);
    progress.notice(notice);
  }
  const hostStep = exp.steps.find((s) => s.kind === 'host');
  if (hostStep && !opts.allowHostCommands) {
    throw new InputError(`${loaded.file}: step "${hostStep.name}" runs a command on the host; kvmlab runs host commands only with --allow-host-commands`);
  }
  let variants = expandMatrix(exp);
  if (opts.only) {
    const only = opts.only;
    const picked = variants.filter((v) => matchesPattern(v.id, only));
    if (picked.length === 0) throw new InputError(`--only ${only} matches no variant; variants are: ${variants.map((v) => v.id).join(', ')}`);
    variants = picked;
  }
  await mkdir(opts.out, { recursive: true });
  await writeFile(join(opts.out, 'experiment.yaml'), loaded.text);
  await writeFile(join(opts.out, 'experiment.expanded.json'), `${JSON.stringify({ experiment: exp, variants }, null, 2)}\n`);

  const results = new Map<string, VariantResult>();
  const runnable: Variant[] = [];
  for (const v of variants) {
    const reasons = await unmetRequirements(exp, v.knobs, facts, accel, opts.target);
    const r: VariantResult = { id: v.id, labels: v.labels, knobs: v.knobs, status: 'skipped', repetitions: [], expectations: [] };
    if (reasons.length) {
      r.reason = reasons.join('; ');
      progress.notice(`skipping ${v.id}: ${r.reason}`);
    } else runnable.push(v);
    results.set(v.id, r);
  }

  // A host that can run none of the variants is told why (skips); only a runnable one is held to the pinning.
  if (runnable.length > 0) checkPinning(exp, loaded.file, facts);

  const rows: MetricRow[] = [];
  const runs = schedule(runnable, opts.repeat ?? exp.repetitions);
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
      repetitions: opts.repeat ?? exp.repetitions,
      run: i,
      runs: runs.length,
      windowsMs: declaredWindowsMs(exp.steps),
    });
    const rep = await runOnce(opts, exp, run.variant, run.repetition, accel, facts, rows);
    vr.repetitions.push(rep);
    progress.finished(rep.status, rep.reason);
  }
  for (const vr of results.values()) {
    if (vr.status === 'skipped' && vr.reason) continue;
    const variant = variants.find((v) => v.id === vr.id)!;
    const mine = rows.filter((r) => r.variant === vr.id);
    vr.expectations = applicable(exp.expect, variant).map((e) => evaluate(e, mine));
    const broken = vr.repetitions.find((r) => r.status === 'error');
    if (vr.repetitions.length === 0) {
      vr.status = 'error';
      vr.reason = 'not run: interrupted';
    } else if (broken) {
      vr.status = 'error';
      vr.reason = `repetition ${broken.repetition}: ${broken.reason}`;
    } else vr.status = vr.expectations.every((e) => e.passed) ? 'passed' : 'failed';
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
    host: {
      arch: facts.arch,
      kernelRelease: facts.kernelRelease,
      kernelCmdline: facts.kernelCmdline,
      cpuVendor: facts.cpuVendor,
      cpuModel: facts.cpuModel,
      cpus: facts.cpus,
      kvmUsable: facts.kvm.usable,
      disableExitsMask: facts.kvm.disableExitsMask,
      kvmParams: facts.kvm.params,
    },
    notices,
    variants: [...results.values()],
  };
  return { summary, rows };
}

class Interrupted extends Error {
  constructor() {
    super('interrupted (SIGINT/SIGTERM)');
  }
}

/** `p`, unless Ctrl-C comes first, or the VM's monitor goes away first (QEMU died or closed it). */
function abortable<T>(p: Promise<T>, signal: AbortSignal, vm?: Vm): Promise<T> {
  if (signal.aborted) return Promise.reject(new Interrupted());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Interrupted());
    signal.addEventListener('abort', onAbort, { once: true });
    vm?.qmp.closed.then((reason) => reject(new Error(reason)));
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

async function eachCollector(collectors: Collector[], step: string, fn: (c: Collector) => Promise<void>): Promise<void> {
  for (const c of collectors) {
    try {
      await fn(c);
    } catch (e) {
      throw new Error(`collector ${c.name} failed at step ${step}: ${errorMessage(e)}`);
    }
  }
}

async function runOnce(opts: RunOptions, exp: Experiment, variant: Variant, repetition: number, accel: Accel, facts: HostFacts, rows: MetricRow[]): Promise<RepetitionResult> {
  const { backend, signal, progress } = opts;
  const dir = join(opts.out, 'variants', variantDir(variant.id), `rep-${repetition}`);
  await mkdir(dir, { recursive: true });
  const result: RepetitionResult = { repetition, status: 'completed', dir, pinned: [], collectors: {} };
  const emit = (r: Omit<MetricRow, 'variant' | 'repetition'>) => rows.push({ variant: variant.id, repetition, ...r });
  const runDir = await mkdtemp(join(tmpdir(), 'kvmlab-'));
  let vm: Vm | undefined;
  const collectors: Collector[] = [];
  let threads: ThreadMap | undefined;
  try {
    const launchedAt = Date.now();
    vm = await abortable(
      backend.launch({ name: `kvmlab-${exp.name}-${process.pid}-${repetition}`, guest: exp.guest, knobs: variant.knobs, accel, runDir, logDir: dir, clientKey: generateClientKey() }),
      signal,
    );
    const theVm = vm;
    result.effective = vm.effective;
    await writeFile(join(dir, 'launch.json'), `${JSON.stringify(vm.effective, null, 2)}\n`);
    threads = await queryThreads(vm.qmp, backend.host, vm.pid);
    result.pinned = await applyPinning(backend.host, threads, exp.pinning);
    for (const [name, options] of Object.entries(exp.collect) as [CollectorName, unknown][]) {
      if (options === undefined) continue;
      const kind = COLLECTORS[name];
      const unmet = kind.unmet(facts, backend);
      if (unmet) {
        result.collectors[name] = `not collected: ${unmet}`;
        progress.notice(`collector ${name} not collected: ${unmet}`);
        continue;
      }
      const c = kind.create((options ?? kind.defaults) as never);
      const cdir = join(dir, name);
      await mkdir(cdir, { recursive: true });
      await c.start({ host: backend.host, vm, threads: () => threads!, dir: cdir, emit });
      collectors.push(c);
      result.collectors[name] = 'collected';
    }
    await abortable(vm.waitReady(launchedAt + exp.guest.ready_timeout), signal, vm);
    result.readySeconds = (Date.now() - launchedAt) / 1000;
    emit({ step: 'boot', entity: 'guest', metric: 'guest.ready_s', value: result.readySeconds, unit: 's' });

    const refreshThreads = async () => {
      const before = new Set(threads!.vcpus.map((v) => v.tid));
      threads = await queryThreads(theVm.qmp, backend.host, theVm.pid);
      const fresh = new Set(threads.vcpus.filter((v) => !before.has(v.tid)).map((v) => v.index));
      if (fresh.size) result.pinned.push(...(await applyPinning(backend.host, threads, exp.pinning, fresh)));
    };
    let eventsFrom = vm.qmp.lastSeq + 1;
    for (const [n, step] of exp.steps.entries()) {
      progress.step(n + 1, exp.steps.length, step.name);
      const seqAtStart = vm.qmp.lastSeq + 1;
      const start = Date.now();
      await eachCollector(collectors, step.name, (c) => c.stepStart(step.name));
      let detail: Record<string, unknown> = {};
      let failure: Error | undefined;
      try {
        detail = await abortable(runStep(step, { vm, arch: exp.guest.arch, emit, allowHostCommands: opts.allowHostCommands, signal, eventsFrom, refreshThreads }), signal, vm);
      } catch (e) {
        failure = e as Error;
        if (e instanceof StepFailed && e.detail) detail = e.detail;
      }
      const end = Date.now();
      await eachCollector(collectors, step.name, (c) => c.stepEnd(step.name));
      emit({ step: step.name, entity: 'runner', metric: 'step.duration_s', value: (end - start) / 1000, unit: 's' });
      const counts = new Map<string, number>();
      for (const e of vm.qmp.events.slice(seqAtStart)) if (e.receivedAt <= end) counts.set(e.event, (counts.get(e.event) ?? 0) + 1);
      for (const [event, count] of counts) emit({ step: step.name, entity: event, metric: 'qmp.event_count', value: count, unit: 'count' });
      await appendFile(join(dir, 'steps.jsonl'), `${JSON.stringify({ step: step.name, kind: step.kind, start: start / 1000, end: end / 1000, ok: !failure, error: failure?.message, detail })}\n`).catch((e: Error) => {
        throw new Error(`the results directory ${dir} is not writable (${e.message})`);
      });
      eventsFrom = seqAtStart;
      if (failure) throw failure;
    }
  } catch (e) {
    result.status = 'error';
    const gone = vm?.exitReason();
    result.reason = e instanceof Interrupted ? e.message : gone && !(e instanceof StepFailed) ? `QEMU exited: ${gone} (${errorMessage(e)})` : errorMessage(e);
  } finally {
    for (const c of collectors) {
      await c.stop().catch((e: unknown) => {
        result.collectors[c.name] = `stopped with an error: ${errorMessage(e)}`;
      });
    }
    if (vm) {
      const how = await vm.shutdown().catch((e: unknown) => `shutdown failed: ${errorMessage(e)}`);
      await appendFile(join(dir, 'steps.jsonl'), `${JSON.stringify({ step: 'teardown', end: Date.now() / 1000, how })}\n`).catch(() => undefined);
    }
    await rm(runDir, { recursive: true, force: true });
  }
  return result;
}
