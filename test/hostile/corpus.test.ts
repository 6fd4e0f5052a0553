// Every file in the hostile corpus is refused by `kvmlab validate` with exit 2 and a clear message
// naming the file, in bounded time and memory, never with a stack trace. One validate process reads
// the whole corpus under a 96 MB heap: an alias bomb or deep nesting that expanded would kill it.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;
const corpus = join(root, 'test/hostile/corpus');
const files = readdirSync(corpus).sort();

describe('hostile experiment files', () => {
  let r: { exitCode?: number; stderr: string; ms: number };
  beforeAll(async () => {
    const t0 = Date.now();
    const run = await execa('node', ['--max-old-space-size=96', join(root, 'dist/cli.js'), 'validate', ...files.map((f) => join(corpus, f))], { reject: false, stdin: 'ignore', timeout: 60_000 });
    r = { exitCode: run.exitCode, stderr: run.stderr, ms: Date.now() - t0 };
  });

  it('has a corpus to test, refused as a whole with exit 2 in bounded time, with no stack trace', () => {
    expect(files.length).toBeGreaterThanOrEqual(15);
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.ms).toBeLessThan(30_000);
  });
  for (const f of files) {
    it(`refuses ${f}`, () => {
      // the first file's problem follows "kvmlab: ", the others are indented below it
      expect(r.stderr).toMatch(new RegExp(`^(kvmlab: |  )\\S*/${f.replace('.', '\\.')}(:\\d+:\\d+)?: \\S`, 'm'));
    });
  }
});
