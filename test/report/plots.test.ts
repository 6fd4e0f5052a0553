// What the plots draw, read from the vega-lite specs and the SVG vega renders: the claim's threshold,
// variants in matrix order, variant ids never cut, every repetition, and threads that overlap in
// value each on their own row.
import { describe, expect, it } from 'vitest';
import type { LoadedResults, RepetitionData } from '../../src/report/load.js';
import type { VcpuSample } from '../../src/results/records.js';
import { cpuTimeSpec, exitsSpec, idLines, metricsSpec, type MetricPoint, type Threshold } from '../../src/report/plots.js';
import { renderSvg, svgRenderer } from '../../src/report/svg.js';
import { summaryFixture } from './summary-fixture.js';

// ids that sort the other way round alphabetically, and are longer than any default label limit
const IDS = ['disable_exits=none,guest_idle=default,halt_poll_ns=200000', 'disable_exits=hlt+mwait+pause,guest_idle=default,halt_poll_ns=200000', 'disable_exits=cpu-pm,guest_idle=poll,halt_poll_ns=0'];
const SELECTION = { metric: 'vcpu.cpu_pct', agg: 'median' as const, entity: ['vcpu1'] };
const TITLE = 'median vcpu.cpu_pct [vcpu1]';
const REPS = 5;
const points: MetricPoint[] = IDS.flatMap((variant, i) => Array.from({ length: REPS }, (_, r) => ({ selection: TITLE, variant, repetition: r + 1, value: i === 0 ? 1 : 100 })));
const limits: Threshold[] = [
  { selection: TITLE, variant: IDS[0]!, label: '≤ 5', value: 5 },
  { selection: TITLE, variant: IDS[1]!, label: 'in [90, 100]', lo: 90, hi: 100 },
  { selection: TITLE, variant: IDS[2]!, label: '≥ 95', value: 95 },
];

type Layer = { data: { values: Record<string, unknown>[] }; mark: { type: string }; encoding: Record<string, { field?: string; scale?: { domain?: unknown[] }; sort?: unknown }> };
const layersOf = (spec: unknown) => (spec as { vconcat: { layer: Layer[] }[] }).vconcat[0]!.layer;

describe('expectations plot', () => {
  const spec = metricsSpec(points, [SELECTION], limits, IDS);
  const layers = layersOf(spec);

  it('draws each claim: a rule at its value, a band for between, labelled with the comparison', async () => {
    const ticks = layers.find((l) => l.mark.type === 'tick' && l.encoding.x?.field === 'value' && l.data.values.some((d) => 'label' in d))!;
    expect(ticks.data.values).toEqual([expect.objectContaining({ variant: IDS[0], value: 5 }), expect.objectContaining({ variant: IDS[2], value: 95 })]);
    const band = layers.find((l) => l.mark.type === 'rect')!;
    expect(band.encoding.x?.field).toBe('lo');
    expect(band.encoding.x2?.field).toBe('hi');
    expect(band.data.values).toEqual([expect.objectContaining({ variant: IDS[1], lo: 90, hi: 100 })]);
    const svg = await renderSvg(spec);
    for (const label of ['≤ 5', 'in [90, 100]', '≥ 95']) expect(svg).toContain(`>${label}<`);
  });

  it('orders the variants as summary.json does, not alphabetically', () => {
    for (const l of layers) expect(l.encoding.y?.scale?.domain).toEqual(IDS);
  });

  it('writes every variant id in full, one matrix axis a line', async () => {
    const svg = await renderSvg(spec);
    for (const id of IDS) for (const line of idLines(id)) expect(svg).toContain(`>${line}<`);
    expect(svg).not.toContain('…');
  });

  it('draws a point for every repetition of every variant', async () => {
    const svg = await renderSvg(spec);
    expect(svg.match(/aria-roledescription="point"/g)).toHaveLength(IDS.length * REPS);
    for (const id of IDS) expect(svg.match(new RegExp(`variant: ${id.replace(/[+]/g, '\\+')}; repetition: \\d`, 'g'))).toHaveLength(REPS);
  });
});

