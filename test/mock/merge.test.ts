// A run made of parts (one per host-axis label, as --on nested runs it) merged into one results
// directory equals the same run done at once: the same variants, verdicts and metric rows.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { mergeParts } from '../../src/run/merge.js';
import { loadResults } from '../../src/report/load.js';
import { ranOnLines, variantNotes } from '../../src/report/summary.js';

const root = new URL('../..', import.meta.url).pathname;
const cli = join(root, 'dist/cli.js');
const tmp = mkdtempSync(join(tmpdir(), 'kvmlab-merge-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const kvmlab = (...args: string[]) => execa('node', [cli, ...args], { reject: false, cwd: root, stdin: 'ignore' });

// Two host labels the simulated host (kernel 6.12.0-kvmlab-sim) both is: each runs on the mock.
const file = join(tmp, 'hosts.yaml');
writeFileSync(
  file,
  readFileSync(join(root, 'experiments/smoke-cpu-hotplug.yaml'), 'utf8').replace(/^collect:/m, 'matrix:\n  host:\n    any: {}\n    sim: { kernel: "debian:6.12" }\ncollect:'),
);

describe('merging the parts of a host-axis run', () => {
  it('gives the variants, verdicts and rows of the run done at once, each variant pointing at the part that ran it', async () => {
    const whole = join(tmp, 'whole');
    const out = join(tmp, 'merged');
    const runs = await Promise.all([
      kvmlab('run', file, '--backend', 'mock', '-q', '--out', whole),
      kvmlab('run', file, '--backend', 'mock', '-q', '--where', 'host=any', '--out', join(out, 'hosts', 'any')),
      kvmlab('run', file, '--backend', 'mock', '-q', '--where', 'host=sim', '--out', join(out, 'hosts', 'sim')),
    ]);
    for (const r of runs) expect(r.exitCode, r.stderr).toBe(0);
    // the parts in the other order: the merged run is in matrix order all the same
    const summary = await mergeParts(out, [join(out, 'hosts', 'sim'), join(out, 'hosts', 'any')]);
    const a = await loadResults(whole);
    const b = await loadResults(out);
    expect(summary.variants.map((v) => v.id)).toEqual(['host=any', 'host=sim']);
    expect(b.summary.variants.map((v) => [v.id, v.status, v.expectations.map((e) => e.passed)])).toEqual(a.summary.variants.map((v) => [v.id, v.status, v.expectations.map((e) => e.passed)]));
    const key = (r: { variant: string; step: string; entity: string; metric: string }) => `${r.variant} ${r.step} ${r.entity} ${r.metric}`;
    expect(b.rows.map(key).sort()).toEqual(a.rows.map(key).sort());
    // each repetition's files are read through the merged directory
    expect(b.reps.map((r) => [r.variant, r.steps.length > 0, r.samples.length > 0])).toEqual([
      ['host=any', true, true],
      ['host=sim', true, true],
    ]);
    // one host: nothing to say per variant about where it ran
    expect(b.summary.variants.every((v) => v.ranOn?.kernel === '6.12.0-kvmlab-sim' && /simulated/.test(v.ranOn.qemu ?? ''))).toBe(true);
    expect(ranOnLines(b.summary).size).toBe(0);
    await expect(mergeParts(join(tmp, 'twice'), [join(out, 'hosts', 'any'), join(out, 'hosts', 'any')])).rejects.toThrow(/variant host=any is in both/);
  });

  it('names the host of each variant in the verdict table where the hosts differ', () => {
    const v = (id: string, kernel: string, cmdline: string) => ({ id, labels: {}, knobs: { disable_exits: [], guest_idle: 'default', guest_haltpoll: false }, status: 'passed', repetitions: [], expectations: [], ranOn: { kernel, cmdline, qemu: '7.2.22' } }) as never;
    const lines = ranOnLines({ variants: [v('host=before', '6.1.0-57-amd64', 'quiet nohz_full=2-3'), v('host=after', '6.12.117+deb13-amd64', 'quiet nohz_full=2-3 rcutree.nocb_patience_delay=1000')] } as never);
    expect([...lines]).toEqual([
      ['host=before', 'ran on kernel 6.1.0-57-amd64, no extra boot parameters'],
      ['host=after', 'ran on kernel 6.12.117+deb13-amd64, booted with rcutree.nocb_patience_delay=1000'],
    ]);
    // index.html and the bundle say it under the variant too
    const s = { variants: [v('host=before', '6.1.0-57-amd64', 'quiet'), v('host=after', '6.12.117+deb13-amd64', 'quiet')], simulated: false } as never;
    expect(variantNotes(s, (s as { variants: never[] }).variants[1]!)).toEqual(['ran on kernel 6.12.117+deb13-amd64']);
  });
});
