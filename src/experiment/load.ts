// Reading an experiment file: YAML (or JSON, which YAML 1.2 reads too) into a validated Experiment,
// with every problem reported as file:line:col, the field path, what was wrong and what is allowed.
import { readFile, stat } from 'node:fs/promises';
import { isMap, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { InputError, formatProblem, type Problem } from '../errors.js';
import { describeIssue, unknownFieldLines } from './issues.js';
import { ExperimentSchema, type Experiment } from './schema.js';

/** Experiment files are hand-written; anything this large is a mistake or an attack. */
export const MAX_FILE_BYTES = 1024 * 1024;
const MAX_DEPTH = 64;

export interface Loaded {
  file: string;
  text: string;
  experiment: Experiment;
}

export async function loadExperiment(file: string): Promise<Loaded> {
  let size: number;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new InputError(`${file}: not a regular file; give the path of an experiment .yaml file`);
    size = st.size;
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'}); check the path`);
  }
  if (size > MAX_FILE_BYTES) throw new InputError(`${file}: ${size} bytes is too large for an experiment file (limit ${MAX_FILE_BYTES})`);
  const bytes = await readFile(file);
  return { file, text: bytes.toString('utf8'), experiment: parseExperiment(bytes, file) };
}

export function parseExperiment(bytes: Buffer | string, file: string): Experiment {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  if (buf.length > MAX_FILE_BYTES) throw new InputError(`${file}: ${buf.length} bytes is too large for an experiment file (limit ${MAX_FILE_BYTES})`);
  if (buf.includes(0) || !isUtf8(buf)) {
    throw new InputError(`${file}: not a text file (binary or not UTF-8); an experiment is a YAML or JSON text file`);
  }
  const text = buf.toString('utf8');
  if (text.trim() === '') throw new InputError(`${file}: the file is empty; an experiment needs at least name, description, guest and steps`);

  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, strict: true });
  // Warnings (unresolved tags such as !!python/object) are refused too: experiments need no tags.
  const syntax = doc.errors[0] ?? doc.warnings[0];
  if (syntax) {
    // The first syntax error is the one to fix; the ones after it are usually its echoes.
    const pos = lines.linePos(syntax.pos[0]);
    const problem: Problem = { file, line: pos.line, col: pos.col, path: '', message: `not valid YAML: ${firstLine(syntax.message)}` };
    throw new InputError(formatProblem(problem), [problem]);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new InputError(`${file}: ${firstLine((e as Error).message)} (YAML aliases are limited to 100 expansions)`);
  }
  if (depth(value) > MAX_DEPTH) throw new InputError(`${file}: nested more than ${MAX_DEPTH} levels deep; an experiment is a few levels deep`);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InputError(`${file}: the top level must be a mapping with name, description, guest and steps (found ${Array.isArray(value) ? 'a list' : typeof value})`);
  }
  const result = ExperimentSchema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  const problems = result.error.issues.flatMap((issue) => toProblems(issue, doc, lines, file));
  // In file order: the first line printed is the first place to fix.
  problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
  throw new InputError(problems.map(formatProblem).join('\n'), problems);
}

/** Refuses an experiment that parsed but says something that cannot hold: each problem at its line. */
export function refuse(loaded: Loaded, problems: readonly { path: (string | number)[]; message: string }[]): never {
  const lines = new LineCounter();
  const doc = parseDocument(loaded.text, { lineCounter: lines });
  const located = problems.map((p) => ({ file: loaded.file, ...locate(doc, lines, p.path), path: formatPath(p.path), message: p.message }));
  throw new InputError(located.map(formatProblem).join('\n'), located);
}

function toProblems(issue: z.core.$ZodIssue, doc: Document, lines: LineCounter, file: string): Problem[] {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  const at = (message: string, key?: string): Problem => ({ file, ...((key !== undefined && locateKey(doc, lines, path, key)) || locate(doc, lines, path)), path: formatPath(path), message });
  // An unknown field is reported at its own line, one problem per field.
  if (issue.code === 'unrecognized_keys') return unknownFieldLines(issue).map(({ key, message }) => at(message, key));
  const params = issue.code === 'custom' ? (issue.params as { key?: unknown; sameAs?: unknown } | undefined) : undefined;
  const key = params?.key;
  let message = describeIssue(issue);
  // params.sameAs: the index of a sibling the problem repeats; its line is named in the message.
  if (typeof params?.sameAs === 'number') message = message.replace('{sameAs}', ` at line ${locate(doc, lines, [...path.slice(0, -1), params.sameAs]).line ?? '?'}`);
  return [at(message, typeof key === 'string' ? key : undefined)];
}

/** Where the key `key` of the mapping at `path` is written, when it is. */
function locateKey(doc: Document, lines: LineCounter, path: (string | number)[], key: string): { line: number; col: number } | undefined {
  const map = path.length === 0 ? doc.contents : doc.getIn(path, true);
  if (!isMap(map)) return undefined;
  const written = map.items.map((pair) => pair.key).find((k) => isScalar(k) && String(k.value) === key);
  return isScalar(written) && written.range ? lines.linePos(written.range[0]) : undefined;
}

/** The closest line to the offending field: the node itself, or the nearest parent that exists. */
function locate(doc: Document, lines: LineCounter, path: (string | number)[]): { line?: number; col?: number } {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | undefined)?.range;
    if (range) {
      // For a missing or unknown key this is the parent mapping: point at its first line.
      const pos = lines.linePos(range[0]);
      return { line: pos.line, col: pos.col };
    }
  }
  return {};
}

function formatPath(path: (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

function depth(v: unknown, d = 0): number {
  if (d > MAX_DEPTH) return d;
  if (v === null || typeof v !== 'object') return d;
  let max = d;
  for (const child of Object.values(v)) max = Math.max(max, depth(child, d + 1));
  return max;
}

function isUtf8(buf: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buf);
    return true;
  } catch {
    return false;
  }
}
