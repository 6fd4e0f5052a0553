// Shell-style globs: * any run of characters, ? one character, everything else itself. Used for
// `--only` patterns over variant ids and for the `~` of the simulated tracefs's event filters.

export function globMatch(glob: string, s: string): boolean {
  const re = new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(s);
}
