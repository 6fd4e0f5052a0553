import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requireWithCodeCache } from '../../src/util/code-cache.js';

const tmp = mkdtempSync(join(tmpdir(), 'kvmlab-code-cache-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const script = (name: string, body: string) => {
  const file = join(tmp, name);
  writeFileSync(file, body);
  return file;
};

describe('requireWithCodeCache', () => {
  it('runs a CommonJS script, then from the cache its first run left, with its require and module', () => {
    const file = script('lib.cjs', "const { join } = require('node:path');\nmodule.exports = { twice: (n) => 2 * n, here: join(__dirname, 'x') };\n");
    const cache = join(tmp, 'cache');
    const first = requireWithCodeCache<{ twice: (n: number) => number; here: string }>(file, cache);
    expect(first.fromCache).toBe(false);
    expect(first.exports.twice(21)).toBe(42);
    expect(first.exports.here).toBe(join(tmp, 'x'));
    first.save();
    expect(readdirSync(join(cache, 'code'))).toEqual([expect.stringMatching(/^lib\.cjs\.[0-9a-f]{8}\.\d+-\d+\.v8-[\d.]+/)]);
    const second = requireWithCodeCache<{ twice: (n: number) => number }>(file, cache);
    expect(second.fromCache).toBe(true);
    expect(second.exports.twice(4)).toBe(8);
  });

  it('never runs a cache made for other content of the same length, and keeps only the newest', () => {
    const cache = join(tmp, 'cache-edit');
    const file = script('edit.cjs', 'module.exports = 1;\n');
    requireWithCodeCache(file, cache).save();
    writeFileSync(file, 'module.exports = 2;\n');
    utimesSync(file, new Date(), new Date(Date.now() + 5000)); // a later mtime, as a rebuild leaves
    const edited = requireWithCodeCache<number>(file, cache);
    expect(edited.fromCache).toBe(false);
    expect(edited.exports).toBe(2);
    edited.save();
    expect(readdirSync(join(cache, 'code'))).toHaveLength(1);
    // the same script in another checkout keeps a cache of its own
    mkdirSync(join(tmp, 'other'));
    const other = join(tmp, 'other', 'edit.cjs');
    writeFileSync(other, 'module.exports = 2;\n');
    requireWithCodeCache(other, cache).save();
    expect(readdirSync(join(cache, 'code'))).toHaveLength(2);
    expect(requireWithCodeCache<number>(file, cache)).toMatchObject({ fromCache: true, exports: 2 });
  });

  it('works without a cache where it cannot write one', () => {
    // a file where the cache directory would be: not even root can make a directory in it
    const blocked = script('not-a-directory', '');
    const r = requireWithCodeCache<number>(script('blocked.cjs', 'module.exports = 3;\n'), blocked);
    expect(r.exports).toBe(3);
    expect(() => r.save()).not.toThrow();
    expect(requireWithCodeCache<number>(join(tmp, 'blocked.cjs'), blocked).fromCache).toBe(false);
  });
});