describe('exits plot', () => {
  it('colours and offsets the variants in the order given, with full ids in the legend', async () => {
    const bars = IDS.flatMap((variant) => ['trace.exits.hlt', 'trace.exits.mwait'].map((reason) => ({ variant, reason, median: 10, min: 8, max: 12 })));
    const order = [...IDS].reverse();
    const spec = exitsSpec(bars, order);
    for (const l of (spec as unknown as { layer: Layer[] }).layer) expect(l.encoding.yOffset?.sort).toEqual(order);
    const svg = await renderSvg(spec);
    for (const id of IDS) for (const line of idLines(id)) expect(svg).toContain(`>${line}<`);
  });
});

describe('host CPU % over time', () => {
  /** Samples of threads that each run `pct` % of a host CPU, every 100 ms for 1 s. */
  const samples = (pct: Record<string, number>): VcpuSample[] =>
    Object.entries(pct).flatMap(([entity, p], tid) => Array.from({ length: 11 }, (_, i) => ({ t: 1000 + i / 10, entity, tid: 100 + tid, runNs: (i / 10) * 1e9 * (p / 100), waitNs: 0, slices: i, guestNs: 0, lastCpu: 2 })));
  const rep = (variant: string, repetition: number, pct: Record<string, number>): RepetitionData => ({
    variant,
    repetition,
    status: 'completed',
    dir: '',
    steps: [{ step: 'idle', kind: 'sample', start: 1000, end: 1001 }],
    samples: samples(pct),
    launch: undefined,
    guest: [],
    qemuVersion: undefined,
    traceFiles: [],
  });
  const ids = ['b-second', 'a-first'];
  const r = {
    summary: summaryFixture(ids.map((id) => ({ id, repetitions: 3 }))),
    reps: ids.flatMap((id) => [1, 2, 3].map((n) => rep(id, n, { vcpu0: 100, vcpu1: 100, emulator: 2 }))),
  } as unknown as LoadedResults;

  it('gives each thread its own row, so two vCPUs both at 100 % are both seen, and draws every repetition', async () => {
    const spec = cpuTimeSpec(r)! as unknown as { vconcat: { title: { text: string[] }; vconcat: { layer?: Layer[] }[] }[] };
    expect(spec.vconcat.map((g) => g.title.text[0])).toEqual(ids);
    for (const group of spec.vconcat) {
      const rows = group.vconcat.filter((row) => row.layer);
      const lines = rows.map((row) => row.layer!.find((l) => l.mark.type === 'line')!);
      expect(lines.map((l) => [...new Set(l.data.values.map((p) => p.entity))])).toEqual([['vcpu0'], ['vcpu1'], ['emulator']]);
      for (const l of lines) {
        expect(new Set(l.data.values.map((p) => p.repetition))).toEqual(new Set([1, 2, 3]));
        expect(l.encoding.color?.field).toBe('repetition');
      }
      expect(group.title.text).toContain('3 repetitions');
    }
    const svg = await renderSvg(spec as never);
    expect(svg.match(/aria-roledescription="line mark"/g)).toHaveLength(ids.length * 3 * 3);
  });
});

describe('a report made again', () => {
  it('takes an SVG drawn from the same spec instead of drawing it, and draws a spec that changed', async () => {
    const spec = metricsSpec(points, [SELECTION], limits, IDS);
    const first = svgRenderer(false);
    const drawn = await first.render(spec);
    await first.close();
    expect(drawn).toMatch(/^<svg[^>]*><!-- kvmlab: drawn from spec sha256:[0-9a-f]{64} -->/);
    // a stand-in with the same key: what comes back is it, so nothing was drawn
    const kept = drawn.replace('class="marks"', 'class="marks kept"');
    const again = svgRenderer(false, [kept]);
    expect(await again.render(spec)).toBe(kept);
    const changed = metricsSpec(points.map((p) => ({ ...p, value: p.value + 1 })), [SELECTION], limits, IDS);
    const redrawn = await again.render(changed);
    await again.close();
    expect(redrawn).not.toContain('marks kept');
    expect(redrawn.match(/sha256:([0-9a-f]{64})/)?.[1]).not.toBe(drawn.match(/sha256:([0-9a-f]{64})/)?.[1]);
  });
});
