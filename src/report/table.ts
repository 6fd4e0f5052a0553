// Aligned plain-text tables: for the terminal, for summary.md (inside a code block, so it reads the
// same in a mail client) and for the repro bundle; as data for index.html. Every number a table shows
// is written by fmtNum, so one value reads the same in the verdict, the key metrics and a comparison.

/** A table before it is drawn: index.html renders it as HTML, the terminal with formatTable. */
export interface TableData {
  headers: string[];
  rows: string[][];
}

export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/**
 * A number in a table: integers in full; others to 4 significant digits, but never fewer digits than
 * the integer part has (1234.5 -> 1235, 147847.3 -> 147847), without trailing zeros (99.996 -> 100).
 */
export function fmtNum(v: number): string {
  if (!Number.isFinite(v)) return '-';
  if (Number.isInteger(v)) return String(v);
  if (Math.abs(v) >= 1000) return v.toFixed(0);
  return String(Number(v.toPrecision(4)));
}

/** An expectation's observed value in a table: the number, or "no data" when no row matched. */
export function fmtObserved(v: number | null): string {
  return v === null ? 'no data' : fmtNum(v);
}
