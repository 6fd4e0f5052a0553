// What the runner and each kind of step write into the metrics table, apart from the collectors:
// claims are held to these before anything boots (claims.ts), so this file stays as light as the
// schema it reads.
import type { MetricName } from '../collect/collector.js';
import type { Step } from '../spec/schema.js';

/** Metrics the runner itself writes for every variant: boot time, step durations, QMP events per step. */
export const RUNNER_METRICS: MetricName[] = ['guest.ready_s', 'step.duration_s', 'qmp.event_count'];

/** The metrics a step writes, beside the runner's own; `validate` holds claims to them. */
export function stepMetrics(step: Step): MetricName[] {
  switch (step.kind) {
    case 'guest':
      return ['guest.exit_status', ...(step.record ? [`guest.${step.record}`] : [])];
    case 'offline':
    case 'online':
      return ['guest.cpu_online', 'guest.online_cpus'];
    case 'hotplug':
      return ['cpu.hotplugged'];
    case 'unplug':
      return ['unplug.removed', 'unplug.deleted', 'unplug.refused', 'unplug.guest_errors', 'unplug.latency_s'];
    case 'wait_event':
      return ['event.received'];
    case 'host':
      return ['host.exit_status'];
    case 'qmp':
    case 'wait':
    case 'sample':
      return [];
  }
}
