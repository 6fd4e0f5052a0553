// What each collector writes into the metrics table, by the name experiment files use under
// collect:, with the shape of each metric (model/metric-desc.ts). Claims are held to these before
// anything boots (run/claims.ts), so this file imports none of the code that collects.
import { EXIT_REASON_NAMES } from '../formats/kvm-exit-hist.js';
import { BOOL, COUNT, PCT, family, metric, type MemberCheck, type MetricDesc } from '../model/metric-desc.js';
import { exitReasonWord } from '../model/metrics.js';
import type { CollectorName } from '../experiment/schema.js';

/**
 * The statistics x86 KVM keeps (the stats descriptors of Linux 6.1's and 6.12's kvm.ko list the same
 * names), less the histograms (*_hist), which never reach the metrics table; and the files debugfs
 * adds in a vCPU's directory.
 */
export const KVM_VCPU_STATS = [
  'halt_successful_poll', 'halt_attempted_poll', 'halt_poll_invalid', 'halt_wakeup', 'halt_poll_success_ns', 'halt_poll_fail_ns', 'halt_wait_ns', 'blocking',
  'pf_taken', 'pf_fixed', 'pf_emulate', 'pf_spurious', 'pf_fast', 'pf_mmio_spte_created', 'pf_guest', 'tlb_flush', 'invlpg', 'exits', 'io_exits', 'mmio_exits',
  'signal_exits', 'irq_window_exits', 'nmi_window_exits', 'l1d_flush', 'halt_exits', 'request_irq_exits', 'irq_exits', 'host_state_reload', 'fpu_reload',
  'insn_emulation', 'insn_emulation_fail', 'hypercalls', 'irq_injections', 'nmi_injections', 'req_event', 'nested_run', 'directed_yield_attempted',
  'directed_yield_successful', 'preemption_reported', 'preemption_other', 'guest_mode', 'notify_window_exits',
];
export const KVM_VM_STATS = [
  'remote_tlb_flush', 'remote_tlb_flush_requests', 'mmu_shadow_zapped', 'mmu_pte_write', 'mmu_pde_zapped', 'mmu_flooded', 'mmu_recycled', 'mmu_cache_miss',
  'mmu_unsync', 'pages_4k', 'pages_2m', 'pages_1g', 'nx_lpage_splits', 'max_mmu_rmap_size', 'max_mmu_page_hash_collisions',
];
const DEBUGFS_VCPU_FILES = ['tsc_offset', 'tsc_scaling_ratio', 'tsc_scaling_ratio_frac_bits', 'lapic_timer_advance_ns'];

/** kvm.<stat>: vCPU stats on a vCPU (and summed on the VM, as debugfs shows them), VM stats on the VM only. */
const kvmStat: MemberCheck = (word) => {
  if (/_hist$/.test(word)) return undefined;
  const bool = word === 'blocking' || word === 'guest_mode' ? BOOL : {};
  if (KVM_VCPU_STATS.includes(word)) return { entities: ['vcpu', 'vm'], ...bool };
  if (KVM_VM_STATS.includes(word)) return { entities: ['vm'] };
  if (DEBUGFS_VCPU_FILES.includes(word)) return { entities: ['vcpu'], ...(word === 'tsc_offset' ? { unit: 'number', min: -Infinity } : {}) };
  return undefined;
};
const KVM_STATS_KNOWN = [...KVM_VCPU_STATS, ...KVM_VM_STATS, ...DEBUGFS_VCPU_FILES];

/** The words exit reasons become in metric names (exits.hlt, trace.exits.npf), and reasons kvmlab names by number. */
const EXIT_WORDS = [...new Set(EXIT_REASON_NAMES.map(exitReasonWord))];
const exitReason: MemberCheck = (word) => (EXIT_WORDS.includes(word) || /^reason_\d+_0x[0-9a-f]+$/.test(word) ? {} : undefined);
const exitMembers = { member: exitReason, what: 'exit reasons as KVM names them (SVM and VMX), e.g. hlt, mwait, npf, io, external_interrupt', known: EXIT_WORDS };

const VCPU_THREAD = ['vcpu', 'emulator'] as const;

