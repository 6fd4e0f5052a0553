// perf: `perf stat` counts for the QEMU process over each step — tracepoints (kvm:kvm_exit, …) and
// hardware counters where the host has them. One `perf stat -x, --per-thread -e EVENTS -p PID -o FILE`
// runs from each stepStart to its stepEnd (SIGINT ends it and makes it print). Rows per step:
//   perf.<event>   entity vcpuN | emulator | qemu (the whole process)   e.g. perf.kvm.kvm_exit, perf.cycles
// Event names map to metric words: ':' → '.', other non [a-z0-9_] → '_', lower-cased.
// "<not counted>" (the thread never ran in the window, so nothing could fire in it) counts as 0;
// "<not supported>" gives no row and is listed in perf-notes.txt. Threads created after a step began
// (hot-plug) are not counted in that step: perf attaches to the threads present when it starts.
//
// perf runs on the host through the HostView; the mock's simulated host has no perf, so there it is
// not collected, and says so.
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { metricWord } from '../model/metrics.js';
import type { HostProcess } from '../backend/backend.js';
import type { HostFacts } from '../model/host-facts.js';
import type { Collector, CollectorContext, CollectorKind } from './collector.js';
import { parsePerfCsv } from '../formats/perf-stat.js';

export interface PerfOptions {
  events: string[];
}

export function perfMetric(event: string): string {
  return `perf.${event.split(/[:.]/).map(metricWord).filter(Boolean).join('.')}`;
}

export class PerfCollector implements Collector {
  readonly name = 'perf';
  private ctx!: CollectorContext;
  private child: { proc: HostProcess; out: string } | undefined;

  constructor(private readonly opts: PerfOptions) {}

  async start(ctx: CollectorContext): Promise<void> {
    this.ctx = ctx;
  }

  async stepStart(step: string): Promise<void> {
    await this.finish();
    const out = join(this.ctx.dir, `perf-${step}.csv`);
    const proc = this.ctx.host.spawn('perf', ['stat', '-x,', '--per-thread', '-e', this.opts.events.join(','), '-p', String(this.ctx.vm.pid), '-o', out]);
    this.child = { proc, out };
    // perf needs a moment to attach to every thread; counting starts then.
    await this.ctx.clock.sleep(100);
  }

  async stepEnd(step: string): Promise<void> {
    const c = await this.finish();
    if (!c) return;
    const text = await readFile(c.out, 'utf8').catch(() => '');
    const counts = parsePerfCsv(text);
    if (counts.length === 0) {
      await appendFile(join(this.ctx.dir, 'perf-notes.txt'), `${step}: perf produced no counts: ${c.proc.stderr.join('').trim() || 'no output'}\n`);
      return;
    }
    const map = this.ctx.threads();
    const entityOf = new Map<number, string>([...map.vcpus.map((v) => [v.tid, `vcpu${v.index}`] as const), ...map.others.map((t) => [t, 'emulator'] as const)]);
    const sums = new Map<string, number>();
    const notes = new Set<string>();
    for (const k of counts) {
      if (k.value === undefined) {
        notes.add(`${k.event}: ${k.note}`);
        continue;
      }
      const entities = k.tid === undefined ? ['qemu'] : [entityOf.get(k.tid) ?? 'emulator', 'qemu'];
      for (const e of entities) {
        const key = `${perfMetric(k.event)}\u0000${e}`;
        sums.set(key, (sums.get(key) ?? 0) + k.value);
      }
    }
    for (const [key, value] of sums) {
      const [metric, entity] = key.split('\u0000') as [string, string];
      this.ctx.emit({ step, entity, metric, value, unit: 'count' });
    }
    if (notes.size) await appendFile(join(this.ctx.dir, 'perf-notes.txt'), `${step}: ${[...notes].join('; ')}\n`);
  }

  async stop(): Promise<void> {
    await this.finish();
  }

  /** End the running perf (SIGINT makes it print its counts) and wait for it. */
  private async finish(): Promise<{ proc: HostProcess; out: string } | undefined> {
    const c = this.child;
    this.child = undefined;
    if (!c) return undefined;
    c.proc.kill('SIGINT');
    const cancel = this.ctx.clock.deadline(5000, () => c.proc.kill('SIGKILL'));
    await c.proc.exited;
    cancel();
    return c;
  }
}

export const perf: CollectorKind<PerfOptions> = {
  name: 'perf',
  unmet: (facts: HostFacts) => {
    if (!facts.perf.path) return 'perf is not installed on this host (Debian: linux-perf)';
    const paranoid = facts.perf.paranoid ?? 2; // unreadable: the kernel's default
    if (!facts.root && paranoid > -1) return `kernel.perf_event_paranoid is ${paranoid}: counting tracepoints of another process needs root or -1`;
    return undefined;
  },
  create: (o) => new PerfCollector(o),
};
