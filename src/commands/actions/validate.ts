// `kvmlab validate`: load each file and check its claims as `run` would, without running anything.
import { InputError, type Problem } from '../../errors.js';
import { loadChecked } from '../../run/claims.js';
import { expandMatrix } from '../../experiment/matrix.js';

/** What --json prints for a file: ok with what it would run, or its problems. */
type Checked = { file: string; ok: true; experiment: string; variants: number; repetitions: number; steps: number } | { file: string; ok: false; problems: readonly Problem[] };

/** Checks every file; ok lines (or with --json one document) on stdout, the problems on stderr, exit 2 if any. */
export async function validate(files: string[], flags: { json?: boolean }): Promise<void> {
  const checked: Checked[] = [];
  const refused: string[] = [];
  for (const file of files) {
    try {
      const { experiment } = await loadChecked(file);
      checked.push({ file, ok: true, experiment: experiment.name, variants: expandMatrix(experiment).length, repetitions: experiment.repetitions, steps: experiment.steps.length });
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      checked.push({ file, ok: false, problems: e.problemsOf(file) });
      refused.push(e.message);
    }
  }
  if (flags.json) process.stdout.write(`${JSON.stringify({ files: checked }, null, 2)}\n`);
  else for (const c of checked) if (c.ok) process.stdout.write(`${c.file}: ok (${c.experiment}: ${c.variants} variant${c.variants === 1 ? '' : 's'} × ${c.repetitions} repetition${c.repetitions === 1 ? '' : 's'}, ${c.steps} steps)\n`);
  if (refused.length) throw new InputError(refused.join('\n'));
}
