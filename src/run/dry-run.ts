// `kvmlab plan`: what `kvmlab run` would do with an experiment, worked out by the code run itself
// uses — the variants --only picks, the accelerator choice, preflight on the facts of the host the
// run would land on, each variant's VmPlan and the QEMU command QemuBackend.launch builds from it —
// with none of it done: no QEMU started, no tracefs instance made, no journal or lock taken, no file
// written. What only a launch chooses is a placeholder (PLACEHOLDERS).
import type { Backend } from '../backend/backend.js';
import { shellLine } from '../backend/qemu/argv.js';
import { formatCpuList } from '../model/cpulist.js';
import type { Accel, HostFacts } from '../model/host-facts.js';
import { Placeholder } from '../model/placeholder.js';
import { type RunTarget } from '../results/summary.js';
import { repetitionDir } from '../results/layout.js';
import { chooseAccel } from '../plan/accel.js';
import { planVm, whyNotPlannable, type VmPlan } from '../plan/vm.js';
import { mechanismOf, type Mechanism } from '../plan/mechanism.js';
import type { Loaded } from '../experiment/load.js';
import { selectVariants, variantQemu, type Variant } from '../experiment/matrix.js';
import type { Experiment, Knobs } from '../experiment/schema.js';
import { bootOut, bootWhere, insideL1Args, l1Argv, l1KnownFacts, nestedBoots, nestedHostFiles, nestedTarget, type HostKernelChoice, type L1Boot, type NestedShape } from '../targets/nested-host.js';
import { TARGET_ENV, type LocalOrNested } from '../targets/on.js';
import { bootFigure, estimateRuns, L1_START, type Estimate } from './estimate.js';
import { hostCommandsRefusal, preflight } from './preflight.js';
import { vmName } from '../host/journal.js';

/** What a launch chooses, as a plan shows it. */
const PLACEHOLDERS = {
  port: new Placeholder('port'),
  runDir: new Placeholder('run-dir'),
  out: new Placeholder('out'),
  authkey: new Placeholder('authkey'),
  pid: new Placeholder('pid'),
  rep: new Placeholder('rep'),
  ctlDir: new Placeholder('ctl-dir'),
  monitor: new Placeholder('l1-monitor'),
  targetInfo: new Placeholder('target-info'),
};

const MEANINGS: Record<string, string> = {
  [`${PLACEHOLDERS.port}`]: "the host port forwarded to the guest's SSH port: a free one, picked at each launch",
  [`${PLACEHOLDERS.runDir}`]: 'the private directory made at each launch for the QMP socket, pidfile and shim record (kvmlab-XXXXXX under $TMPDIR)',
  [`${PLACEHOLDERS.out}`]: 'the results directory (--out, or results/<experiment>/<time>/)',
  [`${PLACEHOLDERS.authkey}`]: "the run's SSH public key (base64), made fresh for each launch",
  [`${PLACEHOLDERS.pid}`]: "the running kvmlab's process id",
  [`${PLACEHOLDERS.rep}`]: 'the repetition, from 1',
  [`${PLACEHOLDERS.ctlDir}`]: 'the control directory L1 shares with this host, made when L1 boots',
  [`${PLACEHOLDERS.monitor}`]: "L1's QMP socket on this host (in a private directory made when L1 boots), where kvmlab reads L1's CPUs should L1 wedge",
  [`${PLACEHOLDERS.targetInfo}`]: 'a file in the control share saying, as JSON, where the run happens (L0 and L1), for its results',
};

export type Verdict = 'runnable' | 'skipped' | 'decided inside L1';

export interface PlannedVariant {
  id: string;
  labels: Record<string, string>;
  knobs: Knobs;
  verdict: Verdict;
  /** Preflight's reasons, as `run` gives them; none unless skipped. */
  reasons: string[];
  /** What the knobs ask of KVM and QEMU; null when they cannot be asked of this VM (a reason says why). */
  plan: VmPlan | null;
  /** What the cell measures: the instructions its guest idles and parks in, and what KVM does with each (plan/mechanism.ts). */
  mechanism: Mechanism | null;
  /** QEMU's argv, binary first, as launch builds it; null on the mock and without a plan. */
  argv: string[] | null;
  /** What launch adds to QEMU's environment: LD_PRELOAD and KVMLAB_* for the disable-exits shim. */
  env: Record<string, string>;
  /** The environment and argv as one shell line. */
  commandLine: string | null;
  /** Why the launch would stop before QEMU starts, though preflight passes the variant. */
  launchProblem?: string;
  /** On the mock: the guest it simulates in place of a QEMU process. */
  simulated?: { cpus: number; maxcpus?: number; cmdline: string };
  estimatedSeconds: number;
  estimate: Estimate;
}

