// The built CLI as the mock tests run it (no stdin, exit status returned, never thrown), and a
// scratch directory of the test file's own, removed after it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll } from 'vitest';

export const root = new URL('../..', import.meta.url).pathname;
export const cli = join(root, 'dist/cli.js');

export const kvmlab = (...args: string[]) => execa('node', [cli, ...args], { reject: false, cwd: root, stdin: 'ignore' });

/** A fresh directory for this test file, removed when its tests are done. */
export function scratch(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `kvmlab-${name}-`));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
