// Every collector on the mock backend through the CLI: the rows land in metrics.csv, the HLT
// difference between intercepted and passed-through HLT comes from the model's rules, and no tracefs
// instance is left on the simulated host (its stop() removed it; the mock refuses global writes).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCsv, type MetricRow } from '../../src/model/metrics.js';

const root = new URL('../../', import.meta.url).pathname;
const cli = join(root, 'dist/cli.js');
const out = mkdtempSync(join(tmpdir(), 'kvmlab-mock-collectors-'));
let rows: MetricRow[] = [];
let summary: { variants: { id: string; status: string; repetitions: { collectors: Record<string, string> }[] }[] };

beforeAll(async () => {
  if (!existsSync(cli)) throw new Error('dist/cli.js is missing: run `npm run build` first (npm test does)');
  await promisify(execFile)(process.execPath, [cli, 'run', join(root, 'test/mock/fixtures/collectors.yaml'), '--backend', 'mock', '--out', out, '-q'], { timeout: 90_000 });
  rows = parseCsv(readFileSync(join(out, 'metrics.csv'), 'utf8')).rows;
  summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
}, 120_000);

afterAll(() => rmSync(out, { recursive: true, force: true }));

const pick = (variant: string, metric: string, entity?: string, step = 'idle') =>
  rows.filter((r) => r.variant === `disable_exits=${variant}` && r.metric === metric && r.step === step && (entity === undefined || r.entity === entity));
const one = (variant: string, metric: string, entity: string, step = 'idle') => {
  const r = pick(variant, metric, entity, step);
  expect(r, `${variant} ${metric} ${entity}`).toHaveLength(1);
  return r[0]!.value;
};

describe('collectors on the mock backend', () => {
  it('runs both variants, perf honestly not collected', () => {
    expect(summary.variants.map((v) => v.status)).toEqual(['passed', 'passed']);
    const c = summary.variants[0]!.repetitions[0]!.collectors;
    expect(c).toMatchObject({ tracefs: 'collected', 'kvm-stats': 'collected', interrupts: 'collected', 'vcpu-cpu': 'collected' });
    expect(c.perf).toMatch(/not collected: perf is not installed on this host/); // the simulated host has no perf
  });

  it('tracefs: HLT exits of an idle vCPU only when HLT is intercepted', () => {
    for (const v of ['vcpu0', 'vcpu1']) {
      const intercepted = one('none', 'trace.exits.hlt', v);
      const passed = one('hlt', 'trace.exits.hlt', v);
      expect(intercepted).toBeGreaterThan(10); // ~10 wakeups/s over 1.5 s
      expect(passed).toBe(0);
      expect(one('none', 'trace.vcpu_wakeups', v)).toBeGreaterThan(10);
      expect(one('hlt', 'trace.vcpu_wakeups', v)).toBe(0);
    }
  });

  it('tracefs: context switches on the pinned pCPUs, rcuc wakeups on nohz_full, loss reported', () => {
    expect(one('none', 'trace.sched_switch', 'pcpu2')).toBeGreaterThan(20); // block + wake per halt
    expect(one('hlt', 'trace.sched_switch', 'pcpu2')).toBeLessThan(one('none', 'trace.sched_switch', 'pcpu2'));
    expect(pick('none', 'trace.sched_switch', 'pcpu0')).toHaveLength(0); // not pinned: no per-pCPU row
    // HLT passed through: the vCPU never blocks, and on its nohz_full pCPU the tick is off but for
    // a grace period that waits on it (one in 2 s): that tick wakes rcuc/N (use_softirq=0), which
    // preempts the vCPU thread
    // (2.5 s of both steps on two pCPUs: 2.5 such ticks)
    const both = (metric: string) => ['idle', 'idle2'].flatMap((step) => ['pcpu2', 'pcpu3'].map((p) => one('hlt', metric, p, step))).reduce((a, b) => a + b, 0);
    const rcuc = both('trace.rcuc_wakeups');
    expect(rcuc).toBeGreaterThanOrEqual(2);
    expect(rcuc).toBeLessThanOrEqual(4);
    expect(both('trace.rcuc_preemptions')).toBe(rcuc);
    expect(one('hlt', 'trace.preemptions', 'vcpu0')).toBeGreaterThanOrEqual(one('hlt', 'trace.rcuc_wakeups', 'pcpu2'));
    expect(one('none', 'trace.events_lost', 'all')).toBe(0);
    expect(pick('none', 'trace.events_lost', undefined).length).toBe(9); // 8 pCPUs + all
    expect(one('none', 'trace.switches_out', 'emulator')).toBeGreaterThan(0);
    // both steps are attributed
    expect(one('none', 'trace.exits', 'vcpu0', 'idle2')).toBeGreaterThan(5);
  });

  it('kvm-stats: halt statistics per vCPU follow the exit policy', () => {
    expect(one('none', 'kvm.halt_exits', 'vcpu1')).toBeGreaterThan(10);
    expect(one('hlt', 'kvm.halt_exits', 'vcpu1')).toBe(0);
    expect(one('none', 'kvm.halt_wakeup', 'vcpu0')).toBeGreaterThan(10);
    // KVM's adaptive polling: wakeups 100 ms apart, far beyond halt_poll_ns (200 µs), shrink the window
    // to nothing; real KVM in the nested host polled 4 times in 100 halts at halt_poll_ns 400000
    expect(one('none', 'kvm.halt_attempted_poll', 'vcpu0')).toBe(0);
    expect(pick('none', 'kvm.halt_wait_ns', 'vcpu0')[0]?.unit).toBe('ns');
  });

  it('interrupts: posted-interrupt wakeups only where a vCPU blocks', () => {
    expect(one('none', 'irq.piw', 'pcpu2')).toBeGreaterThan(2);
    expect(one('hlt', 'irq.piw', 'pcpu2')).toBe(0);
    expect(one('none', 'irq.piw', 'pcpu5')).toBe(0);
    expect(one('hlt', 'irq.loc', 'pcpu0')).toBeGreaterThan(0);
    expect(one('none', 'cpu.busy_pct', 'pcpu2') + one('none', 'cpu.idle_pct', 'pcpu2')).toBeCloseTo(100, 3); // each written to metrics.csv with 6 significant digits
  });

  it('keeps the raw trace and the step windows', () => {
    const dir = join(out, 'variants', 'disable_exits=none', 'rep-1', 'tracefs');
    const meta = JSON.parse(readFileSync(join(dir, 'tracefs.json'), 'utf8'));
    expect(meta.windows.map((w: { step: string; source: string }) => [w.step, w.source])).toEqual([['idle', 'markers'], ['idle2', 'markers']]);
    expect(readFileSync(join(dir, 'trace-cpu0.txt'), 'utf8')).toContain('tracing_mark_write: kvmlab step=idle phase=start');
    expect(readFileSync(join(dir, 'trace-cpu2.txt'), 'utf8')).toMatch(/kvm_exit: vcpu 0 reason HLT/);
  });
});