/** `--on nested`: L1 as the run would boot it, and the run inside it. */
export interface PlannedL1 {
  /** The host-axis labels this L1 stands for; none without a host axis. */
  hosts: string[];
  /** The variants run in it. */
  variants: string[];
  shape: NestedShape;
  argv: string[];
  commandLine: string;
  /** The kvmlab command run inside L1. */
  inside: string[];
  decidedInside: string;
}

export interface RunPlan {
  file: string;
  experiment: string;
  backend: Backend['name'];
  simulated: boolean;
  accel: Accel;
  on: LocalOrNested;
  repetitions: number;
  /** The facts preflight judged by. */
  judgedOn: string;
  notices: string[];
  /** Why `run` would stop before booting anything, each with the exit status it would give. */
  refusals: { exitCode: 2 | 3; reason: string }[];
  /** Each placeholder the plan shows, and what the launch puts there. */
  placeholders: Record<string, string>;
  /** The L1s the run boots, in order: one, or one per host-axis label. */
  nested?: PlannedL1[];
  variants: PlannedVariant[];
  /** Every run that would happen, and what the figure is made of. */
  estimate: { seconds: number; clock: 'wall' | 'virtual'; runs: number; madeOf: string[] };
}

export interface PlanRequest {
  loaded: Loaded;
  /** The backend `run` would choose, given no journal: nothing is launched. */
  backend: Backend;
  accel: 'auto' | Accel;
  on: LocalOrNested;
  repeat?: number;
  only?: string;
  where?: string;
  /** --qemu, as an absolute path. */
  qemu?: string;
  /** --host-kernel: the nested host's kernel, over the experiment's nested.kernel. */
  hostKernel?: HostKernelChoice;
}

const DECIDED_INSIDE =
  "L1's facts are known only once it boots: inside L1 kvmlab probes its KVM (allowed disabled exits, KVM_CAP_HALT_POLL, kvm parameters), its CPU flags, devices and interrupt rows, and skips what they do not allow. Here those are taken as met, so a variant is skipped only for what no L1 could run.";

interface Where {
  facts: HostFacts;
  target: RunTarget;
  judgedOn: string;
  l1?: PlannedL1;
}

/** L1 as `run --on nested` would boot it; the facts of it known before it boots. */
async function nestedWhere(loaded: Loaded, req: PlanRequest, boot: L1Boot): Promise<Where> {
  const exp = loaded.experiment;
  const { shape, hosts } = boot;
  const { l0, image } = await nestedHostFiles(shape.kernel);
  const out = bootOut(String(PLACEHOLDERS.out), boot);
  const argv = l1Argv(image, shape, out, String(PLACEHOLDERS.ctlDir), String(PLACEHOLDERS.monitor));
  const inside = [`${TARGET_ENV}=${PLACEHOLDERS.targetInfo}`, 'kvmlab', ...insideL1Args(loaded.file, out, { repeat: req.repeat, only: req.only, where: bootWhere(req.where, boot), ...(req.qemu ? { qemu: req.qemu } : {}) })];
  return {
    facts: l1KnownFacts(exp, shape, image, out),
    target: nestedTarget(undefined, image, shape),
    judgedOn: `L1${hosts.length ? ` for host ${hosts.join(', ')}` : ''} as known before it boots (x86_64, ${shape.cpus} CPUs of TCG's -cpu max, Linux ${image.manifest.kernelVersion}); the rest is decided inside L1`,
    l1: { hosts, variants: boot.variants.map((v) => v.id), shape, argv: [l0, ...argv], commandLine: shellLine(l0, argv), inside, decidedInside: DECIDED_INSIDE },
  };
}

async function localWhere(backend: Backend): Promise<Where> {
  const facts = await backend.probe();
  const judgedOn = backend.simulated ? "the mock backend's simulated host" : `this host (${facts.arch}, Linux ${facts.kernelRelease}, CPUs ${formatCpuList(facts.cpus)})`;
  return { facts, target: { kind: 'local' }, judgedOn };
}

