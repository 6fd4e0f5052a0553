// Every collector kvmlab has, by the name experiment files use under `collect:`.
import { CollectorOptions, type CollectorName } from '../spec/schema.js';
import type { CollectorKind } from './collector.js';
import { interrupts } from './interrupts.js';
import { kvmExits } from './kvm-exits.js';
import { kvmStats } from './kvm-stats.js';
import { perf } from './perf.js';
import { tracefs } from './tracefs.js';
import { vcpuCpu } from './vcpu-cpu.js';

type Entry = CollectorKind<never> & { defaults: unknown };

const kinds: Record<CollectorName, CollectorKind<never>> = {
  'vcpu-cpu': vcpuCpu as CollectorKind<never>,
  tracefs: tracefs as CollectorKind<never>,
  'kvm-stats': kvmStats as CollectorKind<never>,
  'kvm-exits': kvmExits as CollectorKind<never>,
  perf: perf as CollectorKind<never>,
  interrupts: interrupts as CollectorKind<never>,
};

export const COLLECTORS = Object.fromEntries(
  Object.entries(kinds).map(([name, kind]) => [name, { ...kind, defaults: CollectorOptions[name as CollectorName].parse({}) }]),
) as Record<CollectorName, Entry>;
