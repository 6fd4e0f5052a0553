import { describe, expect, it } from 'vitest';
import { median } from '../../src/model/select.js';
import { choose, cliffsDelta, cliffsMagnitude, permutationTest, quantile, repetitionsNeeded, spread } from '../../src/report/stats.js';
import { compareValues, splitVariants } from '../../src/report/compare.js';

describe('quantiles and spread', () => {
  it('interpolates like R type 7', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(quantile([1, 2, 3, 4, 5], 0.25)).toBe(2);
    expect(spread([1, 2, 3, 4, 5])).toEqual({ n: 5, median: 3, min: 1, max: 5, iqr: 2 });
  });
});

describe('permutation test (difference of means, two-sided)', () => {
  it('is exact for small samples: fully separated 3 vs 3 gives 2/20', () => {
    const r = permutationTest([1, 2, 3], [4, 5, 6]);
    expect(r.exact).toBe(true);
    expect(r.arrangements).toBe(20);
    expect(r.observed).toBe(3);
    expect(r.p).toBeCloseTo(0.1, 12);
    expect(r.minP).toBeCloseTo(0.1, 12);
  });
  it('fully separated 5 vs 5 gives 2/252', () => {
    const r = permutationTest([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]);
    expect(r.p).toBeCloseTo(2 / 252, 12);
  });
  it('matches a hand count: [1,2,4] vs [3,5,6]', () => {
    // |diff| of the observed split is 7/3; splits of {1..6} into 3+3 with |sum_b - sum_a| >= 7:
    // sums of side a in {6,7} or {14,15} → {1,2,3},{1,2,4},{3,5,6},{4,5,6}: 4 of 20.
    expect(permutationTest([1, 2, 4], [3, 5, 6]).p).toBeCloseTo(4 / 20, 12);
  });
  it('identical samples give p = 1', () => {
    expect(permutationTest([1, 1, 1], [1, 1, 1]).p).toBe(1);
  });
  it('falls back to seeded Monte Carlo for many arrangements, reproducibly', () => {
    const a = Array.from({ length: 15 }, (_, i) => i);
    const b = Array.from({ length: 15 }, (_, i) => i + 0.5);
    const r1 = permutationTest(a, b, { seed: 7 });
    const r2 = permutationTest(a, b, { seed: 7 });
    expect(r1.exact).toBe(false);
    expect(r1.arrangements).toBe(10_000);
    expect(r1.p).toBe(r2.p);
    expect(r1.p).toBeGreaterThan(0.6); // a shift of 0.5 in a spread of 15 is noise
    const far = permutationTest(a, b.map((x) => x + 100), { seed: 7 });
    expect(far.p).toBeCloseTo(1 / 10_001, 12);
  });
  it('knows the smallest reachable p', () => {
    expect(choose(6, 3)).toBe(20);
    expect(choose(10, 5)).toBe(252);
    expect(repetitionsNeeded(0.05)).toBe(4); // 2/C(8,4) = 0.0286
  });
});

describe("Cliff's delta", () => {
  it('known answers', () => {
    expect(cliffsDelta([1, 2, 3], [4, 5, 6])).toBe(1);
    expect(cliffsDelta([4, 5, 6], [1, 2, 3])).toBe(-1);
    expect(cliffsDelta([1, 2, 3], [1, 2, 3])).toBe(0);
    // [1,3] vs [2]: one pair with b > a, one with b < a → 0; [1,2] vs [2,3]: 3 greater, 1 tie → 3/4
    expect(cliffsDelta([1, 3], [2])).toBe(0);
    expect(cliffsDelta([1, 2], [2, 3])).toBe(0.75);
    expect(cliffsMagnitude(0.1)).toBe('negligible');
    expect(cliffsMagnitude(-0.4)).toBe('medium');
    expect(cliffsMagnitude(0.75)).toBe('large');
  });
});

describe('verdicts', () => {
  const side = (label: string, values: number[]) => ({ label, values, stats: spread(values) });
  const sel = { metric: 'm', agg: 'median' as const };
  it('says differs with p and effect', () => {
    const c = compareValues(sel, side('a', [1, 2, 3, 4, 5]), side('b', [6, 7, 8, 9, 10]));
    expect(c.differs).toBe(true);
    expect(c.verdict).toBe("differs (p=0.0079, effect Cliff's delta +1.00 (large))");
  });
  it('says no difference shown, and why when the design cannot reach significance', () => {
    const c = compareValues(sel, side('a', [1, 2, 3]), side('b', [4, 5, 6]));
    expect(c.differs).toBe(false);
    expect(c.verdict).toMatch(/^no difference shown \(p=0\.1\); too few samples to ever reach significance.*smallest possible p is 0\.1.*--repeat 4/);
    expect(compareValues(sel, side('a', [1]), side('b', [4])).verdict).toMatch(/too few samples \(1 vs 1 repetitions\)/);
    expect(compareValues(sel, side('a', [1, 2, 3, 4, 5]), side('b', [1.5, 2.5, 3.5, 4.5, 5.5])).verdict).toMatch(/^no difference shown \(p=0\.\d+, effect/);
  });
  it('splits A,B where variant ids contain commas', () => {
    const ids = ['x=1,y=a', 'x=2,y=a'];
    expect(splitVariants('x=1,y=a,x=2,y=a', ids, ids, false)).toEqual(['x=1,y=a', 'x=2,y=a']);
    expect(splitVariants('x=1,y=a', ids, ids, true)).toEqual(['x=1,y=a']);
    expect(() => splitVariants('nope', ids, ids, false)).toThrow(/the variants are/);
  });
});
