// The runner: expands the matrix and takes every variant through preflight → launch → pin → wait for
// the guest → steps (each stamped) with collectors alongside → teardown (always) → expectations →
// verdict. One failing variant does not stop the others; Ctrl-C stops after tearing down.
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend, Vm } from '../backend/backend.js';
import type { Accel, HostFacts } from '../model/host-facts.js';
import { generateClientKey } from '../backend/ssh-guest.js';
import { QmpConnectionError, qemuVersion } from '../backend/qmp-client.js';
import { COLLECTORS, createCollector } from '../collect/registry.js';
import { NotCollected, type Collector } from '../collect/collector.js';
import { HostError, InputError, KvmlabError, errorMessage } from '../errors.js';
import { chooseAccel } from '../plan/accel.js';
import { planVm, type VmPlan } from '../plan/vm.js';
import { mechanismOf } from '../plan/mechanism.js';
import type { Loaded } from '../spec/load.js';
import { schedule, selectVariants, shardCells, variantQemu, type Shard, type Variant } from '../spec/matrix.js';
import { RUNNER_STEPS, type CollectorName, type Experiment } from '../spec/schema.js';
import { judgeVariant } from './judge.js';
import { stepLine } from '../results/records.js';
import type { MetricRow, RowSink } from '../model/metrics.js';
import { type RepetitionResult, type RunTarget, type Summary, type VariantResult } from '../results/summary.js';
import { repetitionDir, REPETITION, RESULTS } from '../results/layout.js';
import { hostCommandsRefusal, preflight } from './preflight.js';
import { vmName } from '../host/journal.js';
import { checkTarget } from '../targets/on.js';
import type { Progress } from '../model/progress.js';
import { declaredWindowsMs, runStep, StepFailed } from './steps.js';
import { applyPinning, queryThreads } from './threads.js';
import { bindToVfio } from './devices.js';
import type { ThreadMap } from '../model/threads.js';

