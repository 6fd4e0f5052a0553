// One number formatter for every table: the verdict table and the key-metrics table show one value
// the same way, to the same significant digits.
import { describe, expect, it } from 'vitest';
import { keyMetricsRows } from '../../src/report/report.js';
import { verdictTable, whereMeasured } from '../../src/report/summary.js';
import type { Summary } from '../../src/results/summary.js';
import { fmtNum, fmtObserved } from '../../src/report/table.js';
import { summaryFixture } from './summary-fixture.js';

const VALUES = [100, 99.95, 99.996, 0.13449, 1234.5, 147847.3, -2.5, 0.000012345];
const SHOWN = ['100', '99.95', '100', '0.1345', '1235', '147847', '-2.5', '0.00001234'];

describe('numbers in tables', () => {
  it('writes integers in full and other numbers to 4 significant digits, never cutting the integer part', () => {
    expect(VALUES.map(fmtNum)).toEqual(SHOWN);
    expect(fmtNum(Number.NaN)).toBe('-');
    expect(fmtObserved(null)).toBe('no data');
  });

  it('shows a value the same in the verdict table and in the key metrics', () => {
    const summary = summaryFixture(VALUES.map((v, i) => ({ id: `v${i}`, observed: [v] })));
    const verdictRows = verdictTable(summary).split('\n').slice(2);
    const observed = verdictRows.map((line) => line.split(/\s{2,}/)[3]);
    const km = keyMetricsRows(VALUES.map((v, i) => ({ variant: `v${i}`, selection: { metric: 'vcpu.cpu_pct', agg: 'median' }, label: 'median vcpu.cpu_pct', values: [v] })));
    const medians = km.rows.map((r) => r[3]);
    expect(observed).toEqual(SHOWN);
    expect(medians).toEqual(SHOWN);
  });
});

describe('where a figure was measured', () => {
  const real = (host: Partial<Summary['host']>) => summaryFixture([{ id: 'a' }], { simulated: false, backend: 'qemu', host: { ...summaryFixture([]).host, cpuModel: 'Xeon', ...host } });

  it('says lab KVM only where the host shows no hypervisor, KVM in a VM where it does', () => {
    expect(whereMeasured(real({ hypervisor: false, kvmModule: 'kvm_intel' }))).toBe("lab KVM (bare metal): this host's /dev/kvm (kvm_intel), Xeon, kernel 6.12.0");
    expect(whereMeasured(real({ hypervisor: true, kvmModule: 'kvm_pvm' }))).toMatch(/^KVM in a VM: this host's \/dev\/kvm \(kvm_pvm\), on a machine that is itself a guest/);
    expect(whereMeasured(real({}))).toMatch(/^KVM on this host: .*whether it is bare metal was not recorded/);
    expect(whereMeasured(real({ hypervisor: false }))).not.toMatch(/in a VM/);
  });
});
