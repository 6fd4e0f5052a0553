import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { exitCodeOf } from '../model/summary.js';
import { buildBundle } from '../report/bundle.js';
import { loadResults, printWarnings } from '../report/load.js';

export function registerBundle(program: Command): void {
  program
    .command('bundle')
    .description('one plain-text repro bundle for a mailing-list reply: host, QEMU command line, guest kernel, results, rerun command, experiment; exits with the run\'s verdict')
    .argument('<dir>', 'results directory')
    .option('-o, --output <file>', 'write the bundle to this file (default: print it)')
    .action(async (dir: string, flags: { output?: string }) => {
      const r = await loadResults(dir);
      printWarnings(r, process.stderr);
      const text = await buildBundle(r, { output: flags.output });
      if (flags.output) {
        await writeFile(flags.output, text);
        process.stderr.write(`wrote ${flags.output} (${text.split('\n').length - 1} lines)\n`);
      } else process.stdout.write(text);
      process.exitCode = exitCodeOf(r.summary);
    });
}
