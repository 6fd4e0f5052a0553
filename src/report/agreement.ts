// Do two runs of one experiment agree, cell by cell? Meant for the mock against real KVM (the nested
// host): per variant both ran, the same verdict, the same dominant mechanism exit (HLT, MWAIT, PAUSE)
// per vCPU and measuring window, and KVM statistics that agree in kind (both zero, or both non-zero
// within an order of magnitude).
// `kvmlab compare A B --verdicts` prints it and exits 0 only when every common cell agrees.
import { InputError } from '../errors.js';
import type { MetricRow } from '../model/metrics.js';
import type { VariantStatus } from '../results/summary.js';
import type { LoadedResults } from './load.js';
import { exitReasonOfMetric } from '../collect/metrics.js';
import { whereMeasured } from './summary.js';
import { fmtNum, formatTable } from './table.js';
import { measuringWindows } from '../experiment/schema.js';

/** Fewer mechanism exits a second than this is no dominant one: a parked vCPU's stray exits (an idle one halts 7-10 times a second). */
const QUIET_PER_S = 1;

export interface Agreement<T> {
  a: T;
  b: T;
  agrees: boolean;
}

export interface CellAgreement {
  variant: string;
  verdict: Agreement<VariantStatus>;
  /** Per measuring window (sample, wait step) and vCPU with exit counts on both sides: the dominant mechanism exit (hlt, mwait, pause), or "quiet". */
  exits: (Agreement<string> & { step: string; entity: string })[];
  /** Per KVM statistic, step and entity on both sides: the mean per repetition. */
  stats: (Agreement<number> & { metric: string; step: string; entity: string })[];
  agrees: boolean;
}

export interface VerdictAgreement {
  experiment: string;
  a: { dir: string; measuredOn: string };
  b: { dir: string; measuredOn: string };
  cells: CellAgreement[];
  /** Variants only one side ran (skipped or absent on the other), with why. */
  notCommon: { variant: string; why: string }[];
  agrees: boolean;
}

const RAN: readonly VariantStatus[] = ['passed', 'failed', 'unchecked'];

/**
 * The exits that name a parking or idle mechanism. The others — timer MSR writes, EOIs, host
 * interrupts — depend on the host's vendor, HZ and APIC virtualization, which differ between any
 * two hosts (and between the mock's simulated Intel host and the nested host's emulated AMD one).
 */
const MECHANISM_EXITS: Record<string, string> = { hlt: 'hlt', mwait: 'mwait', monitor: 'mwait', pause: 'pause' };

/** step → entity → mechanism exit (MONITOR counted with MWAIT) → count, summed over repetitions; only the measuring windows when known. */
function exitCounts(rows: readonly MetricRow[], variant: string, windows: ReadonlySet<string> | undefined): Map<string, Map<string, Map<string, number>>> {
  const out = new Map<string, Map<string, Map<string, number>>>();
  for (const r of rows) {
    if (r.variant !== variant) continue;
    const reason = MECHANISM_EXITS[exitReasonOfMetric(r.metric) ?? ''];
    if (reason === undefined || (windows && !windows.has(r.step))) continue;
    const byEntity = out.get(r.step) ?? new Map<string, Map<string, number>>();
    const byReason = byEntity.get(r.entity) ?? new Map<string, number>();
    byReason.set(reason, (byReason.get(reason) ?? 0) + r.value);
    byEntity.set(r.entity, byReason);
    out.set(r.step, byEntity);
  }
  return out;
}

function dominant(reasons: ReadonlyMap<string, number>, seconds: number): string {
  let best = 'quiet';
  let max = 0;
  let total = 0;
  for (const [reason, n] of reasons) {
    total += n;
    if (n > max) [best, max] = [reason, n];
  }
  return total < QUIET_PER_S * seconds ? 'quiet' : best;
}

/** step → its wall time summed over the variant's repetitions (the exits are summed the same way). */
function stepSeconds(rows: readonly MetricRow[], variant: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of rows) if (r.variant === variant && r.metric === 'step.duration_s') out.set(r.step, (out.get(r.step) ?? 0) + r.value);
  return out;
}

/** metric\0step\0entity → mean over the repetitions that have it. */
function kvmStats(rows: readonly MetricRow[], variant: string): Map<string, number> {
  const sums = new Map<string, { sum: number; n: number }>();
  for (const r of rows) {
    if (r.variant !== variant || !r.metric.startsWith('kvm.')) continue;
    const key = `${r.metric}\0${r.step}\0${r.entity}`;
    const s = sums.get(key) ?? { sum: 0, n: 0 };
    sums.set(key, { sum: s.sum + r.value, n: s.n + 1 });
  }
  return new Map([...sums].map(([k, s]) => [k, s.sum / s.n]));
}

