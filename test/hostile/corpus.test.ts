// Every file in the hostile corpus is refused by `kvmlab validate` with exit 2 and a clear message
// naming the file, in bounded time and memory, never with a stack trace.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;
const corpus = join(root, 'test/hostile/corpus');
const files = readdirSync(corpus).sort();

describe('hostile experiment files', () => {
  it('has a corpus to test', () => expect(files.length).toBeGreaterThanOrEqual(15));
  for (const f of files) {
    it(`refuses ${f}`, async () => {
      const t0 = Date.now();
      // --max-old-space-size bounds memory: an alias bomb or deep nesting that expanded would die here.
      const r = await execa('node', ['--max-old-space-size=96', join(root, 'dist/cli.js'), 'validate', join(corpus, f)], { reject: false, stdin: 'ignore', timeout: 20_000 });
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^kvmlab: \\S*${f.replace('.', '\\.')}(:\\d+:\\d+)?: `));
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.stderr).not.toMatch(/internal error/);
      expect(Date.now() - t0).toBeLessThan(15_000);
    });
  }
});
