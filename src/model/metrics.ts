// The one long-format metrics table every step and collector writes into:
// variant, repetition, step, entity, metric, value, unit. Written and read with csv-stringify and
// csv-parse, so any text a field holds (a comma, a quote, a newline in a guest's output) reads back
// as it was written.
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { InputError, cutShortWarning, formatProblem, type Problem } from '../errors.js';

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

const COLUMNS = ['variant', 'repetition', 'step', 'entity', 'metric', 'value', 'unit'] as const;
const HEADER = COLUMNS.join(',');

export function toCsv(rows: readonly MetricRow[]): string {
  const records = rows.map((r) => [r.variant, String(r.repetition), r.step, r.entity, r.metric, formatValue(r.value), r.unit]);
  return stringify([[...COLUMNS], ...records], { record_delimiter: 'unix' });
}

/** Numbers as written to files: integers as is, others to 6 significant digits. */
export function formatValue(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(6)));
}

export interface ParsedMetrics {
  rows: MetricRow[];
  /** What was read but left out, in words: only a last line cut short. */
  warnings: string[];
}

/** The numbers formatValue writes: decimals with an optional exponent, and JavaScript's words for the non-finite. */
const NUMBER = /^-?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$|^(NaN|-?Infinity)$/i;
const MAX_PROBLEMS = 20;
const FIX = 'metrics.csv is the table `kvmlab run` wrote at the end of the run: restore it, or run the experiment again';

function refuse(problems: readonly Problem[], more = ''): never {
  throw new InputError(`${problems.map(formatProblem).join('\n')}${more}\n${FIX}`, problems);
}

interface CsvRecord {
  fields: string[];
  /** The line the record starts on (1-based). */
  line: number;
}

/**
 * metrics.csv as toCsv writes it. Anything else — another header, a line with too few or too many
 * fields, a repetition or value that is not a number, an empty line, broken quoting — is an
 * InputError naming the file, the line and the field. One case is read with a warning instead: a
 * last line without its newline, which is what a run killed while writing leaves; that line is left
 * out. With `variants`, a row of a variant not in that list is refused too.
 */
export function parseCsv(text: string, opts: { file?: string; variants?: readonly string[] } = {}): ParsedMetrics {
  const file = opts.file ?? 'metrics.csv';
  const problems: Problem[] = [];
  const problem = (line: number, path: string, message: string) => problems.push({ file, line, path, message });
  const { records, cut } = csvRecords(text, file);
  const warnings = cut === undefined ? [] : [cutShortWarning(file, cut)];
  const header = records.shift();
  if (header?.fields.join(',') !== HEADER) {
    const found = header ? `the header is "${header.fields.join(',')}"` : 'the file is empty';
    refuse([{ file, line: 1, path: '', message: `not a kvmlab metrics.csv: ${found}; expected "${HEADER}"` }]);
  }
  const known = opts.variants && new Set(opts.variants);
  const rows: MetricRow[] = [];
  for (const { fields, line } of records) {
    if (problems.length >= MAX_PROBLEMS) break;
    if (fields.length === 1 && fields[0] === '') {
      problem(line, '', 'an empty line; metrics.csv has one row on every line');
      continue;
    }
    if (fields.length !== COLUMNS.length) {
      problem(line, '', `${fields.length} fields, expected ${COLUMNS.length} (${HEADER}); the line is cut short or has an unquoted comma`);
      continue;
    }
    const [variant, repetition, step, entity, metric, value, unit] = fields as [string, string, string, string, string, string, string];
    const before = problems.length;
    for (const [name, v] of [['variant', variant], ['step', step], ['entity', entity], ['metric', metric]] as const) {
      if (v === '') problem(line, name, `empty; every row names its ${name}`);
    }
    if (known && variant !== '' && !known.has(variant)) problem(line, 'variant', `"${variant}" is not a variant of this run (summary.json lists ${[...known].join(', ') || 'none'})`);
    if (!/^[1-9]\d*$/.test(repetition)) problem(line, 'repetition', `${JSON.stringify(repetition)} is not a repetition number; repetitions are whole numbers from 1`);
    if (!NUMBER.test(value)) problem(line, 'value', `${JSON.stringify(value)} is not a number; values are decimal numbers such as 12, -0.5 or 1.5e-7`);
    if (problems.length === before) rows.push({ variant, repetition: Number(repetition), step, entity, metric, value: Number(value), unit });
  }
  if (problems.length) refuse(problems, problems.length >= MAX_PROBLEMS ? `\n(stopped after ${MAX_PROBLEMS} problems)` : '');
  return { rows, warnings };
}

/** The CSV records of the text with the line each starts on, and the line of a last record cut short. */
function csvRecords(text: string, file: string): { records: CsvRecord[]; cut?: number } {
  const records: CsvRecord[] = [];
  let ended = 0;
  const cutShort = text !== '' && !text.endsWith('\n');
  try {
    parse(text, {
      relax_column_count: true,
      skip_empty_lines: false,
      on_record: (fields: string[], info) => {
        records.push({ fields, line: ended + 1 });
        ended = info.lines;
        return undefined;
      },
    });
  } catch (e) {
    const err = e as { code?: string; lines?: number; message: string };
    // a quoted field still open at the end of a file without its last newline: the same cut line
    if (cutShort && err.code === 'CSV_QUOTE_NOT_CLOSED') return { records, cut: ended + 1 };
    refuse([{ file, line: err.lines ?? ended + 1, path: '', message: `not valid CSV: ${err.message}` }]);
  }
  if (cutShort && records.length > 1) return { records, cut: records.pop()!.line };
  return { records };
}

/** A name from the kernel or a tool as one word of a metric name: lower case, [a-z0-9_] only. */
export function metricWord(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9_]+/g, '_').replace(/^_+|_+$/g, '');
}

/** VMX's names of the idle exits, as SVM's: the same exit gets the same metric on both. */
const VMX_IDLE_EXITS: Record<string, string> = { HLT: 'hlt', MWAIT_INSTRUCTION: 'mwait', MONITOR_INSTRUCTION: 'monitor', PAUSE_INSTRUCTION: 'pause' };

/** A kvm_exit reason as the last word of an exits metric (trace.exits.<word>, exits.<word>). */
export function exitReasonWord(reason: string): string {
  const r = reason.trim();
  return VMX_IDLE_EXITS[r] ?? (metricWord(r) || 'unknown');
}

