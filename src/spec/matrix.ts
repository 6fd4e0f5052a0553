// Matrix expansion: the cartesian product of the axes, in the order the file declares them, each
// variant with a stable readable id ("disable_exits=hlt+mwait,halt_poll_ns=0"), and the run order
// with repetitions interleaved across variants (A B A B, not A A B B) so slow drift in the host
// spreads over all variants instead of biasing one.
import { InputError } from '../errors.js';
import { Knobs, labelOf, type Experiment } from './schema.js';

export interface Variant {
  id: string;
  /** Matrix axis → the label of this variant's value on it. */
  labels: Record<string, string>;
  knobs: Knobs;
}

export interface Run {
  variant: Variant;
  /** 1-based. */
  repetition: number;
}

export function expandMatrix(exp: Experiment): Variant[] {
  let partial: { labels: Record<string, string>; overrides: Record<string, unknown> }[] = [{ labels: {}, overrides: {} }];
  for (const [axis, values] of Object.entries(exp.matrix ?? {})) {
    const choices: [string, Record<string, unknown>][] = Array.isArray(values)
      ? values.map((v) => [labelOf(v), { [axis]: v }])
      : Object.entries(values).map(([label, preset]) => [label, preset]);
    partial = partial.flatMap((p) => choices.map(([label, o]) => ({ labels: { ...p.labels, [axis]: label }, overrides: { ...p.overrides, ...o } })));
  }
  return partial.map(({ labels, overrides }) => ({
    id: Object.keys(labels).length === 0 ? 'default' : Object.entries(labels).map(([a, l]) => `${a}=${l}`).join(','),
    labels,
    knobs: Knobs.parse({ ...exp.knobs, ...overrides }),
  }));
}

export function schedule(variants: readonly Variant[], repetitions: number): Run[] {
  const runs: Run[] = [];
  for (let repetition = 1; repetition <= repetitions; repetition++) for (const variant of variants) runs.push({ variant, repetition });
  return runs;
}

/** `--only` patterns: shell-style globs (* and ?) over variant ids. */
export function matchesPattern(id: string, pattern: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(id);
}

/** The variants `--only PATTERN` picks, in matrix order; every variant without a pattern. */
export function selectVariants(exp: Experiment, only: string | undefined): Variant[] {
  const variants = expandMatrix(exp);
  if (!only) return variants;
  const picked = variants.filter((v) => matchesPattern(v.id, only));
  if (picked.length === 0) throw new InputError(`--only ${only} matches no variant; variants are: ${variants.map((v) => v.id).join(', ')}`);
  return picked;
}

/** Does an expectation's `when` select this variant? */
export function selects(when: Record<string, (string | number | boolean)[]> | undefined, variant: Variant): boolean {
  if (!when) return true;
  return Object.entries(when).every(([axis, wanted]) => wanted.map(labelOf).includes(variant.labels[axis] ?? ''));
}
