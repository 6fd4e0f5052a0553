// One results directory from the parts of a run that happened in several places — one L1 per
// host-axis label under --on nested, or the shards of `run --shard I/N` on N machines — as if it had
// run in one: summary.json with every variant in matrix order, metrics.csv with every row, the
// experiment as run, and variants/<id>/rep-N from the part that ran it. A variant whose repetitions
// came from several shards is judged again over all of them by the run's own judge (run/judge.ts).
// Parts inside the results directory are linked (each stays whole beside it); others are copied.
import { cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { InputError, errorMessage } from '../errors.js';
import { parseCsv, type MetricRow } from '../model/metrics.js';
import type { Summary, VariantResult } from '../results/summary.js';
import { repetitionDir, RESULTS } from '../results/layout.js';
import { expandMatrix } from '../experiment/matrix.js';
import type { Experiment } from '../experiment/schema.js';
import { judgeVariant } from './judge.js';
import { readSummary, writeResults } from './results.js';

interface Part {
  dir: string;
  summary: Summary;
  rows: MetricRow[];
  experimentText: string;
  experiment: Experiment;
}

const PARTS_FIX = 'give results directories of finished runs (or shards)';

async function readPart(dir: string): Promise<Part> {
  const read = (f: string) =>
    readFile(join(dir, f), 'utf8').catch((e: unknown) => {
      throw new InputError(`${join(dir, f)}: cannot read (${errorMessage(e)}); ${PARTS_FIX}`, [], { cause: e });
    });
  const summary = await readSummary(dir, PARTS_FIX);
  const { rows } = parseCsv(await read(RESULTS.metrics), { file: join(dir, RESULTS.metrics) });
  const expanded = JSON.parse(await read(RESULTS.expanded)) as { experiment: Experiment };
  return { dir, summary, rows, experimentText: await read(RESULTS.experiment), experiment: expanded.experiment };
}

/**
 * Shards of one run: one count and one repetition count, each index once; the ones absent, said in
 * words. The host-axis parts of one run under --on nested (`oneRun`) are of one shard, if any: the
 * merge is that shard.
 */
function shardsCheck(parts: readonly Part[], oneRun: boolean): { notices: string[]; shard?: Summary['shard'] } {
  const shards = parts.flatMap((p) => (p.summary.shard ? [{ dir: p.dir, ...p.summary.shard }] : []));
  if (shards.length === 0) return { notices: [] };
  if (oneRun) {
    const { index, count, repetitions } = shards[0]!;
    return { notices: [], shard: { index, count, repetitions, cells: shards.flatMap((s) => s.cells) } };
  }
  if (shards.length !== parts.length) throw new InputError(`${parts.find((p) => !p.summary.shard)!.dir} is not a shard (run --shard I/N) while ${shards[0]!.dir} is: merge the shards of one run`);
  const { count, repetitions } = shards[0]!;
  for (const s of shards) {
    if (s.count !== count || s.repetitions !== repetitions) throw new InputError(`${s.dir} is shard ${s.index}/${s.count} of ${s.repetitions} repetitions, ${shards[0]!.dir} ${shards[0]!.index}/${count} of ${repetitions}: not shards of one run`);
    const twin = shards.find((o) => o !== s && o.index === s.index);
    if (twin) throw new InputError(`${s.dir} and ${twin.dir} are both shard ${s.index}/${count}: their cells overlap`);
  }
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !shards.some((s) => s.index === i));
  return { notices: missing.length ? [`shard${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of ${count} not merged: ${missing.length > 1 ? 'their' : 'its'} cells did not run here`] : [] };
}

/**
 * Writes into `out` the run made of `parts` (results directories of one experiment file) and
 * returns its summary, with what a person should be warned of (shards missing). Refuses parts of different experiment files, and a cell (variant,
 * repetition) that two parts both ran. `oneRun`: the parts are the host-axis parts of one run
 * (--on nested), not shards to be made whole.
 */
