// Every benchmark in test/bench/ runs in its --smoke mode (seconds; its numbers are not judged): a
// refactor that breaks a benchmark fails here, not months later on the day someone needs its
// numbers. A benchmark that needs what this host lacks is skipped with the reason printed. Each ends
// with one JSON line: that it parses is checked.
import { access, readdir } from 'node:fs/promises';
import { machine } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { imagesDir } from '../../src/backend/qemu/image.js';
import { NESTED_IMAGE } from '../../src/targets/nested-host.js';
import { qemuSkipReason, ROOT } from '../tcg/qemu-helpers.js';

async function nestedSkipReason(): Promise<string | undefined> {
  if (machine() !== 'x86_64') return `the nested KVM host is x86_64 and this host is ${machine()}`;
  if (process.getuid?.() !== 0) return 'not root';
  const q = await qemuSkipReason('x86_64');
  if (q) return q;
  const img = join(imagesDir(), NESTED_IMAGE, 'initrd.img');
  return (await access(img).then(() => true, () => false)) ? undefined : `no nested KVM host image at ${img}`;
}

/** What each benchmark needs of this host, or undefined when it needs nothing but the build. */
const NEEDS: Record<string, () => Promise<string | undefined>> = {
  'boot-time.mjs': () => qemuSkipReason('x86_64'),
  'exit-trace-cost.mjs': nestedSkipReason,
  'observer-effect.mjs': () => qemuSkipReason('x86_64'),
  'storm-exit-counting.mjs': nestedSkipReason,
};

const benches = (await readdir(join(ROOT, 'test/bench'))).filter((f) => f.endsWith('.mjs') && f !== 'measure.mjs').sort();

describe('every benchmark, in its --smoke mode', () => {
  it('finds the benchmarks (finding none would pass this file vacuously)', () => {
    expect(benches.length).toBeGreaterThanOrEqual(8);
  });

  for (const bench of benches) {
    it(bench, async (ctx) => {
      const skip = await NEEDS[bench]?.();
      if (skip) {
        console.warn(`${bench} --smoke skipped: ${skip}`);
        ctx.skip();
      }
      const r = await execa(process.execPath, [join('test/bench', bench), '--smoke'], { cwd: ROOT, reject: false, all: true, stdin: 'ignore', timeout: 600_000 });
      expect(r.exitCode, r.all).toBe(0);
      const last = String(r.stdout).trim().split('\n').at(-1) ?? '';
      expect(() => JSON.parse(last), `${bench}: the last line is not JSON:\n${r.all}`).not.toThrow();
    }, 620_000);
  }
});
