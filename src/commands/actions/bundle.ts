// What `kvmlab bundle` does (commands/bundle.ts declares it).
import { writeFile } from 'node:fs/promises';
import { exitCodeOf } from '../../results/summary.js';
import { buildBundle } from '../../report/bundle.js';
import { loadResults, printWarnings } from '../../report/load.js';

export async function bundle(dir: string, flags: { output?: string }): Promise<void> {
  const r = await loadResults(dir);
  printWarnings(r, process.stderr);
  const text = await buildBundle(r, { output: flags.output });
  if (flags.output) {
    await writeFile(flags.output, text);
    process.stderr.write(`wrote ${flags.output} (${text.split('\n').length - 1} lines)\n`);
  } else process.stdout.write(text);
  process.exitCode = exitCodeOf(r.summary);
}
