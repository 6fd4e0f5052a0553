// What a metric is, as far as a claim on it can tell before anything runs: the values a row of it can
// hold, the kind of entity its rows are about, the window it is observed in, and — for a family of
// names (exits.<reason>, kvm.<stat>) — which members exist. Whoever writes a metric declares it here
// (collect/metrics.ts, run/step-metrics.ts); run/claims.ts holds every claim to it, so a claim that
// no possible observation could make true, or that every possible one does, is refused at its line.
import type { Agg } from './select.js';

/** The comparisons a claim can make of its observed value. */
export const COMPARATORS = ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'between'] as const;
export type Comparator = (typeof COMPARATORS)[number];

/** What an entity name is about: vcpu3, pcpu5 and cpu1 (a guest CPU) by kind; the rest by name. */
export type EntityKind = 'vcpu' | 'pcpu' | 'cpu' | 'vm' | 'qemu' | 'emulator' | 'guest' | 'host' | 'all' | 'runner' | 'kvmlab';

export function entityKind(entity: string): EntityKind | undefined {
  const m = /^(vcpu|pcpu|cpu)\d+$/.exec(entity);
  if (m) return m[1] as EntityKind;
  return (['vm', 'qemu', 'emulator', 'guest', 'host', 'all', 'runner', 'kvmlab'] as const).find((k) => k === entity);
}

/** What each kind of entity is, and an example of its name. */
export const ENTITY_KINDS: Record<EntityKind, { what: string; example: string }> = {
  vcpu: { what: 'a vCPU thread', example: 'vcpu0' }, pcpu: { what: 'a host CPU', example: 'pcpu2' }, cpu: { what: 'a guest CPU', example: 'cpu1' },
  vm: { what: 'the whole VM', example: 'vm' }, qemu: { what: 'the whole QEMU process', example: 'qemu' },
  emulator: { what: "QEMU's non-vCPU threads", example: 'emulator' }, guest: { what: 'the guest', example: 'guest' }, host: { what: 'all host CPUs together', example: 'host' },
  all: { what: 'everything together', example: 'all' }, runner: { what: 'the runner', example: 'runner' }, kvmlab: { what: "kvmlab's own process", example: 'kvmlab' },
};

export interface MetricShape {
  unit: 'count' | '%' | 's' | 'bytes' | 'bool' | 'status' | 'cpu' | 'number';
  /** The values one row can hold. */
  min: number;
  max: number;
  /** The kinds of entity rows are written for; 'named' when the entity is a name (an event, a device id). */
  entities: readonly EntityKind[] | 'named';
  /** Rows exist for the steps, or only for the runner's boot (guest.ready_s). */
  window: 'steps' | 'boot';
}

/** A member of a family, with whatever differs from the family's shape. */
export type MemberCheck = (word: string) => Partial<MetricShape> | undefined;

export interface MetricDesc extends MetricShape {
  /** The exact name, or a family's prefix (ending in '.') when `family` is set. */
  name: string;
  family?: {
    /** An example member, for messages. */
    example: string;
    /** Which words name a member and how a member differs; absent: any word (names the host decides). */
    member?: MemberCheck;
    /** What the members are, for a refused one: "SVM and VMX exit reasons, e.g. hlt, mwait, npf". */
    what?: string;
    /** Every known member, for did-you-mean. */
    known?: readonly string[];
  };
}

const INF = Number.POSITIVE_INFINITY;
export const COUNT = { unit: 'count', min: 0, max: INF } as const;
export const PCT = { unit: '%', min: 0, max: 100 } as const;
export const BOOL = { unit: 'bool', min: 0, max: 1 } as const;
export const SECONDS = { unit: 's', min: 0, max: INF } as const;

export function metric(name: string, shape: Omit<MetricShape, 'window'> & { window?: MetricShape['window'] }): MetricDesc {
  return { window: 'steps', ...shape, name };
}

export function family(prefix: string, example: string, shape: Omit<MetricShape, 'window'>, members?: Omit<NonNullable<MetricDesc['family']>, 'example'>): MetricDesc {
  return { window: 'steps', ...shape, name: prefix, family: { example, ...members } };
}

/** The name claims and messages show: the name, or the family's example. */
export const shownName = (d: MetricDesc) => d.family?.example ?? d.name;

/** The shape of `metric` under descriptor `d`, or why d does not describe it. */
export function shapeOf(d: MetricDesc, metric: string): { shape: MetricShape } | { notMember: string } | undefined {
  if (!d.family) return d.name === metric ? { shape: d } : undefined;
  if (!metric.startsWith(d.name) || metric.length === d.name.length) return undefined;
  const word = metric.slice(d.name.length);
  if (!d.family.member) return { shape: d };
  const m = d.family.member(word);
  return m === undefined ? { notMember: word } : { shape: { ...d, ...m } };
}

/** The values a claim's observed value can take: one row's range, except for sums and counts of rows. */
export function observableRange(shape: MetricShape, agg: Agg): [number, number] {
  if (agg === 'count') return [0, INF];
  if (agg === 'sum') return [shape.min >= 0 ? 0 : -INF, shape.max <= 0 ? 0 : INF];
  return [shape.min, shape.max];
}

/**
 * Whether a comparison can fail and can pass over the observable range [lo, hi]:
 * 'never' when no observation satisfies it, 'always' when every one does, else undefined.
 */
export function decidedOver(op: Comparator, value: number | readonly [number, number], [lo, hi]: readonly [number, number]): 'never' | 'always' | undefined {
  const [a, b] = typeof value === 'number' ? [value, value] : value;
  switch (op) {
    case 'ge':
      return a > hi ? 'never' : a <= lo ? 'always' : undefined;
    case 'gt':
      return a >= hi ? 'never' : a < lo ? 'always' : undefined;
    case 'le':
      return a < lo ? 'never' : a >= hi ? 'always' : undefined;
    case 'lt':
      return a <= lo ? 'never' : a > hi ? 'always' : undefined;
    case 'eq':
      return a < lo || a > hi ? 'never' : lo === hi ? 'always' : undefined;
    case 'ne':
      return a < lo || a > hi ? 'always' : lo === hi ? 'never' : undefined;
    case 'between':
      return b < lo || a > hi ? 'never' : a <= lo && b >= hi ? 'always' : undefined;
  }
}

/** [0, 100] as "0–100", [0, ∞) as "≥ 0". */
export function describeRange([lo, hi]: readonly [number, number]): string {
  if (hi === INF && lo === -INF) return 'any number';
  if (hi === INF) return `≥ ${lo}`;
  if (lo === -INF) return `≤ ${hi}`;
  return `${lo}–${hi}`;
}
