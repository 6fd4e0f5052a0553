// Every collector kvmlab has, by the name experiment files use under `collect:`, each typed with the
// options its schema gives it.
import type { z } from 'zod';
import { CollectorOptions, type CollectorName } from '../experiment/schema.js';
import type { Collector, CollectorKind } from './collector.js';
import { interrupts } from './interrupts.js';
import { kvmExits } from './kvm-exits.js';
import { kvmStats } from './kvm-stats.js';
import { perf } from './perf.js';
import { tracefs } from './tracefs.js';
import { vcpuCpu } from './vcpu-cpu.js';

export type CollectorOptionsOf = { [N in CollectorName]: z.output<(typeof CollectorOptions)[N]> };

export const COLLECTORS: { [N in CollectorName]: CollectorKind<CollectorOptionsOf[N]> } = {
  'vcpu-cpu': vcpuCpu,
  tracefs,
  'kvm-stats': kvmStats,
  'kvm-exits': kvmExits,
  perf,
  interrupts,
};

/** A collector of kind `name` with these options (null, as `collect: { name: }` gives: its defaults). */
export function createCollector<N extends CollectorName>(name: N, options: CollectorOptionsOf[N] | null): Collector {
  const kind: CollectorKind<CollectorOptionsOf[N]> = COLLECTORS[name];
  return kind.create(options ?? (CollectorOptions[name].parse({}) as CollectorOptionsOf[N]));
}
