// Claims that cannot mean what they say, found before anything boots: an expectation on a metric
// nothing in the experiment writes, or one whose collector is not enabled, or on a vCPU the guest
// can never have, would only ever report "no data" — or, worse, be read as checked. So is one that
// no possible observation could make true, or that every possible one does, measured against what
// the metric is (model/metric-desc.ts): its range, the kind of entity it is about, the window it is
// observed in, the members of its family. Each is refused at its line with the fix.
import { COLLECTOR_METRICS } from '../collect/metrics.js';
import { ENTITY_KINDS, decidedOver, describeRange, entityKind, observableRange, shapeOf, shownName, type MetricDesc, type MetricShape } from '../model/metric-desc.js';
import { loadExperiment, refuse, type Loaded } from '../experiment/load.js';
import { RUNNER_STEPS, type CollectorName, type Expectation, type Experiment } from '../experiment/schema.js';
import { closest } from '../util/did-you-mean.js';
import { RUNNER_METRICS, stepMetrics } from './step-metrics.js';

interface Producer {
  desc: MetricDesc;
  /** The collector that writes it (absent: the runner or a step always does). */
  collector?: CollectorName;
  /** Steps that write it (absent: every step). */
  steps?: string[];
}

type Problem = { path: (string | number)[]; message: string };

/** The producers of `metric` with its shape under each: exact names before families. */
function writersOf(producers: readonly Producer[], metric: string): { writers: (Producer & { shape: MetricShape })[]; notMember?: { desc: MetricDesc; word: string } } {
  const exact = producers.filter((p) => !p.desc.family && p.desc.name === metric).map((p) => ({ ...p, shape: p.desc as MetricShape }));
  if (exact.length) return { writers: exact };
  const writers: (Producer & { shape: MetricShape })[] = [];
  let notMember: { desc: MetricDesc; word: string } | undefined;
  for (const p of producers) {
    const s = shapeOf(p.desc, metric);
    if (s && 'shape' in s) writers.push({ ...p, shape: s.shape });
    else if (s) notMember = { desc: p.desc, word: s.notMember };
  }
  return writers.length ? { writers } : { writers, notMember };
}

export function claimProblems(exp: Experiment): Problem[] {
  const producers: Producer[] = RUNNER_METRICS.map((desc) => ({ desc }));
  for (const [name, descs] of Object.entries(COLLECTOR_METRICS) as [CollectorName, readonly MetricDesc[]][]) {
    for (const desc of descs) producers.push({ desc, collector: name });
  }
  for (const step of exp.steps) for (const desc of stepMetrics(step)) producers.push({ desc, steps: [step.name] });
  const enabled = (p: Producer) => p.collector === undefined || exp.collect[p.collector] !== undefined;

  const problems: Problem[] = [];
  const vcpus = possibleVcpus(exp);
  exp.expect.forEach((e, i) => {
    e.entity?.forEach((entity, j) => {
      const index = /^vcpu(\d+)$/.exec(entity)?.[1];
      if (index === undefined || Number(index) < vcpus.count || vcpus.deviceIds.includes(entity)) return;
      problems.push({ path: ['expect', i, 'entity', ...(e.entity!.length > 1 ? [j] : [])], message: `${entity} cannot exist: ${vcpus.why}; name ${vcpus.count === 1 ? 'vcpu0' : `one of vcpu0-vcpu${vcpus.count - 1}`}${vcpus.fix}` });
    });
    const at = ['expect', i, 'metric'];
    const { writers, notMember } = writersOf(producers, e.metric);
    if (notMember) {
      const f = notMember.desc.family!;
      const near = closest(notMember.word, f.known ?? []);
      problems.push({ path: at, message: `${e.metric}: "${notMember.word}" is not one of ${f.what ?? 'its members'}, so no row of ${e.metric} can ever be written; ${near ? `did you mean ${notMember.desc.name}${near}?` : `name one, e.g. ${f.example}`}` });
      return;
    }
    const live = writers.filter(enabled);
    if (live.length === 0) {
      const off = [...new Set(writers.map((p) => p.collector).filter((c) => c !== undefined))];
      if (off.length) {
        problems.push({ path: at, message: `${e.metric} is written by the ${off.join(' or ')} collector, which this experiment does not enable; add it under collect: (e.g. collect: { ${off[0]}: {} })` });
        return;
      }
      const candidates = [...new Set(producers.filter(enabled).map((p) => shownName(p.desc)))];
      const near = closest(e.metric, candidates);
      const hint = near ? `did you mean ${near}? ` : '';
      problems.push({ path: at, message: `nothing in this experiment writes ${e.metric}; ${hint}its collectors and steps write: ${candidates.join(', ')}` });
      return;
    }
    // A metric only some steps write, claimed over steps that do not write it.
    if (e.step && live.every((p) => p.steps)) {
      const from = live.flatMap((p) => p.steps ?? []);
      if (!e.step.some((s) => from.includes(s))) {
        problems.push({ path: ['expect', i, 'step'], message: `${e.metric} is written only by step${from.length > 1 ? 's' : ''} ${from.join(', ')}, not by ${e.step.join(', ')}` });
        return;
      }
    }
    problems.push(...shapeProblems(e, i, live[0]!.shape, vcpus.deviceIds));
  });
  return problems;
}