describe('kvm-exits on the mock backend: the shipped storm experiment', () => {
  const stormOut = mkdtempSync(join(tmpdir(), 'kvmlab-mock-storm-'));
  afterAll(() => rmSync(stormOut, { recursive: true, force: true }));

  it('counts the intercepted-MWAIT storm in the simulated kernel, agreeing with KVM\'s own count', async () => {
    await promisify(execFile)(process.execPath, [cli, 'run', join(root, 'experiments/mwait-exit-storm.yaml'), '--backend', 'mock', '--out', stormOut, '--force', '-q'], { timeout: 90_000 });
    const s = JSON.parse(readFileSync(join(stormOut, 'summary.json'), 'utf8'));
    expect(s.simulated).toBe(true);
    for (const v of s.variants) {
      expect(v.status, v.id).toBe('passed');
      expect(v.repetitions[0].collectors['kvm-exits']).toBe('collected');
    }
    const r = parseCsv(readFileSync(join(stormOut, 'metrics.csv'), 'utf8')).rows;
    const at = (variant: string, metric: string, entity: string) => r.find((x) => x.variant === variant && x.metric === metric && x.entity === entity && x.step === 'storm')?.value;
    const storm = at('mwait=intercepted', 'exits.mwait', 'vcpu1')!;
    expect(storm).toBeGreaterThan(100 * at('mwait=passed', 'exits.total', 'vcpu1')!);
    expect(Math.abs(at('mwait=intercepted', 'exits.diff_pct', 'vcpu1')!)).toBeLessThanOrEqual(0.1);
    expect(readFileSync(join(stormOut, 'variants', 'mwait=intercepted', 'rep-1', 'kvm-exits', 'hist-storm.txt'), 'utf8')).toMatch(/^Totals:\n {4}Hits: \d+/m);
    // the trigger's own runs: every exit of the host's VMs (this one's alone here), and what the verdict says of them
    const vcpus = [...new Set(r.filter((x) => x.metric === 'exits.total').map((x) => x.entity))];
    const traced = at('mwait=intercepted', 'exits.traced', 'all')!;
    expect(traced).toBe(vcpus.reduce((n, e) => n + at('mwait=intercepted', 'exits.total', e)!, 0));
    const v = s.variants.find((x: { id: string }) => x.id === 'mwait=intercepted');
    expect(v.observer.tracedStep).toBe('storm');
    expect(v.observer.tracedPerS).toBeCloseTo(traced / at('mwait=intercepted', 'step.duration_s', 'runner')!, 6);
    const verdict = readFileSync(join(stormOut, 'summary.md'), 'utf8');
    expect(verdict).toMatch(/kvm-exits' trigger ran [\d,]+ times a second @ storm at most, in the kernel on the exiting vCPUs' threads/);
  }, 120_000);
});

describe('what watching cost', () => {
  it('every step of every repetition says what kvmlab itself used, and the variant sums it up', () => {
    const steps = [...new Set(rows.filter((r) => r.metric === 'step.duration_s').map((r) => `${r.variant}/${r.repetition}/${r.step}`))];
    const cost = rows.filter((r) => r.metric === 'observer.cpu_pct' && r.entity === 'kvmlab');
    expect(cost.map((r) => `${r.variant}/${r.repetition}/${r.step}`).sort()).toEqual(steps.sort());
    for (const r of cost) expect(r.value).toBeGreaterThanOrEqual(0);
    for (const v of summary.variants as unknown as { observer?: { medianCpuPct: number; maxCpuPct: number } }[]) {
      expect(v.observer!.maxCpuPct).toBeGreaterThanOrEqual(v.observer!.medianCpuPct);
    }
  });
});
