// What `kvmlab compare` does (commands/compare.ts declares it).
import { InputError } from '../../errors.js';
import { formatAgreement, verdictAgreement } from '../../report/agreement.js';
import { compareResults, comparisonJson, formatComparison } from '../../report/compare.js';
import { loadResults, printWarnings } from '../../report/load.js';

export interface CompareFlags {
  metric: string[];
  variants?: string;
  step?: string;
  entity?: string;
  json?: boolean;
  verdicts?: boolean;
}

const list = (v: string | undefined) => (v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean));

export async function compare(dir: string, dir2: string | undefined, flags: CompareFlags): Promise<void> {
  const left = await loadResults(dir);
  const right = dir2 === undefined ? undefined : await loadResults(dir2);
  for (const r of [left, right]) if (r) printWarnings(r, process.stderr);
  if (flags.verdicts) {
    if (!right) throw new InputError('compare --verdicts takes two results directories of one experiment: kvmlab compare A B --verdicts');
    const agreement = verdictAgreement(left, right);
    process.stdout.write(flags.json ? `${JSON.stringify(agreement, null, 2)}\n` : formatAgreement(agreement));
    process.exitCode = agreement.agrees ? 0 : 1;
    return;
  }
  const report = compareResults(left, right, { metrics: flags.metric, variants: flags.variants, step: list(flags.step), entity: list(flags.entity) });
  process.stdout.write(flags.json ? `${JSON.stringify(comparisonJson(report), null, 2)}\n` : formatComparison(report));
}
