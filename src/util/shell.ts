// Shell words: the one way kvmlab quotes an argument for sh (command lines shown to people, the job
// script the nested host runs), so what is printed is what runs.

const SAFE = /^[A-Za-z0-9_./=:,+@%^-]+$/;

/** One argument as sh reads it back: as it is when it has nothing sh treats specially, else single-quoted. */
export function shellQuote(arg: string): string {
  if (arg !== '' && SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}
