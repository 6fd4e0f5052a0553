// What a collector is: something that watches the host while the steps run, marks every step
// boundary, and writes per-step rows into the one metrics table (and raw files beside it). Each
// declares what it needs from the host, so an experiment without it is told, not given zeros.
import type { HostView, Vm } from '../backend/backend.js';
import type { Clock } from '../backend/clock.js';
import type { HostFacts } from '../model/host-facts.js';
import type { RowSink } from '../model/metrics.js';
import type { ThreadMap } from '../model/threads.js';

export interface CollectorContext {
  host: HostView;
  /** What the host is (the probe's answer): where its tracefs is, whether it has perf, … */
  facts: HostFacts;
  /** The backend's clock: sampling intervals, stamps and rates go by it. */
  clock: Clock;
  vm: Vm;
  /** The current thread map; the runner refreshes it after every CPU step. */
  threads(): ThreadMap;
  /** Directory for this collector's raw files. */
  dir: string;
  emit: RowSink;
}

/**
 * Thrown by start() when the collector finds, once it can look, that this VM gives it nothing to
 * collect (no KVM statistics under TCG): the runner records "not collected: <message>" instead.
 */
export class NotCollected extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotCollected';
  }
}

export interface Collector {
  readonly name: string;
  /** Begin watching; may throw NotCollected, after releasing whatever it took. */
  start(ctx: CollectorContext): Promise<void>;
  stepStart(step: string): Promise<void>;
  stepEnd(step: string): Promise<void>;
  /**
   * Stop sampling, finish the raw files, and release everything taken from the host. Always called,
   * also after errors, and after the VM is shut down (the runner's teardown): whatever it reads
   * then (a trace recorded during the steps) it attributes to the steps, never to the shutdown.
   */
  stop(): Promise<void>;
  /** After stop: what a reader of the results must know about what was collected (e.g. a trace cut short), if anything. */
  caveat?(): string | undefined;
}

export interface CollectorKind<O> {
  readonly name: string;
  /** Why this host cannot serve the collector, or undefined when it can. */
  unmet(facts: HostFacts): string | undefined;
  create(options: O): Collector;
}

/** The host's tracefs (the probe found it), where kvmlab makes its private instances; it must have instances/. */
export async function tracefsInstances(ctx: CollectorContext): Promise<string> {
  const root = ctx.facts.tracefs.path;
  if (!root || !(await ctx.host.exists(`${root}/instances`))) throw new Error(`no tracefs with instances/${root ? ` at ${root}` : ''} (mount -t tracefs nodev /sys/kernel/tracing)`);
  return root;
}