export async function mergeParts(out: string, partDirs: readonly string[], opts: { oneRun?: boolean } = {}): Promise<{ summary: Summary; warnings: string[] }> {
  const parts = await Promise.all(partDirs.map(readPart));
  const first = parts[0];
  if (!first) throw new InputError('nothing to merge: no part finished');
  for (const p of parts) if (p.experimentText !== first.experimentText) throw new InputError(`${p.dir} ran a different experiment file than ${first.dir}: only parts of one run merge`);
  const shards = shardsCheck(parts, opts.oneRun ?? false);
  const matrix = expandMatrix(first.experiment);
  // every cell once, checked before anything is written
  for (const variant of matrix) {
    const ranIn = new Map<number, string>();
    for (const p of parts) {
      for (const r of p.summary.variants.find((v) => v.id === variant.id)?.repetitions ?? []) {
        const twin = ranIn.get(r.repetition);
        if (twin) throw new InputError(`cell ${variant.id} repetition ${r.repetition} is in both ${twin} and ${p.dir}: parts of one run hold different cells`);
        ranIn.set(r.repetition, p.dir);
      }
    }
  }
  await mkdir(join(out, RESULTS.variants), { recursive: true });
  const variants: VariantResult[] = [];
  for (const variant of matrix) {
    const held = parts.flatMap((p) => p.summary.variants.filter((v) => v.id === variant.id).map((v) => ({ p, v })));
    if (held.length === 0) continue;
    const reps: VariantResult['repetitions'] = [];
    for (const { p, v } of held) {
      for (const r of v.repetitions) {
        const to = repetitionDir(out, variant.id, r.repetition);
        await place(repetitionDir(p.dir, variant.id, r.repetition), to, out);
        reps.push({ ...r, dir: to });
      }
    }
    reps.sort((a, b) => a.repetition - b.repetition);
    const ran = held.filter(({ v }) => v.repetitions.length > 0);
    if (held.length === 1 || ran.length === 0) {
      // as its one part judged it (a variant skipped everywhere is skipped for the first one's reason)
      variants.push({ ...held[0]!.v, repetitions: reps });
      continue;
    }
    const merged: VariantResult = { id: variant.id, labels: variant.labels, knobs: variant.knobs, status: 'passed', repetitions: reps, expectations: [], ...(ran[0]!.v.ranOn ? { ranOn: ran[0]!.v.ranOn } : {}) };
    const planned = ran.find(({ v }) => v.mechanism)?.v.mechanism?.planned;
    judgeVariant(first.experiment, variant, merged, parts.flatMap((p) => p.rows.filter((r) => r.variant === variant.id)), planned);
    variants.push(merged);
  }
  const summaries = parts.map((p) => p.summary);
  const { shard: _shard, ...whole } = first.summary;
  void _shard;
  const summary: Summary = {
    ...whole,
    ...(shards.shard ? { shard: shards.shard } : {}),
    startedAt: summaries.map((s) => s.startedAt).sort()[0]!,
    finishedAt: summaries.map((s) => s.finishedAt).sort().at(-1)!,
    interrupted: summaries.some((s) => s.interrupted),
    ...(summaries.some((s) => s.strict) ? { strict: true } : {}),
    notices: [...new Set([...summaries.flatMap((s) => s.notices), ...shards.notices])],
    variants,
  };
  const ids = new Set(variants.map((v) => v.id));
  await writeFile(join(out, RESULTS.experiment), first.experimentText);
  await writeFile(join(out, RESULTS.expanded), `${JSON.stringify({ experiment: first.experiment, variants: matrix.filter((v) => ids.has(v.id)) }, null, 2)}\n`);
  await writeResults(out, summary, parts.flatMap((p) => p.rows));
  return { summary, warnings: shards.notices };
}

/** A repetition's files at `to`: a link into a part inside `out`, else a copy. */
async function place(from: string, to: string, out: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  if (!relative(resolve(out), resolve(from)).startsWith('..')) await symlink(relative(dirname(to), from), to);
  else await cp(from, to, { recursive: true });
}
