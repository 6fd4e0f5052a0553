// Every collector kvmlab has, by the name experiment files use under `collect:`.
import { CollectorOptions, type CollectorName } from '../spec/schema.js';
import type { CollectorKind } from './collector.js';
import { vcpuCpu } from './vcpu-cpu.js';

type Entry = CollectorKind<never> & { defaults: unknown };

const notYet = (name: string): CollectorKind<never> => ({
  name,
  unmet: () => `the ${name} collector is not part of this kvmlab build yet`,
  create: () => {
    throw new Error(`no ${name} collector`);
  },
});

const kinds: Record<CollectorName, CollectorKind<never>> = {
  'vcpu-cpu': vcpuCpu as CollectorKind<never>,
  tracefs: notYet('tracefs'),
  'kvm-stats': notYet('kvm-stats'),
  perf: notYet('perf'),
  interrupts: notYet('interrupts'),
};

export const COLLECTORS = Object.fromEntries(
  Object.entries(kinds).map(([name, kind]) => [name, { ...kind, defaults: CollectorOptions[name as CollectorName].parse({}) }]),
) as Record<CollectorName, Entry>;
