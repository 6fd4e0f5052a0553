// `kvmlab list`: the experiments in a directory, each with its description and host requirements.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../errors.js';
import { formatTable } from '../../report/table.js';
import { loadExperiment } from '../../spec/load.js';
import type { Experiment } from '../../spec/schema.js';

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

/** Each experiment file in `dir`: its one-line description and what it needs from the host. */
export async function list(dir: string): Promise<void> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /\.(ya?ml|json)$/.test(n) && !n.endsWith('.schema.json')).sort();
  } catch {
    throw new InputError(`${dir}: cannot read this directory; give a directory of experiment files`);
  }
  const rows: string[][] = [];
  for (const n of names) {
    try {
      const { experiment: e } = await loadExperiment(join(dir, n));
      rows.push([n, e.description.trim().split('\n')[0]!.slice(0, 70), requirementsText(e)]);
    } catch (err) {
      rows.push([n, `INVALID: ${(err as Error).message.split('\n')[0]!.slice(0, 60)}`, '']);
    }
  }
  process.stdout.write(`${formatTable(['file', 'description', 'requires'], rows)}\n`);
}
