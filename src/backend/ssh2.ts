// ssh2 (CommonJS, with optional native crypto), loaded the first time kvmlab makes a key, reaches a
// guest or serves the mock's: `kvmlab plan` builds QEMU command lines without it. Loaded through
// require: named imports of a CommonJS module's values fail under Node's ESM loader.
import { createRequire } from 'node:module';

let loaded: typeof import('ssh2') | undefined;

export function ssh2(): typeof import('ssh2') {
  return (loaded ??= createRequire(import.meta.url)('ssh2') as typeof import('ssh2'));
}
