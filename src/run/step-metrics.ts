// What the runner and each kind of step write into the metrics table, apart from the collectors,
// with the shape of each metric (model/metric-desc.ts): claims are held to these before anything
// boots (claims.ts), so this file stays as light as the schema it reads.
import { BOOL, COUNT, SECONDS, metric, type MetricDesc } from '../model/metric-desc.js';
import type { Step } from '../experiment/schema.js';

/** An exit status as kvmlab records it: the process's, or -1 when it was killed by a signal. */
const STATUS = { unit: 'status', min: -1, max: 255 } as const;

/** Metrics the runner itself writes for every variant: boot time, step durations, QMP events per step. */
export const RUNNER_METRICS: MetricDesc[] = [
  metric('guest.ready_s', { ...SECONDS, entities: ['guest'], window: 'boot' }),
  metric('step.duration_s', { ...SECONDS, entities: ['runner'] }),
  metric('qmp.event_count', { ...COUNT, entities: 'named' }),
  // what kvmlab itself used while it watched each step (runner.ts observerCost): its threads can use several CPUs
  metric('observer.cpu_s', { ...SECONDS, entities: ['kvmlab'] }),
  metric('observer.cpu_pct', { unit: '%', min: 0, max: Infinity, entities: ['kvmlab'] }),
];

/** The metrics a step writes, beside the runner's own; `validate` holds claims to them. */
export function stepMetrics(step: Step): MetricDesc[] {
  switch (step.kind) {
    case 'guest':
      // what the guest's command printed: any number
      return [metric('guest.exit_status', { ...STATUS, entities: ['guest'] }), ...(step.record ? [metric(`guest.${step.record}`, { unit: 'number', min: -Infinity, max: Infinity, entities: ['guest'] })] : [])];
    case 'offline':
    case 'online':
      return [metric('guest.cpu_online', { ...BOOL, entities: ['cpu'] }), metric('guest.online_cpus', { ...COUNT, entities: ['guest'] })];
    case 'hotplug':
      return [metric('cpu.hotplugged', { ...BOOL, entities: 'named' })];
    case 'unplug':
      return [
        ...['unplug.removed', 'unplug.deleted', 'unplug.refused'].map((m) => metric(m, { ...BOOL, entities: 'named' })),
        metric('unplug.guest_errors', { ...COUNT, entities: 'named' }),
        metric('unplug.latency_s', { ...SECONDS, entities: 'named' }),
      ];
    case 'wait_event':
      return [metric('event.received', { ...BOOL, entities: 'named' })];
    case 'host':
      return [metric('host.exit_status', { ...STATUS, entities: ['host'] })];
    case 'qmp':
    case 'wait':
    case 'sample':
      return [];
  }
}
