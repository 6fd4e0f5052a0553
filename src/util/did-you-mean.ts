// "did you mean": of the words a place accepts, the one closest to what was written, when it is close
// enough to be a slip of the keyboard (a swapped, missing or extra letter or two).

/** Edit distance counting insertions, deletions, substitutions and swaps of two neighbours as one each. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!;
      row[j] = Math.min(d[i - 1]![j]! + 1, row[j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate closest to `word` (of equally close ones, the one of its length), or undefined when none is within a slip of it. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const gap = (c: string) => Math.abs(c.length - word.length);
  const best = candidates.map((c) => [c, distance(c, word)] as const).sort((a, b) => a[1] - b[1] || gap(a[0]) - gap(b[0]))[0];
  return best && best[1] < word.length && best[1] <= Math.max(2, Math.floor(word.length / 4)) ? best[0] : undefined;
}
