// `kvmlab list`: the experiments in a directory (the shipped ones by default), each with its
// description and host requirements.
import { readdir } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { InputError, type Problem } from '../../errors.js';
import { formatTable } from '../../report/table.js';
import { loadExperiment } from '../../experiment/load.js';
import type { Requires } from '../../experiment/schema.js';
import { packagePath } from '../../util/package-dir.js';

/** The experiments kvmlab ships, in the installed package: not the current directory's. */
const SHIPPED = packagePath('experiments');

function requirementsText(r: Requires): string {
  const parts = [
    ...(r.arch ? [r.arch.join('|')] : []),
    ...(r.accel !== 'any' ? [r.accel] : []),
    ...r.cpu_flags.map((f) => `cpu:${f}`),
    ...r.kernel_params,
    ...r.devices,
    ...r.interrupts.map((i) => `irq:${i}`),
    ...(r.root ? ['root'] : []),
  ];
  return parts.join(', ') || 'none';
}

/** What --json prints for a file: what the experiment is and needs, or why it could not be read. */
type Listed = { file: string; name: string; description: string; requires: Requires } | { file: string; problems: readonly Problem[] };

/** Each experiment file in `dir` (default: the shipped ones), as a path `kvmlab run` takes: its one-line description and what it needs from the host. */
export async function list(given: string | undefined, flags: { json?: boolean }): Promise<void> {
  const dir = given ?? SHIPPED;
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /\.(ya?ml|json)$/.test(n) && !n.endsWith('.schema.json')).sort();
  } catch {
    throw new InputError(`${dir}: cannot read this directory; give a directory of experiment files`);
  }
  const listed: Listed[] = [];
  const refused: string[] = [];
  for (const n of names) {
    const file = shown(join(dir, n));
    try {
      const { experiment: e } = await loadExperiment(file);
      listed.push({ file, name: e.name, description: e.description.trim(), requires: e.requires });
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      listed.push({ file, problems: err.problemsOf(file) });
      refused.push(err.message);
    }
  }
  if (flags.json) process.stdout.write(`${JSON.stringify({ dir: resolve(dir), experiments: listed }, null, 2)}\n`);
  else {
    const rows = listed.map((l) => ('problems' in l ? [l.file, `INVALID: ${l.problems[0]!.message.split('\n')[0]!.slice(0, 60)}`, ''] : [l.file, l.description.split('\n')[0]!.slice(0, 70), requirementsText(l.requires)]));
    process.stdout.write(`${formatTable(['file', 'description', 'requires'], rows)}\n`);
  }
  // Every file is listed; one that cannot be read is bad input all the same (exit 2), said in full on stderr.
  if (refused.length) throw new InputError(refused.join('\n'));
}

/** A path as short as it can be written from here: relative below the current directory, else absolute. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}
