// Aligned plain-text tables: for the terminal, for summary.md (inside a code block, so it reads the
// same in a mail client) and for the repro bundle; as data for index.html.

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
