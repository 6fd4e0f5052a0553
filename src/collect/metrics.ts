// What each collector writes into the metrics table, by the name experiment files use under
// collect:. Claims are held to these before anything boots (run/claims.ts), so this file imports
// none of the code that collects.
import type { CollectorName } from '../spec/schema.js';
import type { MetricName } from './collector.js';

export const COLLECTOR_METRICS: Record<CollectorName, readonly MetricName[]> = {
  'vcpu-cpu': ['vcpu.cpu_pct', 'vcpu.wait_pct', 'vcpu.guest_pct', 'vcpu.timeslices', 'vcpu.migrations', 'vcpu.last_cpu', 'qemu.cpu_pct', 'qemu.rss_bytes'],
  tracefs: [
    'trace.events', 'trace.exits', { prefix: 'trace.exits.', example: 'trace.exits.hlt' }, 'trace.vcpu_wakeups', 'trace.vcpu_wakeups_polled', 'trace.userspace_exits',
    'trace.sched_switch', 'trace.switches_out', 'trace.preemptions', 'trace.sched_wakeups', 'trace.rcuc_wakeups', 'trace.rcuc_preemptions', 'trace.events_lost',
  ],
  'kvm-stats': [{ prefix: 'kvm.', example: 'kvm.halt_exits' }],
  'kvm-exits': ['exits.total', { prefix: 'exits.', example: 'exits.mwait' }, 'exits.kvm_stat', 'exits.diff', 'exits.diff_pct', 'exits.diff_bound', 'exits.diff_excess', 'exits.dropped'],
  perf: [{ prefix: 'perf.', example: 'perf.kvm.kvm_exit' }],
  interrupts: [{ prefix: 'irq.', example: 'irq.piw' }, 'cpu.busy_pct', 'cpu.idle_pct', 'cpu.guest_pct'],
};
