// interrupts: /proc/interrupts per-CPU deltas and /proc/stat per-CPU busy/idle over each step.
// Rows per step:
//   irq.<row>        entity pcpuN   named per-CPU rows lower-cased (irq.loc, irq.res, irq.cal, irq.pin,
//                                   irq.npi, irq.piw, irq.nmi, …): every CPU, zeros included;
//                                   numbered IRQs (irq.24) only where they fired during the step
//   irq.<row>        entity host    rows the kernel prints as one system-wide count (ERR, MIS)
//   cpu.busy_pct     entity pcpuN   (all ticks − idle − iowait) / all ticks, over the step
//   cpu.idle_pct     entity pcpuN   (idle + iowait) / all ticks
//   cpu.guest_pct    entity pcpuN   guest + guest_nice ticks / all ticks
// /proc/stat counts in USER_HZ ticks (10 ms): steps shorter than a second give coarse percentages.
// Raw snapshots go to interrupts.log.
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { metricWord } from '../model/metrics.js';
import { parseInterrupts, parseProcStat, type Interrupts, type ProcStatCpu } from '../formats/procfs.js';
import type { Collector, CollectorContext, CollectorKind } from './collector.js';

interface Snap {
  irq: Interrupts;
  stat: ProcStatCpu[];
}

type Row = { step: string; entity: string; metric: string; value: number; unit: string };

export function interruptRows(step: string, a: Interrupts, b: Interrupts): Row[] {
  const rows: Row[] = [];
  const before = new Map(a.rows.map((r) => [r.irq, r]));
  for (const r of b.rows) {
    const p = before.get(r.irq);
    if (!p) continue;
    const named = !/^\d+$/.test(r.irq);
    const metric = `irq.${metricWord(r.irq)}`;
    if (named && r.counts.length === 1 && b.cpus.length > 1) {
      rows.push({ step, entity: 'host', metric, value: r.counts[0]! - (p.counts[0] ?? r.counts[0]!), unit: 'count' });
      continue;
    }
    r.counts.forEach((count, i) => {
      const cpu = b.cpus[i]!;
      const j = a.cpus.indexOf(cpu);
      if (j < 0 || p.counts[j] === undefined) return; // CPU came online mid-step
      const d = count - p.counts[j]!;
      if (named || d !== 0) rows.push({ step, entity: `pcpu${cpu}`, metric, value: d, unit: 'count' });
    });
  }
  return rows;
}

export function statRows(step: string, a: ProcStatCpu[], b: ProcStatCpu[]): Row[] {
  const rows: Row[] = [];
  const before = new Map(a.map((c) => [c.cpu, c]));
  // user includes guest and nice includes guest_nice: leave those out of the total
  const total = (c: ProcStatCpu) => c.user + c.nice + c.system + c.idle + c.iowait + c.irq + c.softirq + c.steal;
  for (const c of b) {
    if (c.cpu === 'all') continue;
    const p = before.get(c.cpu);
    if (!p) continue;
    const dt = total(c) - total(p);
    if (dt <= 0) continue;
    const idle = c.idle + c.iowait - (p.idle + p.iowait);
    const guest = c.guest + c.guestNice - (p.guest + p.guestNice);
    const entity = `pcpu${c.cpu}`;
    rows.push({ step, entity, metric: 'cpu.busy_pct', value: ((dt - idle) / dt) * 100, unit: '%' });
    rows.push({ step, entity, metric: 'cpu.idle_pct', value: (idle / dt) * 100, unit: '%' });
    rows.push({ step, entity, metric: 'cpu.guest_pct', value: (guest / dt) * 100, unit: '%' });
  }
  return rows;
}

export class InterruptsCollector implements Collector {
  readonly name = 'interrupts';
  private ctx!: CollectorContext;
  private start_: Snap | undefined;

  async start(ctx: CollectorContext): Promise<void> {
    this.ctx = ctx;
    await this.snapshot('check'); // fail at start, not mid-run, when the files cannot be read or parsed
  }

  async stepStart(step: string): Promise<void> {
    this.start_ = await this.snapshot(`${step} start`);
  }

  async stepEnd(step: string): Promise<void> {
    const a = this.start_;
    this.start_ = undefined;
    if (!a) return;
    const b = await this.snapshot(`${step} end`);
    for (const r of [...interruptRows(step, a.irq, b.irq), ...statRows(step, a.stat, b.stat)]) this.ctx.emit(r);
  }

  async stop(): Promise<void> {}

  private async snapshot(label: string): Promise<Snap> {
    const [irqText, statText] = await Promise.all([this.ctx.host.readFile('/proc/interrupts'), this.ctx.host.readFile('/proc/stat')]);
    await appendFile(join(this.ctx.dir, 'interrupts.log'), `=== ${label} ${this.ctx.clock.now() / 1000}\n${irqText}--- /proc/stat\n${statText.split('\n').filter((l) => l.startsWith('cpu')).join('\n')}\n`);
    return { irq: parseInterrupts(irqText), stat: parseProcStat(statText) };
  }
}

export const interrupts: CollectorKind<Record<string, never>> = {
  name: 'interrupts',
  unmet: () => undefined,
  create: () => new InterruptsCollector(),
};
