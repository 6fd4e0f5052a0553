// Reading a results directory back: summary.json, metrics.csv, the experiment as run, and per
// repetition steps.jsonl, launch.json, vcpu-cpu.csv, guest.jsonl, the QMP greeting and any trace
// text, each by the schema its writer writes to (results/summary.ts, results/records.ts). Everything after `run` (report, compare, bundle) starts here. A directory that is not a
// kvmlab results directory is an InputError that says what is missing; summary.json is checked
// against the schema its types come from, and a malformed summary.json, metrics.csv or transcript
// is an InputError at its line, never a crash further on.
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { InputError, errorMessage } from '../errors.js';
import { parseCsv, type MetricRow } from '../model/metrics.js';
import { qemuVersion } from '../backend/qmp-client.js';
import { EffectiveSchema, SummarySchema, type Effective, type Summary, type VariantResult } from '../results/summary.js';
import { repetitionDir, REPETITION, RESULTS, VCPU_SAMPLES } from '../results/layout.js';
import { checkJson, parseJson, parseJsonLines } from './read-json.js';
import { guestCommands, parseVcpuSamples, qmpRecords, stepRecords, type GuestCommand, type QmpRecord, type StepRecord, type VcpuSample } from '../results/records.js';
import type { Expectation, Experiment } from '../experiment/schema.js';
import type { Variant } from '../experiment/matrix.js';

export interface RepetitionData {
  variant: string;
  repetition: number;
  status: 'completed' | 'error';
  /** Where this repetition's files are (under the results directory as it is now). */
  dir: string;
  steps: StepRecord[];
  samples: VcpuSample[];
  /** launch.json: accel, argv, disableExitsMask and whatever else the backend recorded. */
  launch: Effective | undefined;
  guest: GuestCommand[];
  /** QEMU version from the QMP greeting in qmp.jsonl, e.g. "7.2.0 (Debian 1:7.2+dfsg-7)". */
  qemuVersion: string | undefined;
  /** Trace text files found under the repetition (tracefs/perf collectors), relative to dir. */
  traceFiles: string[];
}

export interface LoadedResults {
  dir: string;
  summary: Summary;
  rows: MetricRow[];
  /** What was read with a doubt, in words (a last line cut short); the commands print these. */
  warnings: string[];
  /** experiment.yaml as run, when present. */
  experimentText: string | undefined;
  /** The parsed experiment and its variants from experiment.expanded.json, when present. */
  experiment: Experiment | undefined;
  variants: Variant[];
  reps: RepetitionData[];
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InputError(`${path}: cannot read: ${errorMessage(e)}`, [], { cause: e });
  }
}

const NOT_RESULTS = 'is this a kvmlab results directory?';
const LAUNCH_FIX = 'launch.json is what `kvmlab run` recorded of a launch: restore it, or run the experiment again';
const SUMMARY_FIX = 'summary.json is the file `kvmlab run` wrote at the end of the run: restore it, or run the experiment again';

async function findTraceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string, depth: number) => {
    let entries;
    try {
      entries = await readdir(join(dir, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory() && depth < 2) await walk(r, depth + 1);
      else if (e.isFile() && /^trace([._-].*)?\.txt$|^trace$/.test(e.name)) out.push(r);
    }
  };
  await walk('', 0);
  return out.sort();
}

function qemuVersionOf(records: readonly QmpRecord[]): string | undefined {
  for (const rec of records.slice(0, 3)) {
    const v = rec.msg && typeof rec.msg === 'object' ? qemuVersion(rec.msg as Record<string, unknown>) : undefined;
    if (v) return v;
  }
  return undefined;
}