/** The launch of a variant as plan shows it, asked of the backend with placeholders for what only a launch chooses. */
function describeLaunch(backend: Backend, exp: Experiment, file: string, v: Variant, plan: VmPlan, launched: boolean) {
  const { pid, rep } = PLACEHOLDERS;
  const qemu = variantQemu(v, file);
  return backend.describeLaunch({ name: vmName(exp.name, rep, pid), guest: exp.guest, plan, runDir: String(PLACEHOLDERS.runDir), logDir: repetitionDir(String(PLACEHOLDERS.out), v.id, rep), clientPublicKey: PLACEHOLDERS.authkey, sshPort: PLACEHOLDERS.port, launched, ...(qemu ? { qemu } : {}) });
}

export async function planRun(req: PlanRequest): Promise<RunPlan> {
  const { loaded, backend } = req;
  const exp = loaded.experiment;
  const selected = selectVariants(exp, req.only, req.where);
  const repetitions = req.repeat ?? exp.repetitions;
  const groups: { where: Where; variants: Variant[] }[] =
    req.on === 'nested'
      ? await Promise.all(nestedBoots(exp, loaded.file, selected, req.hostKernel).map(async (b) => ({ where: await nestedWhere(loaded, req, b), variants: b.variants })))
      : [{ where: await localWhere(backend), variants: selected }];
  const { accel, notice } = chooseAccel(req.accel, exp.guest.arch, groups[0]!.where.facts);
  const refusals: RunPlan['refusals'] = [];
  const hostCommands = hostCommandsRefusal(exp, loaded.file, false);
  if (hostCommands) refusals.push({ exitCode: 2, reason: hostCommands });
  const judged: { where: Where; variant: Variant; reasons: string[] }[] = [];
  for (const g of groups) {
    const j = await preflight(exp, loaded.file, g.variants, g.where.facts, accel, g.where.target);
    if (j.refused && !refusals.some((r) => r.reason === j.refused)) refusals.push({ exitCode: 3, reason: j.refused });
    g.variants.forEach((variant, i) => judged.push({ where: g.where, variant, reasons: j.reasons[i]! }));
  }
  const l1s = groups.flatMap((g) => (g.where.l1 ? [g.where.l1] : []));

  const boot = bootFigure(backend.simulated ? 'mock' : req.on, exp.guest.arch, accel);
  const perRun = estimateRuns(exp.steps, 1, boot);
  const planned: PlannedVariant[] = [];
  for (const { where, variant: v, reasons } of judged) {
    const verdict: Verdict = reasons.length ? 'skipped' : where.l1 ? 'decided inside L1' : 'runnable';
    const plan = whyNotPlannable(exp.guest, v.knobs, accel) ? null : planVm(exp.guest, v.knobs, accel, where.facts);
    const launched = plan ? await describeLaunch(backend, exp, loaded.file, v, plan, verdict !== 'skipped') : { argv: null, env: {}, commandLine: null };
    const estimate = estimateRuns(exp.steps, verdict === 'skipped' ? 0 : repetitions, boot);
    planned.push({ id: v.id, labels: v.labels, knobs: v.knobs, verdict, reasons, plan, mechanism: plan && mechanismOf(plan, exp.guest.arch), ...launched, estimatedSeconds: estimate.seconds, estimate });
  }

  const runs = planned.reduce((n, v) => n + v.estimate.runs, 0);
  const madeOf = [boot.seconds ? `boot about ${boot.seconds} s a run: ${boot.source}` : boot.source, `the declared sample: and wait: windows, ${perRun.windowsSeconds} s a run`, `× ${repetitions} repetition${repetitions === 1 ? '' : 's'} of each variant that would run; steps without a window are not counted`];
  const booted = l1s.filter((l) => planned.some((v) => l.variants.includes(v.id) && v.estimate.runs > 0)).length;
  if (booted) madeOf.push(`L1 ${booted === 1 ? 'once' : `${booted} times (one per host)`}, about ${L1_START.seconds} s each: ${L1_START.source}`);
  const seconds = planned.reduce((t, v) => t + v.estimatedSeconds, 0) + booted * L1_START.seconds;

  const shown = JSON.stringify({ planned, l1s });
  return {
    file: loaded.file,
    experiment: exp.name,
    backend: backend.name,
    simulated: backend.simulated,
    accel,
    on: req.on,
    repetitions,
    judgedOn: groups.map((g) => g.where.judgedOn).join('; '),
    notices: notice ? [notice] : [],
    refusals,
    placeholders: Object.fromEntries(Object.entries(MEANINGS).filter(([p]) => shown.includes(p))),
    ...(l1s.length ? { nested: l1s } : {}),
    variants: planned,
    estimate: { seconds, clock: backend.simulated ? 'virtual' : 'wall', runs, madeOf },
  };
}