export const COLLECTOR_METRICS: Record<CollectorName, readonly MetricDesc[]> = {
  'vcpu-cpu': [
    metric('vcpu.cpu_pct', { ...PCT, entities: VCPU_THREAD }),
    metric('vcpu.wait_pct', { ...PCT, entities: VCPU_THREAD }),
    metric('vcpu.guest_pct', { ...PCT, entities: VCPU_THREAD }),
    metric('vcpu.timeslices', { ...COUNT, entities: VCPU_THREAD }),
    metric('vcpu.migrations', { ...COUNT, entities: VCPU_THREAD }),
    metric('vcpu.last_cpu', { unit: 'cpu', min: 0, max: Infinity, entities: VCPU_THREAD }),
    // the whole process: its threads together can use several CPUs
    metric('qemu.cpu_pct', { unit: '%', min: 0, max: Infinity, entities: ['qemu'] }),
    metric('qemu.rss_bytes', { unit: 'bytes', min: 0, max: Infinity, entities: ['qemu'] }),
  ],
  tracefs: [
    metric('trace.events', { ...COUNT, entities: 'named' }),
    metric('trace.exits', { ...COUNT, entities: ['vcpu'] }),
    family('trace.exits.', 'trace.exits.hlt', { ...COUNT, entities: ['vcpu'] }, exitMembers),
    metric('trace.vcpu_wakeups', { ...COUNT, entities: ['vcpu'] }),
    metric('trace.vcpu_wakeups_polled', { ...COUNT, entities: ['vcpu'] }),
    metric('trace.userspace_exits', { ...COUNT, entities: ['vcpu'] }),
    metric('trace.sched_switch', { ...COUNT, entities: ['pcpu'] }),
    metric('trace.switches_out', { ...COUNT, entities: VCPU_THREAD }),
    metric('trace.preemptions', { ...COUNT, entities: VCPU_THREAD }),
    metric('trace.sched_wakeups', { ...COUNT, entities: VCPU_THREAD }),
    metric('trace.rcuc_wakeups', { ...COUNT, entities: ['pcpu'] }),
    metric('trace.rcuc_preemptions', { ...COUNT, entities: ['pcpu'] }),
    metric('trace.rcu_ticks', { ...COUNT, entities: ['pcpu'] }),
    metric('trace.rcuc_tick_wakeups', { ...COUNT, entities: ['pcpu'] }),
    metric('trace.rcuc_other_wakeups', { ...COUNT, entities: ['pcpu'] }),
    metric('trace.events_lost', { ...COUNT, entities: ['pcpu', 'all'] }),
  ],
  'kvm-stats': [family('kvm.', 'kvm.halt_exits', { ...COUNT, entities: ['vcpu', 'vm'] }, { member: kvmStat, what: "x86 KVM's statistics that are numbers (the *_hist histograms stay in kvm-stats.jsonl)", known: KVM_STATS_KNOWN })],
  'kvm-exits': [
    metric('exits.total', { ...COUNT, entities: ['vcpu'] }),
    metric('exits.kvm_stat', { ...COUNT, entities: ['vcpu'] }),
    // the histogram's count less KVM's own: either can be ahead
    metric('exits.diff', { unit: 'count', min: -Infinity, max: Infinity, entities: ['vcpu'] }),
    metric('exits.diff_pct', { unit: '%', min: -100, max: Infinity, entities: ['vcpu'] }),
    metric('exits.diff_bound', { ...COUNT, entities: ['vcpu'] }),
    metric('exits.diff_excess', { ...COUNT, entities: ['vcpu'] }),
    metric('exits.dropped', { ...COUNT, entities: ['all'] }),
    metric('exits.traced', { ...COUNT, entities: ['all'] }),
    family('exits.', 'exits.mwait', { ...COUNT, entities: ['vcpu'] }, exitMembers),
  ],
  // perf and /proc/interrupts name their rows after what the host has: any word
  perf: [family('perf.', 'perf.kvm.kvm_exit', { ...COUNT, entities: ['vcpu', 'emulator', 'qemu'] })],
  interrupts: [
    family('irq.', 'irq.piw', { ...COUNT, entities: ['pcpu', 'host'] }),
    metric('cpu.busy_pct', { ...PCT, entities: ['pcpu'] }),
    metric('cpu.idle_pct', { ...PCT, entities: ['pcpu'] }),
    metric('cpu.guest_pct', { ...PCT, entities: ['pcpu'] }),
  ],
};

/** The kvm-exits collector's rows that are not a vCPU's exit counts: its checks against KVM's own count, its loss, its own runs. */
const KVM_EXITS_CHECKS = new Set(COLLECTOR_METRICS['kvm-exits'].filter((m) => !m.family && m.name !== 'exits.total').map((m) => m.name));

/** The exit reason an exit-count metric counts (exits.hlt, trace.exits.hlt → hlt), or undefined for totals, checks and other metrics. */
export function exitReasonOfMetric(metric: string): string | undefined {
  if (metric.startsWith('trace.exits.')) return metric.slice('trace.exits.'.length);
  if (metric.startsWith('exits.') && metric !== 'exits.total' && !KVM_EXITS_CHECKS.has(metric)) return metric.slice('exits.'.length);
  return undefined;
}

/**
 * Exit counts: the tracefs collector's trace.exits[.<reason>], the kvm-exits collector's in-kernel
 * exits.total and exits.<reason>, and KVM's own kvm.[<kind>_]exits stats.
 */
export function isExitMetric(metric: string): boolean {
  return metric.startsWith('trace.exit') || /^kvm\.([a-z0-9_]+_)?exits$/.test(metric) || (metric.startsWith('exits.') && !KVM_EXITS_CHECKS.has(metric));
}