async function loadRepetition(out: string, v: VariantResult, rep: VariantResult['repetitions'][number], warnings: string[]): Promise<RepetitionData> {
  // The summary records absolute paths as they were at run time; the directory may have moved since.
  const here = repetitionDir(out, v.id, rep.repetition);
  const dir = (await stat(here).catch(() => undefined))?.isDirectory() ? here : rep.dir;
  const [steps, launch, vcpu, guest, qmp] = await Promise.all([
    readOptional(join(dir, REPETITION.steps)),
    readOptional(join(dir, REPETITION.launch)),
    readOptional(join(dir, 'vcpu-cpu', VCPU_SAMPLES)),
    readOptional(join(dir, REPETITION.guest)),
    readOptional(join(dir, REPETITION.qmp)),
  ]);
  const launchPath = join(dir, REPETITION.launch);
  const launchJson = launch === undefined ? undefined : checkJson(launchPath, launch, parseJson(launchPath, launch, NOT_RESULTS), EffectiveSchema, LAUNCH_FIX);
  return {
    variant: v.id,
    repetition: rep.repetition,
    status: rep.status,
    dir,
    steps: stepRecords(parseJsonLines(join(dir, REPETITION.steps), steps, warnings)),
    samples: vcpu ? parseVcpuSamples(vcpu) : [],
    launch: launchJson,
    guest: guestCommands(parseJsonLines(join(dir, REPETITION.guest), guest, warnings)),
    qemuVersion: qemuVersionOf(qmpRecords(parseJsonLines(join(dir, REPETITION.qmp), qmp, warnings))),
    traceFiles: await findTraceFiles(dir),
  };
}

/** Read a results directory written by `kvmlab run`. */
export async function loadResults(dir: string): Promise<LoadedResults> {
  const st = await stat(dir).catch(() => undefined);
  if (!st) throw new InputError(`${dir}: no such directory; give the results directory a run wrote (kvmlab run … --out DIR)`);
  if (!st.isDirectory()) throw new InputError(`${dir}: not a directory; give the results directory a run wrote (kvmlab run … --out DIR), not a file in it`);
  const summaryPath = join(dir, RESULTS.summary);
  const summaryText = await readOptional(summaryPath);
  if (summaryText === undefined) {
    const hasVariants = await stat(join(dir, 'variants')).catch(() => undefined);
    throw new InputError(
      hasVariants
        ? `${dir}: no summary.json; the run that wrote this directory did not finish (interrupted or crashed), so there is nothing to report`
        : `${dir} is not a kvmlab results directory (no summary.json); give the directory \`kvmlab run … --out DIR\` wrote`,
    );
  }
  const raw = parseJson(summaryPath, summaryText, SUMMARY_FIX);
  if (!raw || typeof raw !== 'object' || !('experiment' in raw || 'variants' in raw)) {
    throw new InputError(`${summaryPath}: not a kvmlab summary (no "experiment" and "variants"); is ${basename(dir)} a kvmlab results directory?`);
  }
  const summary = checkJson(summaryPath, summaryText, raw, SummarySchema, SUMMARY_FIX);
  const csvPath = join(dir, RESULTS.metrics);
  const csv = await readOptional(csvPath);
  if (csv === undefined) throw new InputError(`${dir}: summary.json but no metrics.csv; the results directory is incomplete`);
  const { rows, warnings } = parseCsv(csv, { file: csvPath, variants: summary.variants.map((v) => v.id) });
  const experimentText = await readOptional(join(dir, RESULTS.experiment));
  const expandedPath = join(dir, RESULTS.expanded);
  const expandedText = await readOptional(expandedPath);
  const expanded = expandedText === undefined ? undefined : (parseJson(expandedPath, expandedText, NOT_RESULTS) as { experiment?: Experiment; variants?: Variant[] });
  const reps: RepetitionData[] = [];
  for (const v of summary.variants) for (const r of v.repetitions) reps.push(await loadRepetition(dir, v, r, warnings));
  const variants =
    expanded?.variants ?? summary.variants.map((v) => ({ id: v.id, labels: v.labels, knobs: v.knobs }) as Variant);
  return { dir, summary, rows, warnings, experimentText, experiment: expanded?.experiment, variants, reps };
}

/** Print what was read with a doubt, one line each. */
export function printWarnings(r: LoadedResults, to: NodeJS.WritableStream): void {
  for (const w of r.warnings) to.write(`kvmlab: warning: ${w}\n`);
}

/** The expectations of the experiment as run ([] when experiment.expanded.json is missing). */
export function expectationsOf(r: LoadedResults): Expectation[] {
  return r.experiment?.expect ?? [];
}
