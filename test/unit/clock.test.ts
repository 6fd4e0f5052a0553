// The mock's virtual clock: windows cost no wall time, samplers and deadlines never pull time on their
// own, work in flight holds it, and a deadline nothing else reaches fires after a short quiet spell.
import { execFile } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { realClock, settlesWithin, VirtualClock } from '../../src/backend/clock.js';

const realMs = async <T>(f: () => Promise<T>) => {
  const t0 = performance.now();
  const value = await f();
  return { value, ms: performance.now() - t0 };
};
const realPause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('VirtualClock', () => {
  it('sleeps through a long window in next to no wall time, and now() says the window passed', async () => {
    const clock = new VirtualClock(1_000_000);
    const { ms } = await realMs(() => clock.sleep(600_000));
    expect(clock.now()).toBe(1_600_000);
    expect(ms).toBeLessThan(200);
  });

  it('fires a sampler as time passes it, never pulling time by itself', async () => {
    const clock = new VirtualClock(0);
    const ticks: number[] = [];
    const stop = clock.every(100, () => void ticks.push(clock.now()));
    await realPause(50);
    expect({ now: clock.now(), ticks: ticks.length }).toEqual({ now: 0, ticks: 0 });
    await clock.sleep(1000);
    expect(ticks).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
    stop();
    await clock.sleep(1000);
    expect(ticks).toHaveLength(10);
  });

  it('holds time while work is in flight, and a tick is in flight until its promise settles', async () => {
    const clock = new VirtualClock(0);
    let answered = false;
    void clock.busy(realPause(60).then(() => (answered = true)));
    await clock.sleep(10);
    expect(answered).toBe(true); // the sleep could not end before the busy work did
    const seen: string[] = [];
    const stop = clock.every(100, async () => {
      const before = clock.now();
      await realPause(20);
      seen.push(`${before}-${clock.now()}`);
    });
    await clock.sleep(300);
    stop();
    expect(seen).toEqual(['110-110', '210-210', '310-310']); // the sampler started at 10; each tick held time
  });

  it('reaches a deadline after a quiet spell when nothing else is pending, and not before what comes first', async () => {
    const clock = new VirtualClock(0);
    const fired: string[] = [];
    clock.deadline(5000, () => fired.push(`deadline@${clock.now()}`));
    clock.schedule(700, () => fired.push(`event@${clock.now()}`));
    await clock.sleep(500);
    expect(fired).toEqual([]);
    expect(await settlesWithin(realClock, new Promise<void>((r) => clock.deadline(10_000, r)), 2000)).toBe(true);
    expect(fired).toEqual(['event@700', 'deadline@5000']);
  });

  it('moves on after a grace when work in flight never answers, so its deadline can fire', async () => {
    const clock = new VirtualClock(0);
    void clock.busy(new Promise(() => undefined));
    const { ms } = await realMs(() => new Promise<void>((r) => clock.deadline(30_000, r)));
    expect(clock.now()).toBe(30_000);
    expect(ms).toBeGreaterThan(1500);
  }, 10_000);

  it('rejects a sleep when its signal aborts, and forgets its timer', async () => {
    const clock = new VirtualClock(0);
    const ac = new AbortController();
    const sleeping = clock.sleep(10_000, ac.signal);
    ac.abort(new Error('stop'));
    await expect(sleeping).rejects.toThrow('stop');
    await clock.sleep(1);
    expect(clock.now()).toBe(1);
  });

  it('lets the process exit with only deadlines pending, like an unref\'d timer', async () => {
    // the built module (npm test builds first): a child process of its own, to see whether it exits
    const code = `import('${new URL('../../dist/backend/clock.js', import.meta.url).pathname}').then(({ VirtualClock }) => { new VirtualClock().deadline(60_000, () => console.log('fired')); })`;
    const run = promisify(execFile)(process.execPath, ['-e', code], { timeout: 5000 });
    await expect(run).resolves.toMatchObject({ stdout: '' });
  });
});