export interface RunOptions {
  loaded: Loaded;
  backend: Backend;
  accel: 'auto' | Accel;
  out: string;
  repeat?: number;
  only?: string;
  /** --where AXIS=LABEL[,…]: only the variants with those labels. */
  where?: string;
  allowHostCommands: boolean;
  progress: Progress;
  signal: AbortSignal;
  /** Where the run happens, for the results: this host (the default), or a nested KVM host (see targets/). */
  target?: RunTarget;
  /** run --strict: a claim not checked fails the run (summary.strict). */
  strict?: boolean;
  /** run --shard I/N: only this shard's (variant, repetition) cells (spec/matrix.ts shardCells). */
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
    const rep = await runOnce(opts, exp, run.variant, run.repetition, accel, facts, rows);
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

class Interrupted extends Error {
  constructor() {
    super("interrupted (Ctrl-C, SIGTERM, or a hang-up such as a lab box's dropped connection)");
  }
}

/** `p`, unless Ctrl-C comes first, or the VM's monitor goes away first (QEMU died or closed it). */
function abortable<T>(p: Promise<T>, signal: AbortSignal, vm?: Vm): Promise<T> {
  if (signal.aborted) {
    // `p` is already under way (a guest's wait for SSH, say) and will fail once teardown stops QEMU:
    // nobody waits for it now, and unheeded its failure would end the process before that teardown.
    p.catch(() => undefined);
    return Promise.reject(new Interrupted());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Interrupted());
    signal.addEventListener('abort', onAbort, { once: true });
    vm?.qmp.closed.then((reason) => reject(new Error(reason)));
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** One repetition of one variant as it goes through its stages; teardown owns whatever was taken. */
interface Repetition {
  opts: RunOptions;
  exp: Experiment;
  variant: Variant;
  facts: HostFacts;
  plan: VmPlan;
  result: RepetitionResult;
  emit: RowSink;
  runDir: string;
  /** The launch, kept even when Ctrl-C stopped waiting for it: teardown shuts down what it brings up. */
  launching?: Promise<Vm>;
  vm?: Vm;
  launchedAt: number;
  threads?: ThreadMap;
  collectors: Collector[];
}

/** Stages in order, each with what progress shows while it runs (steps show themselves). Each may throw; the repetition then ends as an error with that reason. */
const STAGES: [string | undefined, (r: Repetition) => Promise<void>][] = [
  ['launching', launch],
  ['pinning vCPU threads', pin],
  ['starting collectors', startCollectors],
  ['waiting for the guest', waitReady],
  [undefined, runSteps],
];

async function runOnce(opts: RunOptions, exp: Experiment, variant: Variant, repetition: number, accel: Accel, facts: HostFacts, rows: MetricRow[]): Promise<RepetitionResult> {
  const dir = repetitionDir(opts.out, variant.id, repetition);
  await mkdir(dir, { recursive: true });
  const r: Repetition = {
    opts,
    exp,
    variant,
    facts,
    plan: planVm(exp.guest, variant.knobs, accel, facts),
    result: { repetition, status: 'completed', dir, pinned: [], collectors: {} },
    emit: (row) => rows.push({ variant: variant.id, repetition, ...row }),
    runDir: await mkdtemp(join(tmpdir(), 'kvmlab-')),
    launchedAt: opts.backend.clock.now(),
    collectors: [],
  };
  try {
    for (const [doing, stage] of STAGES) {
      if (doing) opts.progress.stage(doing);
      await stage(r);
    }
  } catch (e) {
    r.result.status = 'error';
    // A monitor that closed under us is QEMU exiting: give its exit a moment to be reaped, so the
    // reason says why (a guest reset, a crash) rather than only that the socket closed.
    for (let i = 0; i < 20 && r.vm && e instanceof QmpConnectionError && !r.vm.exitReason(); i++) await r.opts.backend.clock.sleep(100);
    const gone = r.vm?.exitReason();
    r.result.reason = e instanceof Interrupted ? e.message : gone && !(e instanceof StepFailed) ? `QEMU exited: ${gone} (${errorMessage(e)})` : errorMessage(e);
  } finally {
    await teardown(r);
  }
  return r.result;
}

async function launch(r: Repetition): Promise<void> {
  const { backend, signal } = r.opts;
  const { dir } = r.result;
  r.launchedAt = backend.clock.now();
  for (const d of r.exp.guest.devices) await bindToVfio(backend.host, d.vfio);
  const binary = variantQemu(r.variant, r.opts.loaded.file);
  r.launching = backend.launch({ name: vmName(r.exp.name, r.result.repetition), guest: r.exp.guest, plan: r.plan, runDir: r.runDir, logDir: dir, clientKey: generateClientKey(), ...(binary ? { qemu: binary } : {}) });
  r.vm = await abortable(r.launching, signal);
  r.result.effective = r.vm.effective;
  const qemu = qemuVersion(r.vm.qmp.greeting);
  if (qemu) r.result.qemu = qemu;
  await writeFile(join(dir, REPETITION.launch), `${JSON.stringify(r.vm.effective, null, 2)}\n`);
}

async function pin(r: Repetition): Promise<void> {
  const { host } = r.opts.backend;
  r.threads = await queryThreads(r.vm!.qmp, host, r.vm!.pid);
  r.result.pinned = await applyPinning(host, r.threads, r.exp.pinning);
}

async function startCollectors(r: Repetition): Promise<void> {
  const { backend, progress } = r.opts;
  for (const name of Object.keys(r.exp.collect) as CollectorName[]) {
    const options = r.exp.collect[name];
    if (options === undefined) continue;
    const unmet = COLLECTORS[name].unmet(r.facts);
    if (unmet) {
      r.result.collectors[name] = `not collected: ${unmet}`;
      progress.notice(`collector ${name} not collected: ${unmet}`);
      continue;
    }
    const c = createCollector(name, options);
    const dir = join(r.result.dir, name);
    await mkdir(dir, { recursive: true });
    try {
      await c.start({ host: backend.host, facts: r.facts, clock: backend.clock, vm: r.vm!, threads: () => r.threads!, dir, emit: r.emit });
    } catch (e) {
      if (!(e instanceof NotCollected)) throw e;
      r.result.collectors[name] = `not collected: ${e.message}`;
      progress.notice(`collector ${name} not collected: ${e.message}`);
      continue;
    }
    r.collectors.push(c);
    r.result.collectors[name] = 'collected';
  }
}

async function waitReady(r: Repetition): Promise<void> {
  const { clock } = r.opts.backend;
  await abortable(r.vm!.waitReady(r.launchedAt + r.exp.guest.ready_timeout), r.opts.signal, r.vm);
  r.result.readySeconds = (clock.now() - r.launchedAt) / 1000;
  r.emit({ step: RUNNER_STEPS.boot, entity: 'guest', metric: 'guest.ready_s', value: r.result.readySeconds, unit: 's' });
}

/** Every step, stamped, with each collector told where it starts and ends. */
async function runSteps(r: Repetition): Promise<void> {
  const { backend, signal, progress } = r.opts;
  const { clock } = backend;
  const vm = r.vm!;
  const refreshThreads = async () => {
    const before = new Set(r.threads!.vcpus.map((v) => v.tid));
    r.threads = await queryThreads(vm.qmp, backend.host, vm.pid);
    const fresh = new Set(r.threads.vcpus.filter((v) => !before.has(v.tid)).map((v) => v.index));
    if (fresh.size) r.result.pinned.push(...(await applyPinning(backend.host, r.threads, r.exp.pinning, fresh)));
  };
  let eventsFrom = vm.qmp.lastSeq + 1;
  for (const [n, step] of r.exp.steps.entries()) {
    progress.step(n + 1, r.exp.steps.length, step.name);
    const seqAtStart = vm.qmp.lastSeq + 1;
    const start = clock.now();
    const watching = observerMark();
    await eachCollector(r.collectors, step.name, (c) => c.stepStart(step.name));
    let detail: Record<string, unknown> = {};
    let failure: Error | undefined;
    try {
      detail = await abortable(runStep(step, { vm, host: backend.host, clock, arch: r.exp.guest.arch, emit: r.emit, allowHostCommands: r.opts.allowHostCommands, signal, eventsFrom, refreshThreads }), signal, vm);
    } catch (e) {
      failure = e as Error;
      if (e instanceof StepFailed && e.detail) detail = e.detail;
    }
    const end = clock.now();
    await eachCollector(r.collectors, step.name, (c) => c.stepEnd(step.name));
    r.emit({ step: step.name, entity: 'runner', metric: 'step.duration_s', value: (end - start) / 1000, unit: 's' });
    const cost = observerCost(watching);
    r.emit({ step: step.name, entity: 'kvmlab', metric: 'observer.cpu_s', value: cost.cpuS, unit: 's' });
    r.emit({ step: step.name, entity: 'kvmlab', metric: 'observer.cpu_pct', value: cost.cpuPct, unit: '%' });
    const counts = new Map<string, number>();
    for (const e of vm.qmp.events.slice(seqAtStart)) if (e.receivedAt <= end) counts.set(e.event, (counts.get(e.event) ?? 0) + 1);
    for (const [event, count] of counts) r.emit({ step: step.name, entity: event, metric: 'qmp.event_count', value: count, unit: 'count' });
    await appendFile(join(r.result.dir, REPETITION.steps), stepLine({ step: step.name, kind: step.kind, start: start / 1000, end: end / 1000, ok: !failure, ...(failure ? { error: failure.message } : {}), ...(detail ? { detail } : {}) })).catch((e: Error) => {
      throw new Error(`the results directory ${r.result.dir} is not writable (${e.message})`);
    });
    eventsFrom = seqAtStart;
    if (failure) throw failure;
  }
}

/**
 * What watching a step cost: kvmlab's own CPU (user and system, so its reads of procfs, tracefs and
 * the monitor included) from just before the collectors mark the step's start to just after they
 * mark its end, over the wall time between. An upper bound on the collectors' own cost — it holds
 * the runner's driving of the step too — and blind to what a tracepoint or histogram costs inside
 * the measured context (test/bench/ measures that). Under the mock it is the simulation's cost.
 */
function observerMark(): { cpu: NodeJS.CpuUsage; wallMs: number } {
  return { cpu: process.cpuUsage(), wallMs: performance.now() };
}

function observerCost(mark: { cpu: NodeJS.CpuUsage; wallMs: number }): { cpuS: number; cpuPct: number } {
  const used = process.cpuUsage(mark.cpu);
  const cpuS = (used.user + used.system) / 1e6;
  const wallS = Math.max(1e-3, (performance.now() - mark.wallMs) / 1000);
  return { cpuS, cpuPct: (100 * cpuS) / wallS };
}

/**
 * The variant's observer.cpu_pct rows as one line's worth, over the windows where figures are
 * measured (sample and wait steps; every step when there are none — a guest command's step is
 * mostly kvmlab driving SSH): per step the median over repetitions; of those the median and the largest.
 */
async function eachCollector(collectors: Collector[], step: string, fn: (c: Collector) => Promise<void>): Promise<void> {
  for (const c of collectors) {
    try {
      await fn(c);
    } catch (e) {
      throw new KvmlabError(`collector ${c.name} failed at step ${step}: ${errorMessage(e)}`, { cause: e });
    }
  }
}

/**
 * Always: shut the VM down (also one whose launch Ctrl-C stopped waiting for), then stop the
 * collectors. The guest goes first so that what a collector does when it stops — reading megabytes
 * of trace, disabling tracepoints (which patches kernel text with IPIs to every CPU), removing its
 * tracefs instance — never runs beside an exit storm on the CPUs it measured: its steps' rows were
 * all taken at their step ends, and the guest's shutdown falls outside every step.
 */
async function teardown(r: Repetition): Promise<void> {
  const { progress, backend } = r.opts;
  const vm = r.vm ?? (await r.launching?.catch(() => undefined));
  if (vm) {
    progress.stage('teardown: shutting the guest down');
    const how = await vm.shutdown().catch((e: unknown) => `shutdown failed: ${errorMessage(e)}`);
    await appendFile(join(r.result.dir, REPETITION.steps), stepLine({ step: RUNNER_STEPS.teardown, end: backend.clock.now() / 1000, how })).catch(() => undefined);
  }
  for (const c of r.collectors) {
    progress.stage(`teardown: stopping collector ${c.name}`);
    await c.stop().then(
      () => {
        const caveat = c.caveat?.();
        if (caveat) r.result.collectors[c.name] = `collected; ${caveat}`;
      },
      (e: unknown) => {
        r.result.collectors[c.name] = `stopped with an error: ${errorMessage(e)}`;
      },
    );
  }
  await rm(r.runDir, { recursive: true, force: true });
}
