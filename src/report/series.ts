// A repetition's vcpu-cpu samples as series over time: host CPU % per thread between samples, thinned
// for drawing, from the repetition's first step. The CPU plot and the timeline draw from these.
import type { RepetitionData } from './load.js';
import type { VcpuSample } from '../results/records.js';

export interface CpuPoint {
  /** Seconds since the repetition's first step started. */
  t: number;
  entity: string;
  pct: number;
}

/** Host CPU % per entity between consecutive samples (derivative of run_ns), emulator threads summed. */
export function cpuSeries(samples: readonly VcpuSample[], t0: number): CpuPoint[] {
  const byTid = new Map<number, VcpuSample[]>();
  for (const s of samples) {
    const list = byTid.get(s.tid);
    if (list) list.push(s);
    else byTid.set(s.tid, [s]);
  }
  const sum = new Map<string, CpuPoint>();
  for (const list of byTid.values()) {
    list.sort((a, b) => a.t - b.t);
    for (let i = 1; i < list.length; i++) {
      const p = list[i - 1]!;
      const c = list[i]!;
      const dt = c.t - p.t;
      if (dt <= 0 || c.entity !== p.entity) continue;
      const pct = ((c.runNs - p.runNs) / (dt * 1e9)) * 100;
      // ticks read every thread at (nearly) the same instant: group them to 10 ms
      const key = `${c.entity}@${Math.round(c.t * 100)}`;
      const cur = sum.get(key);
      if (cur) cur.pct += pct;
      else sum.set(key, { t: Math.round((c.t - t0) * 1000) / 1000, entity: c.entity, pct });
    }
  }
  return [...sum.values()].map((p) => ({ ...p, pct: Math.round(p.pct * 100) / 100 })).sort((a, b) => a.t - b.t || a.entity.localeCompare(b.entity));
}

/** At most `max` points per entity: average over equal buckets. */
export function thin(points: CpuPoint[], max: number): CpuPoint[] {
  const by = new Map<string, CpuPoint[]>();
  for (const p of points) {
    const list = by.get(p.entity);
    if (list) list.push(p);
    else by.set(p.entity, [p]);
  }
  const out: CpuPoint[] = [];
  for (const [entity, list] of by) {
    if (list.length <= max) {
      out.push(...list);
      continue;
    }
    const per = Math.ceil(list.length / max);
    for (let i = 0; i < list.length; i += per) {
      const chunk = list.slice(i, i + per);
      out.push({ entity, t: chunk[Math.floor(chunk.length / 2)]!.t, pct: chunk.reduce((s, p) => s + p.pct, 0) / chunk.length });
    }
  }
  return out;
}

export function repStart(rep: RepetitionData): number | undefined {
  const starts = rep.steps.map((s) => s.start).filter((s): s is number => typeof s === 'number');
  if (starts.length) return Math.min(...starts);
  return rep.samples[0]?.t;
}
