// A run made of parts — one per host-axis label, as --on nested runs it, or the shards of run
// --shard I/N — merged into one results directory equals the same run done at once: the same
// variants, verdicts and metric rows.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { kvmlab, root, scratch } from './kvmlab-cli.js';
import { mergeParts } from '../../src/run/merge.js';
import { loadResults } from '../../src/report/load.js';
import { ranOnLines, variantNotes } from '../../src/report/summary.js';

const tmp = scratch('merge');

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
    const { summary } = await mergeParts(out, [join(out, 'hosts', 'sim'), join(out, 'hosts', 'any')]);
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
    await expect(mergeParts(join(tmp, 'twice'), [join(out, 'hosts', 'any'), join(out, 'hosts', 'any')])).rejects.toThrow(/cell host=any repetition 1 is in both /);
  });

  it('two shards of a run merged (kvmlab merge) equal the run done at once: variant ids, verdicts, rows', async () => {
    const exp = 'experiments/offline-vcpu-idle.yaml';
    const whole = join(tmp, 'shard-whole');
    const shard = (i: number) => join(tmp, `shard-${i}`);
    const runs = await Promise.all([
      kvmlab('run', exp, '--backend', 'mock', '--repeat', '3', '-q', '--out', whole),
      kvmlab('run', exp, '--backend', 'mock', '--repeat', '3', '-q', '--shard', '1/2', '--out', shard(1)),
      kvmlab('run', exp, '--backend', 'mock', '--repeat', '3', '-q', '--shard', '2/2', '--out', shard(2)),
    ]);
    for (const r of runs) expect(r.exitCode, r.stderr).toBe(0);
    // each shard ran every other cell of the interleaved schedule, and says which
    const s1 = (await loadResults(shard(1))).summary;
    expect(s1.shard).toMatchObject({ index: 1, count: 2, repetitions: 3 });
    expect(s1.shard!.cells.slice(0, 3)).toEqual([{ variant: 'disable_exits=none', repetition: 1 }, { variant: 'disable_exits=mwait', repetition: 1 }, { variant: 'disable_exits=none', repetition: 2 }]);
    const merged = join(tmp, 'shard-merged');
    const m = await kvmlab('merge', shard(2), shard(1), '-o', merged);
    expect(m.exitCode, m.stderr).toBe(0);
    const a = await loadResults(whole);
    const b = await loadResults(merged);
    const verdicts = (r: typeof a) => r.summary.variants.map((v) => [v.id, v.status, v.reason ?? '', v.repetitions.map((x) => x.repetition), v.expectations.map((e) => [e.claim, e.passed, e.perRepetition.length])]);
    expect(verdicts(b)).toEqual(verdicts(a));
    expect(b.summary.shard).toBeUndefined();
    const key = (r: { variant: string; repetition: number; step: string; entity: string; metric: string }) => `${r.variant} ${r.repetition} ${r.step} ${r.entity} ${r.metric}`;
    expect(b.rows.map(key).sort()).toEqual(a.rows.map(key).sort());
    expect(b.reps.every((r) => r.steps.length > 0)).toBe(true);
    // a shard missing is said; a shard given twice is refused
    const one = await kvmlab('merge', shard(1), '-o', join(tmp, 'shard-one'));
    expect(one.stderr + one.stdout).toMatch(/shard 2 of 2 not merged: its cells did not run here/);
    const twice = await kvmlab('merge', shard(1), shard(1), '-o', join(tmp, 'shard-twice'));
    expect(twice.exitCode).toBe(2);
    expect(twice.stderr).toMatch(/are both shard 1\/2: their cells overlap/);
    expect((await kvmlab('run', exp, '--backend', 'mock', '--shard', '3/2')).stderr).toMatch(/--shard 3\/2: write I\/N with 1 <= I <= N/);
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
