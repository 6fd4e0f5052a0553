// Claims that cannot mean what they say, found before anything boots: an expectation on a metric
// nothing in the experiment writes, or one whose collector is not enabled, or on a vCPU the guest
// can never have, would only ever report "no data" — or, worse, be read as checked. Each is refused
// at its line with the fix.
import type { MetricName } from '../collect/collector.js';
import { COLLECTOR_METRICS } from '../collect/metrics.js';
import { loadExperiment, refuse, type Loaded } from '../spec/load.js';
import type { CollectorName, Experiment } from '../spec/schema.js';
import { closest } from '../util/did-you-mean.js';
import { RUNNER_METRICS, stepMetrics } from './step-metrics.js';

interface Producer {
  metric: MetricName;
  /** The collector that writes it (absent: the runner or a step always does). */
  collector?: CollectorName;
  /** Steps that write it (absent: every step). */
  steps?: string[];
}

function matches(m: MetricName, metric: string): boolean {
  return typeof m === 'string' ? m === metric : metric.startsWith(m.prefix) && metric.length > m.prefix.length;
}

const shown = (m: MetricName) => (typeof m === 'string' ? m : m.example);

export function claimProblems(exp: Experiment): { path: (string | number)[]; message: string }[] {
  const producers: Producer[] = RUNNER_METRICS.map((metric) => ({ metric }));
  for (const [name, metrics] of Object.entries(COLLECTOR_METRICS) as [CollectorName, readonly MetricName[]][]) {
    for (const metric of metrics) producers.push({ metric, collector: name });
  }
  for (const step of exp.steps) for (const metric of stepMetrics(step)) producers.push({ metric, steps: [step.name] });
  const enabled = (p: Producer) => p.collector === undefined || exp.collect[p.collector] !== undefined;

  const problems: { path: (string | number)[]; message: string }[] = [];
  const vcpus = possibleVcpus(exp);
  exp.expect.forEach((e, i) => {
    e.entity?.forEach((entity, j) => {
      const index = /^vcpu(\d+)$/.exec(entity)?.[1];
      if (index === undefined || Number(index) < vcpus.count || vcpus.deviceIds.includes(entity)) return;
      problems.push({ path: ['expect', i, 'entity', ...(e.entity!.length > 1 ? [j] : [])], message: `${entity} cannot exist: ${vcpus.why}; name ${vcpus.count === 1 ? 'vcpu0' : `one of vcpu0-vcpu${vcpus.count - 1}`}${vcpus.fix}` });
    });
    const at = ['expect', i, 'metric'];
    const writers = producers.filter((p) => matches(p.metric, e.metric));
    const live = writers.filter(enabled);
    if (live.length === 0) {
      const off = [...new Set(writers.map((p) => p.collector).filter((c) => c !== undefined))];
      if (off.length) {
        problems.push({ path: at, message: `${e.metric} is written by the ${off.join(' or ')} collector, which this experiment does not enable; add it under collect: (e.g. collect: { ${off[0]}: {} })` });
        return;
      }
      const candidates = [...new Set(producers.filter(enabled).map((p) => shown(p.metric)))];
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
      }
    }
  });
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
