// `kvmlab list`: the experiments in a directory (the shipped ones by default), each with its
// description and host requirements.
import { readdir } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../../errors.js';
import { formatTable } from '../../report/table.js';
import { loadExperiment } from '../../spec/load.js';
import type { Experiment } from '../../spec/schema.js';

/** The experiments kvmlab ships, beside dist/ (or src/) in the installed package: not the current directory's. */
const SHIPPED = fileURLToPath(new URL('../../../experiments/', import.meta.url));

function requirementsText(e: Experiment): string {
  const r = e.requires;
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

/** Each experiment file in `dir` (default: the shipped ones), as a path `kvmlab run` takes: its one-line description and what it needs from the host. */
export async function list(given: string | undefined): Promise<void> {
  const dir = given ?? SHIPPED;
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /\.(ya?ml|json)$/.test(n) && !n.endsWith('.schema.json')).sort();
  } catch {
    throw new InputError(`${dir}: cannot read this directory; give a directory of experiment files`);
  }
  const rows: string[][] = [];
  for (const n of names) {
    const path = join(dir, n);
    try {
      const { experiment: e } = await loadExperiment(path);
      rows.push([shown(path), e.description.trim().split('\n')[0]!.slice(0, 70), requirementsText(e)]);
    } catch (err) {
      rows.push([shown(path), `INVALID: ${(err as Error).message.split('\n')[0]!.slice(0, 60)}`, '']);
    }
  }
  process.stdout.write(`${formatTable(['file', 'description', 'requires'], rows)}\n`);
}

/** A path as short as it can be written from here: relative below the current directory, else absolute. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}
