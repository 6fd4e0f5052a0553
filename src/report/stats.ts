// Small-sample statistics for comparing repetitions: quantiles, a two-sided permutation test on the
// difference of means, and Cliff's delta as the effect size. Repetitions are few (3-20), so the test
// is exact (every arrangement) whenever that is affordable and seeded Monte Carlo otherwise.
import { median } from '../model/select.js';

export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export interface Spread {
  n: number;
  median: number;
  min: number;
  max: number;
  /** Interquartile range (linear-interpolated quartiles). */
  iqr: number;
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { n: 0, median: NaN, min: NaN, max: NaN, iqr: NaN };
  return { n: values.length, median: median(values), min: Math.min(...values), max: Math.max(...values), iqr: quantile(values, 0.75) - quantile(values, 0.25) };
}

/** n choose k as a float (exact for the sizes used here). */
export function choose(n: number, k: number): number {
  if (k < 0 || k > n) return 0;
  k = Math.min(k, n - k);
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return Math.round(r);
}

/** mulberry32: a small seeded PRNG so Monte Carlo p-values are reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface PermutationResult {
  /** Observed mean(b) - mean(a). */
  observed: number;
  /** Two-sided p: share of arrangements whose |difference of means| is at least the observed one. */
  p: number;
  exact: boolean;
  /** Arrangements enumerated (exact) or random permutations drawn. */
  arrangements: number;
  /** The smallest p this design (these sample sizes) can give at all, so "cannot reach significance" is known. */
  minP: number;
}

export interface PermutationOptions {
  /** Enumerate every arrangement when there are at most this many (default 20 000). */
  maxExact?: number;
  /** Random permutations otherwise (default 10 000). */
  permutations?: number;
  seed?: number;
}

/**
 * Two-sided permutation test of "a and b come from the same distribution" with the difference of
 * means as the statistic. Exact when C(n_a+n_b, n_a) ≤ maxExact; otherwise p = (hits+1)/(N+1) over
 * N seeded random relabellings.
 */
export function permutationTest(a: readonly number[], b: readonly number[], opts: PermutationOptions = {}): PermutationResult {
  const na = a.length;
  const nb = b.length;
  if (na === 0 || nb === 0) throw new Error('permutation test needs values on both sides');
  const all = [...a, ...b];
  const total = all.reduce((s, v) => s + v, 0);
  const diffFor = (sumA: number) => (total - sumA) / nb - sumA / na;
  const observed = diffFor(a.reduce((s, v) => s + v, 0));
  const scale = Math.max(1, ...all.map(Math.abs));
  const threshold = Math.abs(observed) - 1e-9 * scale;
  const n = na + nb;
  const count = choose(n, na);
  const maxExact = opts.maxExact ?? 20_000;
  if (count <= maxExact) {
    let hits = 0;
    let seen = 0;
    const pick = (start: number, left: number, sum: number) => {
      if (left === 0) {
        seen++;
        const d = Math.abs(diffFor(sum));
        if (d >= threshold) hits++;
        return;
      }
      for (let i = start; i <= n - left; i++) pick(i + 1, left - 1, sum + all[i]!);
    };
    pick(0, na, 0);
    // The design's floor: with distinct values the most extreme split (and, for equal sizes, its
    // mirror) is all that reaches the largest |difference|. No data from this design can give less.
    const minP = (na === nb ? 2 : 1) / seen;
    return { observed, p: hits / seen, exact: true, arrangements: seen, minP };
  }
  const draws = opts.permutations ?? 10_000;
  const rand = rng(opts.seed ?? 0x6b766d);
  const idx = all.map((_, i) => i);
  let hits = 0;
  for (let k = 0; k < draws; k++) {
    // partial Fisher-Yates: the first na positions become side a
    let sum = 0;
    for (let i = 0; i < na; i++) {
      const j = i + Math.floor(rand() * (n - i));
      const t = idx[i]!;
      idx[i] = idx[j]!;
      idx[j] = t;
      sum += all[idx[i]!]!;
    }
    if (Math.abs(diffFor(sum)) >= threshold) hits++;
  }
  return { observed, p: (hits + 1) / (draws + 1), exact: false, arrangements: draws, minP: 1 / (draws + 1) };
}

/** Cliff's delta: P(b > a) - P(b < a) over all pairs; -1..1, 0 when the two overlap evenly. */
export function cliffsDelta(a: readonly number[], b: readonly number[]): number {
  if (a.length === 0 || b.length === 0) return NaN;
  let gt = 0;
  let lt = 0;
  for (const x of a) {
    for (const y of b) {
      if (y > x) gt++;
      else if (y < x) lt++;
    }
  }
  return (gt - lt) / (a.length * b.length);
}

/** Romano et al. (2006) thresholds for |delta|. */
export function cliffsMagnitude(d: number): 'negligible' | 'small' | 'medium' | 'large' {
  const m = Math.abs(d);
  return m < 0.147 ? 'negligible' : m < 0.33 ? 'small' : m < 0.474 ? 'medium' : 'large';
}

/** Fewest repetitions per side (equal sizes) for which an exact test can reach p < alpha. */
export function repetitionsNeeded(alpha: number): number {
  for (let n = 2; n < 50; n++) if (2 / choose(2 * n, n) < alpha) return n;
  return 50;
}
