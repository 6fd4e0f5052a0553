// `kvmlab validate`: load each file and check its claims as `run` would, without running anything.
import { InputError } from '../../errors.js';
import { loadChecked } from '../../run/claims.js';
import { expandMatrix } from '../../spec/matrix.js';

export async function validate(files: string[]): Promise<void> {
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
}
