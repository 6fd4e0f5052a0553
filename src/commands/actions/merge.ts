// `kvmlab merge`: the shards of one run as one results directory, its verdict printed as run prints it.
import { resolve } from 'node:path';
import { mergeParts } from '../../run/merge.js';
import { refuseOverwrite } from '../../run/results.js';
import { showVerdict } from './verdict.js';

export async function merge(dirs: string[], flags: { out: string; force?: boolean; json?: boolean }): Promise<void> {
  const out = resolve(flags.out);
  await refuseOverwrite(out, flags.force);
  const { summary, warnings } = await mergeParts(out, dirs.map((d) => resolve(d)));
  await showVerdict(out, summary, { json: flags.json, where: `(merged from ${dirs.length} part${dirs.length === 1 ? '' : 's'})`, warnings });
}
