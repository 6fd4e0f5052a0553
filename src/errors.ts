// Errors a user can cause or meet, each with the exit status the CLI gives it. Anything else that
// reaches the top is a bug in kvmlab and is reported as one.

/**
 * Every error kvmlab raises on purpose: the message is the words a person reads; an error it wraps
 * is kept as `cause` (KVMLAB_DEBUG=1 prints the chain), never flattened into the message alone.
 */
export class KvmlabError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad input or usage: exit 2. The message names the file, the field and the fix. */
export class InputError extends KvmlabError {
  readonly exitCode = 2;
  constructor(
    message: string,
    readonly problems: readonly Problem[] = [],
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  /** Its problems, each at its place; when it located none, its message as the one problem of `file`. */
  problemsOf(file: string): readonly Problem[] {
    return this.problems.length ? this.problems : [{ file, path: '', message: this.message }];
  }
}

/** The host cannot run what was asked (missing hardware, unmet requirement, broken setup): exit 3. */
export class HostError extends KvmlabError {
  readonly exitCode = 3;
}

export interface Problem {
  file: string;
  line?: number;
  col?: number;
  path: string;
  message: string;
}

export function formatProblem(p: Problem): string {
  const where = p.line === undefined ? p.file : `${p.file}:${p.line}${p.col === undefined ? '' : `:${p.col}`}`;
  return `${where}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
}

/** A field's path as messages write it: guest.cpus, steps[2].sample, variants[0].expectations[1].observed. */
export function formatFieldPath(path: readonly (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** The warning for the one damage a results file may have: its last line cut short by a run killed while writing it. */
export function cutShortWarning(file: string, line: number): string {
  return `${file}:${line}: the last line is cut short (no newline at its end: the run was killed while writing it); it is left out`;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
