// One results directory from the parts of a run that happened in several places — one L1 per
// host-axis label under --on nested — as if it had run in one: summary.json with every variant in
// matrix order (each with the host it ran on), metrics.csv with every row, the experiment as run,
// and variants/<id> pointing into the part that ran it. Each part stays whole beside it (its own
// summary, metrics, L1 console), so nothing a part collected is rewritten or lost.
import { cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { InputError, errorMessage } from '../errors.js';
import { parseCsv, type MetricRow } from '../model/metrics.js';
import { SummarySchema, variantDir, type Summary, type VariantResult } from '../model/summary.js';
import { expandMatrix } from '../spec/matrix.js';
import type { Experiment } from '../spec/schema.js';
import { writeResults } from './results.js';

interface Part {
  dir: string;
  summary: Summary;
  rows: MetricRow[];
  experimentText: string;
  experiment: Experiment;
}

async function readPart(dir: string): Promise<Part> {
  const read = (f: string) =>
    readFile(join(dir, f), 'utf8').catch((e: unknown) => {
      throw new InputError(`${join(dir, f)}: cannot read (${errorMessage(e)}); the part did not finish`);
    });
  const summary = SummarySchema.parse(JSON.parse(await read('summary.json')));
  const { rows } = parseCsv(await read('metrics.csv'), { file: join(dir, 'metrics.csv') });
  const expanded = JSON.parse(await read('experiment.expanded.json')) as { experiment: Experiment };
  return { dir, summary, rows, experimentText: await read('experiment.yaml'), experiment: expanded.experiment };
}

/**
 * Writes into `out` the run made of `parts` (results directories of one experiment file, each
 * holding different variants), and returns its summary. Parts inside `out` are linked, others
 * copied. Refuses parts of different experiment files or with a variant in common.
 */
export async function mergeParts(out: string, partDirs: readonly string[]): Promise<Summary> {
  const parts = await Promise.all(partDirs.map(readPart));
  const first = parts[0];
  if (!first) throw new InputError('nothing to merge: no part finished');
  for (const p of parts) if (p.experimentText !== first.experimentText) throw new InputError(`${p.dir} ran a different experiment file than ${first.dir}: only parts of one run merge`);
  const order = expandMatrix(first.experiment).map((v) => v.id);
  const owner = new Map<string, Part>();
  for (const p of parts) {
    for (const v of p.summary.variants) {
      const held = owner.get(v.id);
      if (held) throw new InputError(`variant ${v.id} is in both ${held.dir} and ${p.dir}: parts of one run hold different variants`);
      owner.set(v.id, p);
    }
  }
  await mkdir(join(out, 'variants'), { recursive: true });
  const variants: VariantResult[] = [];
  for (const id of order) {
    const p = owner.get(id);
    const v = p?.summary.variants.find((x) => x.id === id);
    if (!p || !v) continue;
    const from = join(p.dir, 'variants', variantDir(id));
    const to = join(out, 'variants', variantDir(id));
    if (v.repetitions.length) {
      if (!relative(resolve(out), resolve(p.dir)).startsWith('..')) await symlink(relative(dirname(to), from), to);
      else await cp(from, to, { recursive: true });
    }
    variants.push({ ...v, repetitions: v.repetitions.map((r) => ({ ...r, dir: join(to, `rep-${r.repetition}`) })) });
  }
  const summaries = parts.map((p) => p.summary);
  const summary: Summary = {
    ...first.summary,
    startedAt: summaries.map((s) => s.startedAt).sort()[0]!,
    finishedAt: summaries.map((s) => s.finishedAt).sort().at(-1)!,
    interrupted: summaries.some((s) => s.interrupted),
    ...(summaries.some((s) => s.strict) ? { strict: true } : {}),
    notices: [...new Set(summaries.flatMap((s) => s.notices))],
    variants,
  };
  await writeFile(join(out, 'experiment.yaml'), first.experimentText);
  await writeFile(join(out, 'experiment.expanded.json'), `${JSON.stringify({ experiment: first.experiment, variants: expandMatrix(first.experiment).filter((v) => owner.has(v.id)) }, null, 2)}\n`);
  await writeResults(out, summary, parts.flatMap((p) => p.rows));
  return summary;
}
