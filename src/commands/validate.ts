import type { Command } from 'commander';
import { InputError } from '../errors.js';
import { loadChecked } from '../run/claims.js';
import { expandMatrix } from '../spec/matrix.js';

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('check experiment files without running them; prints each problem as file:line: field: what is wrong and what is allowed')
    .argument('<files...>', 'experiment files (.yaml or .json)')
    .action(async (files: string[]) => {
      const problems: string[] = [];
      for (const file of files) {
        try {
          const { experiment } = await loadChecked(file);
          const n = expandMatrix(experiment).length;
          process.stdout.write(`${file}: ok (${experiment.name}: ${n} variant${n === 1 ? '' : 's'} × ${experiment.repetitions} repetition${experiment.repetitions === 1 ? '' : 's'}, ${experiment.steps.length} steps)\n`);
        } catch (e) {
          if (!(e instanceof InputError)) throw e;
          problems.push(e.message);
        }
      }
      if (problems.length) throw new InputError(problems.join('\n'));
    });
}
