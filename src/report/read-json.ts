// The JSON files of a results directory, read strictly: a syntax error, or a field a schema refuses,
// is an InputError at the file's line and column with the field's path, never a crash further on.
// JSON Lines transcripts may end in a line a killed run cut short; that one line is left out with a
// warning, any other bad line is refused.
import { findNodeAtLocation, parseTree, printParseErrorCode, type ParseError } from 'jsonc-parser';
import type { z } from 'zod';
import { InputError, cutShortWarning, formatFieldPath, formatProblem, type Problem } from '../errors.js';
import { describeIssue } from '../experiment/issues.js';

const MAX_PROBLEMS = 20;
const TRANSCRIPT_FIX = 'each line of a kvmlab transcript is one JSON object as the run wrote it: restore the file, or run the experiment again';

function lineCol(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset);
  return { line: before.split('\n').length, col: offset - before.lastIndexOf('\n') };
}

/** "PropertyNameExpected" -> "property name expected" */
function words(code: string): string {
  return code.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}

const allowed = (values: readonly unknown[]) => `allowed: ${values.map((v) => JSON.stringify(v)).join(', ')}`;

/** describeIssue's words, and for a missing choice or an unknown `kind` the choices a field has. */
function describe(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_value' && issue.input === undefined) return `required field is missing (${allowed(issue.values)})`;
  if (issue.code === 'invalid_union' && issue.discriminator !== undefined && 'options' in issue && issue.options) {
    const found = (issue.input as Record<string, unknown> | undefined)?.[issue.discriminator];
    return `${found === undefined ? 'required field is missing' : `${JSON.stringify(found)} is not allowed`} (${allowed(issue.options)})`;
  }
  return describeIssue(issue);
}

/** JSON text as a value; `fix` says what to do about a file that is not JSON. */
export function parseJson(file: string, text: string, fix: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const errors: ParseError[] = [];
    parseTree(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
    const first = errors[0];
    const where = lineCol(text, first?.offset ?? text.length);
    const problem: Problem = { file, ...where, path: '', message: `not valid JSON: ${first ? words(printParseErrorCode(first.error)) : 'unexpected end'}; ${fix}` };
    throw new InputError(formatProblem(problem), [problem]);
  }
}

/** A parsed JSON value checked against a schema; each problem at the line of the field (or of its nearest parent). */
export function checkJson<S extends z.ZodType>(file: string, text: string, value: unknown, schema: S, fix: string): z.output<S> {
  const result = schema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  const root = parseTree(text);
  const problems = result.error.issues.slice(0, MAX_PROBLEMS).map((issue): Problem => {
    const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
    let node;
    for (let n = path.length; n >= 0 && !node; n--) node = root && findNodeAtLocation(root, path.slice(0, n));
    return { file, ...(node ? lineCol(text, node.offset) : {}), path: formatFieldPath(path), message: describe(issue) };
  });
  const more = result.error.issues.length > MAX_PROBLEMS ? [`(and ${result.error.issues.length - MAX_PROBLEMS} more problems)`] : [];
  throw new InputError([...problems.map(formatProblem), ...more, fix].join('\n'), problems);
}

/** One JSON object per line. A last line without its newline that does not parse is left out with a warning. */
export function parseJsonLines(file: string, text: string | undefined, warnings: string[]): Record<string, unknown>[] {
  if (!text) return [];
  const lines = text.split('\n');
  const out: Record<string, unknown>[] = [];
  for (const [i, line] of lines.entries()) {
    if (!line.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      if (i === lines.length - 1) {
        warnings.push(cutShortWarning(file, i + 1));
        continue;
      }
      throw new InputError(formatProblem({ file, line: i + 1, path: '', message: `not valid JSON; ${TRANSCRIPT_FIX}` }));
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new InputError(formatProblem({ file, line: i + 1, path: '', message: `not a JSON object; ${TRANSCRIPT_FIX}` }));
    }
    out.push(value as Record<string, unknown>);
  }
  return out;
}
