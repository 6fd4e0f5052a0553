// compare --verdicts: two runs of one experiment held against each other cell by cell. Two mock
// runs agree; a run whose verdict, dominant idle exit or KVM statistic differs in kind does not,
// and the table names the cell and what differs.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { kvmlab, scratch } from './kvmlab-cli.js';
import { sameKind } from '../../src/report/agreement.js';

const tmp = scratch('agree');

const a = join(tmp, 'a');
const b = join(tmp, 'b');
beforeAll(async () => {
  for (const out of [a, b]) {
    const r = await kvmlab('run', 'experiments/offline-vcpu-idle.yaml', '--backend', 'mock', '--repeat', '1', '--out', out);
    expect(r.exitCode, r.stderr).toBe(0);
  }
});

describe('compare --verdicts', () => {
  it('two runs of the mock agree, cell by cell, exit 0', async () => {
    const r = await kvmlab('compare', a, b, '--verdicts');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/disable_exits=none\s+verdict\s+PASSED\s+PASSED\s+yes/);
    expect(r.stdout).toMatch(/idle exits vcpu0 @ parked\s+hlt\s+hlt\s+yes/);
    expect(r.stdout).toMatch(/4 of 4 common cells agree/);
    const j = JSON.parse((await kvmlab('compare', a, b, '--verdicts', '--json')).stdout);
    expect(j).toMatchObject({ experiment: 'offline-vcpu-idle', agrees: true });
    expect(j.cells).toHaveLength(4);
  });

  it('a cell whose verdict or dominant exit differs does not agree, exit 1', async () => {
    const c = join(tmp, 'c');
    cpSync(b, c, { recursive: true });
    // the passed-through MWAIT cell turned into a storm on one side
    const csv = readFileSync(join(c, 'metrics.csv'), 'utf8').replace(/^(disable_exits=mwait,1,parked,vcpu1,exits\.mwait),0,/m, '$1,150000,');
    writeFileSync(join(c, 'metrics.csv'), csv);
    const summary = JSON.parse(readFileSync(join(c, 'summary.json'), 'utf8'));
    summary.variants.find((v: { id: string }) => v.id === 'disable_exits=none').status = 'failed';
    writeFileSync(join(c, 'summary.json'), JSON.stringify(summary));
    const r = await kvmlab('compare', a, c, '--verdicts');
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/disable_exits=none\s+verdict\s+PASSED\s+FAILED\s+NO/);
    expect(r.stdout).toMatch(/idle exits vcpu1 @ parked\s+quiet\s+mwait\s+NO/);
    expect(r.stdout).toMatch(/2 of 4 common cells agree/);
  });

  it('--mock-host nested-l1 simulates the nested host: an AMD TCG CPU whose leaf 5 lists no C1 sub-state, so the MWAIT cell idles in HLT', async () => {
    const out = join(tmp, 'l1');
    const r = await kvmlab('run', 'experiments/offline-vcpu-idle.yaml', '--backend', 'mock', '--mock-host', 'nested-l1', '--repeat', '1', '-q', '--out', out);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/measured on: simulated: .*modelled on the nested host.*AuthenticAMD/);
    const plan = JSON.parse((await kvmlab('plan', 'experiments/offline-vcpu-idle.yaml', '--backend', 'mock', '--mock-host', 'nested-l1', '--json')).stdout);
    expect(plan.variants.find((v: { id: string }) => v.id === 'disable_exits=mwait').mechanism).toMatchObject({ idle: 'hlt', parked: 'mwait', kvm: 'passed' });
    // against the default profile (an Intel server with C1 sub-states) the MWAIT cell's idle differs
    const diff = await kvmlab('compare', a, out, '--verdicts');
    expect(diff.exitCode).toBe(1);
    expect(diff.stdout).toMatch(/idle exits vcpu0 @ online-idle\s+quiet\s+hlt\s+NO/);
    const refused = await kvmlab('run', 'experiments/offline-vcpu-idle.yaml', '--backend', 'qemu', '--mock-host', 'nested-l1');
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(/--mock-host nested-l1: chooses the host the mock backend simulates; add --backend mock/);
  });

  it('KVM statistics agree in kind: both zero, or within a factor of ten', () => {
    expect(sameKind(0, 0)).toBe(true);
    expect(sameKind(0, 4)).toBe(false);
    expect(sameKind(1001, 4)).toBe(false);
    expect(sameKind(100, 900)).toBe(true);
  });

  it('needs two runs of one experiment', async () => {
    expect((await kvmlab('compare', a, '--verdicts')).exitCode).toBe(2);
  });
});
