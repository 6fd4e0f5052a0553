// Claims that cannot mean what they say, found before anything boots: an expectation on a metric
// nothing in the experiment writes, or one whose collector is not enabled, would only ever report
// "no data" — or, worse, be read as checked. Each is refused at its line with the fix.
import { COLLECTORS } from '../collect/registry.js';
import type { MetricName } from '../collect/collector.js';
import { loadExperiment, refuse, type Loaded } from '../spec/load.js';
import type { CollectorName, Experiment } from '../spec/schema.js';
import { closest } from '../util/did-you-mean.js';
import { RUNNER_METRICS } from './runner.js';
import { stepMetrics } from './steps.js';

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
  for (const [name, kind] of Object.entries(COLLECTORS) as [CollectorName, (typeof COLLECTORS)[CollectorName]][]) {
    for (const metric of kind.metrics) producers.push({ metric, collector: name });
  }
  for (const step of exp.steps) for (const metric of stepMetrics(step)) producers.push({ metric, steps: [step.name] });
  const enabled = (p: Producer) => p.collector === undefined || exp.collect[p.collector] !== undefined;

  const problems: { path: (string | number)[]; message: string }[] = [];
  exp.expect.forEach((e, i) => {
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

/** loadExperiment, then refuse (exit 2, at the line) every claim that cannot be checked. */
export async function loadChecked(file: string): Promise<Loaded> {
  const loaded = await loadExperiment(file);
  const problems = claimProblems(loaded.experiment);
  if (problems.length) refuse(loaded, problems);
  return loaded;
}