/** What the metric's shape rules out: a window it is not observed in, an entity of another kind, a bound no observation can break or meet. */
function shapeProblems(e: Expectation, i: number, shape: MetricShape, deviceIds: readonly string[]): Problem[] {
  const problems: Problem[] = [];
  if (e.step) {
    const boot = e.step.includes(RUNNER_STEPS.boot);
    if (shape.window === 'boot' && !boot) problems.push({ path: ['expect', i, 'step'], message: `${e.metric} is written only for the runner's boot; claim it with step: ${RUNNER_STEPS.boot}, or leave step out` });
    if (shape.window === 'steps' && e.step.every((s) => s === RUNNER_STEPS.boot)) {
      problems.push({ path: ['expect', i, 'step'], message: `${e.metric} is observed during the steps, and the boot is not one: nothing watches it then (the boot has only guest.ready_s); name the steps it should hold over` });
    }
  }
  e.entity?.forEach((entity, j) => {
    const kind = entityKind(entity);
    const path = ['expect', i, 'entity', ...(e.entity!.length > 1 ? [j] : [])];
    if (shape.entities === 'named') {
      if (kind !== undefined && !deviceIds.includes(entity)) problems.push({ path, message: `${e.metric} rows are about a named thing (a QMP event, a device id), and ${entity} is ${ENTITY_KINDS[kind].what}; name the thing, or leave entity out` });
      return;
    }
    if (kind === undefined || !shape.entities.includes(kind)) {
      const what = kind === undefined ? `"${entity}" is no entity kvmlab writes` : `${entity} is ${ENTITY_KINDS[kind].what}`;
      const kinds = shape.entities.map((k) => `${ENTITY_KINDS[k].what} (${ENTITY_KINDS[k].example})`).join(' or ');
      problems.push({ path, message: `${e.metric} is written for ${kinds}; ${what}, so no row of it can match` });
    }
  });
  if (e.op === 'between') {
    const [a, b] = e.value as [number, number];
    if (a > b) {
      problems.push({ path: ['expect', i, 'between'], message: `between [${a}, ${b}] is reversed: no value is ≥ ${a} and ≤ ${b}; write between: [${b}, ${a}]` });
      return problems;
    }
  }
  const range = observableRange(shape, e.agg);
  const decided = decidedOver(e.op, e.value, range);
  if (decided) {
    const value = Array.isArray(e.value) ? `[${e.value.join(', ')}]` : String(e.value);
    const over = `${e.agg} of ${e.metric} is ${describeRange(range)}${shape.unit === 'count' || shape.unit === 'number' ? '' : ` (${shape.unit})`}`;
    problems.push({
      path: ['expect', i, e.op],
      message:
        decided === 'never'
          ? `${e.op} ${value} can never hold: the ${over}; no observation could make this claim true`
          : `${e.op} ${value} holds whatever is observed: the ${over}, so this claim checks nothing; claim a bound an observation could break`,
    });
  }
  return problems;
}

/**
 * The vCPUs an entity can name: those the guest boots, and up to maxcpus when a step hot-plugs one.
 * Host CPUs (pcpuN) are not known here: that depends on the host the run lands on.
 */
function possibleVcpus(exp: Experiment): { count: number; why: string; fix: string; deviceIds: string[] } {
  const { cpus } = exp.guest;
  const maxcpus = exp.guest.maxcpus ?? cpus;
  const plugs = exp.steps.filter((s) => s.kind === 'hotplug');
  // A hot-plugged CPU's device id is an entity too (cpu.hotplugged, unplug.*), whatever it is called.
  const deviceIds = exp.steps.flatMap((s) => (s.kind === 'hotplug' || s.kind === 'unplug') && s.id !== undefined ? [s.id] : []);
  if (plugs.length) return { count: maxcpus, why: `the guest has maxcpus ${maxcpus}`, fix: ', or raise guest.maxcpus', deviceIds };
  if (maxcpus > cpus) return { count: cpus, why: `the guest boots ${cpus} vCPU${cpus > 1 ? 's' : ''} and no step hot-plugs one (maxcpus ${maxcpus} only leaves slots)`, fix: ', or add a hotplug: step', deviceIds };
  return { count: cpus, why: `the guest has ${cpus} vCPU${cpus > 1 ? 's' : ''} (maxcpus ${maxcpus})`, fix: ', or raise guest.cpus', deviceIds };
}

/** loadExperiment, then refuse (exit 2, at the line) every claim that cannot be checked. */
export async function loadChecked(file: string): Promise<Loaded> {
  const loaded = await loadExperiment(file);
  const problems = claimProblems(loaded.experiment);
  if (problems.length) refuse(loaded, problems);
  return loaded;
}
