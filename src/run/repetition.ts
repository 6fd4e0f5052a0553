// One repetition of one variant, through named stages — launch, pin, start the collectors, wait for
// the guest, the steps (each stamped, with what watching it cost) — and a teardown that always runs
// and owns whatever the stages took. Ctrl-C ends the stage under way; teardown still runs.
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend, Vm } from '../backend/backend.js';
import type { Accel, HostFacts } from '../model/host-facts.js';
import { generateClientKey } from '../backend/ssh-guest.js';
import { QmpConnectionError, qemuVersion } from '../backend/qmp-client.js';
import { COLLECTORS, createCollector } from '../collect/registry.js';
import { NotCollected, type Collector } from '../collect/collector.js';
import { KvmlabError, errorMessage } from '../errors.js';
import { planVm, type VmPlan } from '../plan/vm.js';
import type { Loaded } from '../experiment/load.js';
import { variantQemu, type Variant } from '../experiment/matrix.js';
import { RUNNER_STEPS, type CollectorName, type Experiment } from '../experiment/schema.js';
import { launchText, stepLine } from '../results/records.js';
import type { MetricRow, RowSink } from '../model/metrics.js';
import type { RepetitionResult } from '../results/summary.js';
import { repetitionDir, REPETITION } from '../results/layout.js';
import { vmName } from '../host/journal.js';
import type { Progress } from '../model/progress.js';
import { runStep, StepFailed } from './steps.js';
import { applyPinning, queryThreads } from './threads.js';
import { bindToVfio } from './devices.js';
import type { ThreadMap } from '../model/threads.js';

/** What a repetition needs of the run it is part of. */
export interface RepetitionOptions {
  loaded: Loaded;
  backend: Backend;
  out: string;
  allowHostCommands: boolean;
  progress: Progress;
  signal: AbortSignal;
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
  opts: RepetitionOptions;
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

export async function runRepetition(opts: RepetitionOptions, exp: Experiment, variant: Variant, repetition: number, accel: Accel, facts: HostFacts, rows: MetricRow[]): Promise<RepetitionResult> {
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
  await writeFile(join(dir, REPETITION.launch), launchText(r.vm.effective));
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