/** Both zero, or both non-zero and within a factor of ten. */
export function sameKind(a: number, b: number): boolean {
  if (a === 0 || b === 0) return a === b;
  if (Math.sign(a) !== Math.sign(b)) return false;
  return Math.abs(Math.log10(Math.abs(a) / Math.abs(b))) <= 1;
}

export function verdictAgreement(left: LoadedResults, right: LoadedResults): VerdictAgreement {
  if (left.summary.experiment !== right.summary.experiment) {
    throw new InputError(`--verdicts compares two runs of one experiment; ${left.dir} ran ${left.summary.experiment} and ${right.dir} ran ${right.summary.experiment}`);
  }
  // the windows the experiment measures in: its sample and wait steps
  const exp = left.experiment ?? right.experiment;
  const windows = exp && new Set(measuringWindows(exp.steps));
  const cells: CellAgreement[] = [];
  const notCommon: VerdictAgreement['notCommon'] = [];
  const rightById = new Map(right.summary.variants.map((v) => [v.id, v]));
  for (const va of left.summary.variants) {
    const vb = rightById.get(va.id);
    if (!vb || !RAN.includes(va.status) || !RAN.includes(vb.status)) {
      const side = (dir: string, v: typeof va | undefined) => (v === undefined ? `absent from ${dir}` : RAN.includes(v.status) ? undefined : `${v.status} in ${dir}${v.reason ? `: ${v.reason}` : ''}`);
      notCommon.push({ variant: va.id, why: [side(left.dir, va), side(right.dir, vb)].filter(Boolean).join('; ') });
      continue;
    }
    const secondsA = stepSeconds(left.rows, va.id);
    const secondsB = stepSeconds(right.rows, va.id);
    const ea = exitCounts(left.rows, va.id, windows);
    const eb = exitCounts(right.rows, va.id, windows);
    const exits: CellAgreement['exits'] = [];
    for (const [step, byEntity] of ea) {
      for (const [entity, reasons] of byEntity) {
        const other = eb.get(step)?.get(entity);
        if (!other) continue;
        const [a, b] = [dominant(reasons, secondsA.get(step) ?? 0), dominant(other, secondsB.get(step) ?? 0)];
        exits.push({ step, entity, a, b, agrees: a === b });
      }
    }
    const sa = kvmStats(left.rows, va.id);
    const sb = kvmStats(right.rows, va.id);
    const stats: CellAgreement['stats'] = [];
    for (const [key, a] of sa) {
      const b = sb.get(key);
      if (b === undefined) continue;
      const [metric, step, entity] = key.split('\0') as [string, string, string];
      stats.push({ metric, step, entity, a, b, agrees: sameKind(a, b) });
    }
    const verdict = { a: va.status, b: vb.status, agrees: va.status === vb.status };
    cells.push({ variant: va.id, verdict, exits, stats, agrees: verdict.agrees && exits.every((e) => e.agrees) && stats.every((s) => s.agrees) });
  }
  for (const vb of right.summary.variants) if (!left.summary.variants.some((v) => v.id === vb.id)) notCommon.push({ variant: vb.id, why: `absent from ${left.dir}` });
  return {
    experiment: left.summary.experiment,
    a: { dir: left.dir, measuredOn: whereMeasured(left.summary) },
    b: { dir: right.dir, measuredOn: whereMeasured(right.summary) },
    cells,
    notCommon,
    agrees: cells.length > 0 && cells.every((c) => c.agrees),
  };
}

export function formatAgreement(r: VerdictAgreement): string {
  const rows: string[][] = [];
  for (const c of r.cells) {
    rows.push([c.variant, 'verdict', c.verdict.a.toUpperCase(), c.verdict.b.toUpperCase(), c.verdict.agrees ? 'yes' : 'NO']);
    for (const e of c.exits) rows.push(['', `idle exits ${e.entity} @ ${e.step}`, e.a, e.b, e.agrees ? 'yes' : 'NO']);
    for (const s of c.stats) rows.push(['', `${s.metric} ${s.entity} @ ${s.step}`, fmtNum(s.a), fmtNum(s.b), s.agrees ? 'yes' : 'NO']);
  }
  const out = [
    `${r.experiment}: A = ${r.a.dir} (${r.a.measuredOn.split(':')[0]}), B = ${r.b.dir} (${r.b.measuredOn.split(':')[0]})`,
    '',
    formatTable(['cell', 'what', 'A', 'B', 'agree'], rows),
    '',
    ...r.notCommon.map((n) => `not compared: ${n.variant}: ${n.why}`),
    r.cells.length === 0
      ? 'no cell ran in both: nothing to compare'
      : `${r.cells.filter((c) => c.agrees).length} of ${r.cells.length} common cells agree (verdict; per vCPU and measuring window the most frequent of the exits that name a mechanism — HLT, MWAIT with MONITOR, PAUSE — or "quiet" under ${QUIET_PER_S} a second; KVM statistics zero or not, and within a factor of ten)`,
  ];
  return `${out.join('\n')}\n`;
}
