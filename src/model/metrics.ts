// The one long-format metrics table every step and collector writes into:
// variant, repetition, step, entity, metric, value, unit.

export interface MetricRow {
  variant: string;
  repetition: number;
  step: string;
  /** What the value is about: vcpu1, pcpu3, qemu, guest, cpu2, an event name … */
  entity: string;
  metric: string;
  value: number;
  unit: string;
}

export type RowSink = (row: Omit<MetricRow, 'variant' | 'repetition'>) => void;

const CSV_HEADER = 'variant,repetition,step,entity,metric,value,unit';

function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(rows: readonly MetricRow[]): string {
  const lines = [CSV_HEADER];
  for (const r of rows) {
    lines.push([r.variant, String(r.repetition), r.step, r.entity, r.metric, formatValue(r.value), r.unit].map(csvField).join(','));
  }
  return `${lines.join('\n')}\n`;
}

/** Numbers as written to files: integers as is, others to 6 significant digits. */
export function formatValue(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(6)));
}

export function parseCsv(text: string): MetricRow[] {
  const lines = text.split('\n').filter((l) => l !== '');
  if (lines[0] !== CSV_HEADER) throw new Error(`not a kvmlab metrics.csv (header is "${lines[0] ?? ''}")`);
  return lines.slice(1).map((line) => {
    const f = splitCsvLine(line);
    return { variant: f[0]!, repetition: Number(f[1]), step: f[2]!, entity: f[3]!, metric: f[4]!, value: Number(f[5]), unit: f[6] ?? '' };
  });
}

function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let v = '';
      i++;
      while (i < line.length) {
        if (line[i] === '"' && line[i + 1] === '"') {
          v += '"';
          i += 2;
        } else if (line[i] === '"') {
          i++;
          break;
        } else v += line[i++];
      }
      out.push(v);
      i++; // the comma
    } else {
      const end = line.indexOf(',', i);
      const stop = end < 0 ? line.length : end;
      out.push(line.slice(i, stop));
      i = stop + 1;
    }
  }
  return out;
}
