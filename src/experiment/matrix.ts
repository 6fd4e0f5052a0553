// Matrix expansion: the cartesian product of the axes, in the order the file declares them, each
// variant with a stable readable id ("disable_exits=hlt+mwait,halt_poll_ns=0"), and the run order
// with repetitions interleaved across variants (A B A B, not A A B B) so slow drift in the host
// spreads over all variants instead of biasing one.
import { dirname, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { globMatch } from '../util/glob.js';
import { HOST_AXIS, HostValue, Knobs, labelOf, type Experiment } from './schema.js';

export interface Variant {
  id: string;
  /** Matrix axis → the label of this variant's value on it. */
  labels: Record<string, string>;
  knobs: Knobs;
  /** The host axis's value for this variant: the host it runs in. */
  host?: HostValue;
}

export interface Run {
  variant: Variant;
  /** 1-based. */
  repetition: number;
}

export function expandMatrix(exp: Experiment): Variant[] {
  type Partial = { labels: Record<string, string>; overrides: Record<string, unknown>; host?: HostValue };
  let partial: Partial[] = [{ labels: {}, overrides: {} }];
  for (const [axis, values] of Object.entries(exp.matrix ?? {})) {
    if (axis === HOST_AXIS && !Array.isArray(values)) {
      const hosts = Object.entries(values).map(([label, v]) => [label, HostValue.parse(v)] as const);
      partial = partial.flatMap((p) => hosts.map(([label, host]) => ({ ...p, labels: { ...p.labels, [axis]: label }, host })));
      continue;
    }
    const choices: [string, Record<string, unknown>][] = Array.isArray(values)
      ? values.map((v) => [labelOf(v), { [axis]: v }])
      : Object.entries(values).map(([label, preset]) => [label, preset]);
    partial = partial.flatMap((p) => choices.map(([label, o]) => ({ ...p, labels: { ...p.labels, [axis]: label }, overrides: { ...p.overrides, ...o } })));
  }
  return partial.map(({ labels, overrides, host }) => ({
    id: Object.keys(labels).length === 0 ? 'default' : Object.entries(labels).map(([a, l]) => `${a}=${l}`).join(','),
    labels,
    knobs: Knobs.parse({ ...exp.knobs, ...overrides }),
    ...(host ? { host } : {}),
  }));
}

export function schedule(variants: readonly Variant[], repetitions: number): Run[] {
  const runs: Run[] = [];
  for (let repetition = 1; repetition <= repetitions; repetition++) for (const variant of variants) runs.push({ variant, repetition });
  return runs;
}

/** `run --shard I/N`: the I-th of N (1-based) disjoint parts of a run, for N machines to share. */
export interface Shard {
  index: number;
  count: number;
}

/**
 * A shard's cells: every N-th of the run's (variant, repetition) cells in schedule order, starting
 * at the I-th. Deterministic for one file and one set of flags, wherever it runs, and the
 * interleaving is kept (a shard's cells are A B A B, not A A B B); every cell is in exactly one
 * shard. Without a shard, every cell.
 */
export function shardCells(runs: readonly Run[], shard: Shard | undefined): Run[] {
  return shard ? runs.filter((_, k) => k % shard.count === shard.index - 1) : [...runs];
}

/** `--shard I/N` as given on a command line. */
export function parseShard(flag: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(flag);
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || count < 1 || count > 1000 || index < 1 || index > count) throw new InputError(`--shard ${flag}: write I/N with 1 <= I <= N <= 1000, e.g. --shard 2/4 for the second of four shards`);
  return { index, count };
}

/** `--where AXIS=LABEL[,AXIS=LABEL…]` as axis → the labels picked on it (an axis named twice: either label), each checked against the matrix. */
export function parseWhere(exp: Experiment, where: string): Record<string, string[]> {
  const axes = Object.fromEntries(Object.entries(exp.matrix ?? {}).map(([axis, values]) => [axis, Array.isArray(values) ? values.map(labelOf) : Object.keys(values)]));
  const picked: Record<string, string[]> = {};
  for (const term of where.split(',')) {
    const m = /^([^=]+)=(.+)$/.exec(term.trim());
    if (!m) throw new InputError(`--where ${where}: write AXIS=LABEL (several joined by commas), e.g. --where host=after`);
    const [, axis, label] = m as unknown as [string, string, string];
    const labels = axes[axis];
    if (!labels) throw new InputError(`--where ${where}: "${axis}" is not a matrix axis${Object.keys(axes).length ? ` (axes: ${Object.keys(axes).join(', ')})` : ' (the experiment has no matrix)'}`);
    if (!labels.includes(label)) throw new InputError(`--where ${where}: no variant has ${axis}=${label}; ${axis} labels are: ${labels.join(', ')}`);
    (picked[axis] ??= []).push(label);
  }
  return picked;
}

/** The variants `--only PATTERN` and `--where AXIS=LABEL` pick, in matrix order; every variant without either. */
export function selectVariants(exp: Experiment, only: string | undefined, where?: string): Variant[] {
  const variants = expandMatrix(exp);
  const labels = where ? parseWhere(exp, where) : {};
  const picked = variants.filter((v) => (!only || globMatch(only, v.id)) && Object.entries(labels).every(([a, ls]) => ls.includes(v.labels[a] ?? '')));
  if (picked.length === 0) throw new InputError(`${[only && `--only ${only}`, where && `--where ${where}`].filter(Boolean).join(' with ')} matches no variant; variants are: ${variants.map((v) => v.id).join(', ')}`);
  return picked;
}

/** The QEMU binary a variant's host label names, as a path (relative to the experiment file `file`). */
export function variantQemu(v: Variant, file: string): string | undefined {
  return v.host?.qemu === undefined ? undefined : resolve(dirname(file), v.host.qemu);
}

/** A command-line flag the experiment's host axis sets per label (--host-kernel and `kernel`, --qemu and `qemu`): refused, so that no label silently loses its own. */
export function refuseOverriddenFlag(exp: Experiment, flag: string, field: 'kernel' | 'qemu'): void {
  const host = exp.matrix?.[HOST_AXIS];
  if (!host || Array.isArray(host)) return;
  const label = Object.entries(host).find(([, v]) => (v as Record<string, unknown>)[field] !== undefined)?.[0];
  if (label !== undefined) throw new InputError(`${flag}: the experiment's host axis chooses the ${field === 'kernel' ? 'kernel' : 'QEMU'} of host ${label}; drop ${flag}, or pick a label with --where ${HOST_AXIS}=LABEL`);
}

/** Does an expectation's `when` select this variant? */
export function selects(when: Record<string, (string | number | boolean)[]> | undefined, variant: Variant): boolean {
  if (!when) return true;
  return Object.entries(when).every(([axis, wanted]) => wanted.map(labelOf).includes(variant.labels[axis] ?? ''));
}
