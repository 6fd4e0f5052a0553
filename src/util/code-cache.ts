// A CommonJS script run with a V8 code cache: the bytecode V8 made for it last time, so a fresh
// process neither parses it again nor compiles the functions it used. For large libraries loaded
// anew by every process (vega, for the plots) that is a good part of their start. The cache is a
// file per script (by its path: two checkouts keep theirs apart) and V8 version under
// $KVMLAB_CACHE/code, named by the script's size and mtime (V8 checks a cache against the source's
// length only, and every build rewrites the script); V8 itself refuses one made with other flags,
// and the script then compiles as it would without one.
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { Script } from 'node:vm';

export interface CachedScript<T> {
  /** The script's module.exports. */
  exports: T;
  /** Whether V8 took its code from the cache. */
  fromCache: boolean;
  /**
   * Writes the cache if there was none or V8 refused it. Call it once the script has done its work:
   * the cache then holds the functions compiled since it ran, not only the top level. A cache that
   * cannot be written (a read-only directory) costs only the time it would have saved.
   */
  save(): void;
}

export function requireWithCodeCache<T>(file: string, cacheRoot: string): CachedScript<T> {
  const source = readFileSync(file, 'utf8');
  const st = statSync(file);
  const dir = join(cacheRoot, 'code');
  const name = `${basename(file)}.${fnv1a(file)}`;
  const cacheFile = join(dir, `${name}.${st.size}-${Math.trunc(st.mtimeMs)}.v8-${process.versions.v8}`);
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    // none yet
  }
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData });
  const module = { exports: {} as T };
  (script.runInThisContext() as (...args: unknown[]) => void)(module.exports, createRequire(file), module, file, dirname(file));
  return {
    exports: module.exports,
    fromCache: cachedData !== undefined && !script.cachedDataRejected,
    save() {
      if (cachedData && !script.cachedDataRejected) return;
      try {
        mkdirSync(dir, { recursive: true });
        const tmp = `${cacheFile}.${process.pid}.tmp`;
        writeFileSync(tmp, script.createCachedData());
        renameSync(tmp, cacheFile);
        // caches of this script's earlier builds
        for (const f of readdirSync(dir)) if (f.startsWith(`${name}.`) && join(dir, f) !== cacheFile && !f.endsWith('.tmp')) rmSync(join(dir, f), { force: true });
      } catch {
        // not writable here: the next process compiles the script too
      }
    },
  };
}

/** FNV-1a, 32 bits, in hex: a short name for a path. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}
