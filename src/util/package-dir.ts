// Where kvmlab's own files are: the directory holding its package.json, with host-scripts/,
// guest-scripts/ and experiments/ beside src/ and dist/. Found by walking up from this module, so it
// holds for the sources (vitest), the compiled modules and the bundled CLI, whose chunks sit at
// another depth under dist/.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'kvmlab') return dir;
    if (dirname(dir) === dir) throw new Error(`kvmlab's package.json is not in ${start} or any directory above it`);
  }
}

const ROOT = findRoot();

/** A path inside kvmlab's package: `packagePath('host-scripts', 'build')`. */
export function packagePath(...parts: string[]): string {
  return join(ROOT, ...parts);
}
