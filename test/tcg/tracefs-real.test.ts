// The tracefs collector against this host's real tracefs (root and a writable tracefs needed, else
// skipped with the reason): a child node process with busy-waking worker threads stands in for QEMU;
// its sched_switch counts per thread must agree with the kernel's own context-switch counters, the
// private instance must be gone afterwards, and the global tracing setup must be as it was.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Vm } from '../../src/backend/backend.js';
import { realClock } from '../../src/backend/clock.js';
import { RealHostView } from '../../src/backend/qemu/host-view.js';
import { probeHost } from '../../src/backend/probe.js';
import type { CollectorContext } from '../../src/collect/collector.js';
import { parseTaskStatus } from '../../src/formats/procfs.js';
import { TracefsCollector } from '../../src/collect/tracefs.js';
import type { MetricRow } from '../../src/model/metrics.js';
import type { ThreadMap } from '../../src/model/threads.js';

const T = '/sys/kernel/tracing';
const GLOBAL = ['tracing_on', 'current_tracer', 'set_event', 'buffer_size_kb', 'trace_clock', 'trace_options', 'events/enable', 'events/sched/sched_switch/filter'];

/** The QEMU backend's view of the real host, as the collector gets it in a real run. */
const fsHost = new RealHostView();

async function skipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root';
  if (!(await fsHost.exists(`${T}/instances`))) return `no tracefs at ${T} (mount -t tracefs nodev ${T})`;
  return access(`${T}/instances`, constants.W_OK).then(() => undefined, () => `${T}/instances is not writable`);
}

const snapshotGlobal = async () => Object.fromEntries(await Promise.all(GLOBAL.map(async (f) => [f, await readFile(`${T}/${f}`, 'utf8').catch(() => '(unreadable)')] as const)));
const kvmlabInstances = async () => (await readdir(`${T}/instances`)).filter((n) => n.startsWith('kvmlab-'));

const reason = await skipReason();
/** What the probe says this host is: where its tracefs is, as a real run asks it. */
const facts = await probeHost(fsHost, { simulated: false });
if (reason) console.warn(`tracefs-real: skipped: ${reason}`);

describe.skipIf(reason !== undefined)('tracefs collector on the real tracefs', () => {
  let child: ChildProcess;
  let dir: string;
  let before: Record<string, string>;
  const rows: MetricRow[] = [];

  beforeAll(async () => {
    before = await snapshotGlobal();
    dir = await mkdtemp(join(tmpdir(), 'kvmlab-tracefs-real-'));
    // two worker threads that wake every 2 ms: plenty of context switches
    child = spawn(process.execPath, ['-e', `const {Worker}=require('worker_threads');for(let i=0;i<2;i++)new Worker('setInterval(()=>{},2)',{eval:true});setInterval(()=>{},1000);`], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 500));
  });

  afterAll(async () => {
    child?.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('counts the process\'s context switches per thread like the kernel does', async () => {
    const pid = child.pid!;
    const tids = (await readdir(`/proc/${pid}/task`)).map(Number).sort((a, b) => a - b);
    const map: ThreadMap = { pid, vcpus: tids.map((tid, index) => ({ index, tid, qomPath: '', props: {} })), others: [] };
    const vm = { pid, qmp: undefined } as unknown as Vm;
    const ctx: CollectorContext = { host: fsHost, facts, clock: realClock, vm, threads: () => map, dir, emit: (r) => rows.push({ variant: 'v', repetition: 1, ...r }) };
    const switches = async () => {
      let n = 0;
      for (const tid of tids) {
        const s = parseTaskStatus(await readFile(`/proc/${pid}/task/${tid}/status`, 'utf8'));
        n += s.voluntaryCtxtSwitches + s.nonvoluntaryCtxtSwitches;
      }
      return n;
    };
    const c = new TracefsCollector({ events: ['sched:sched_switch', 'sched:sched_wakeup'], buffer_kb: 2048 });
    await c.start(ctx);
    expect(await kvmlabInstances()).toHaveLength(1);
    let kernelCount = 0;
    try {
      await c.stepStart('busy');
      const k0 = await switches();
      await new Promise((r) => setTimeout(r, 1000));
      const k1 = await switches();
      await c.stepEnd('busy');
      kernelCount = k1 - k0;
    } finally {
      await c.stop();
    }
    const out = rows.filter((r) => r.metric === 'trace.switches_out' && r.step === 'busy');
    expect(out.length).toBe(tids.length);
    const traced = out.reduce((s, r) => s + r.value, 0);
    expect(kernelCount).toBeGreaterThan(200);
    // the step window is a little wider than the two status reads
    expect(traced).toBeGreaterThanOrEqual(kernelCount * 0.9);
    expect(traced).toBeLessThanOrEqual(kernelCount * 1.2 + 20);
    expect(rows.find((r) => r.metric === 'trace.events_lost' && r.entity === 'all')?.value).toBe(0);
    expect(rows.find((r) => r.metric === 'trace.sched_wakeups')?.value).toBeGreaterThan(0);
    const meta = JSON.parse(await readFile(join(dir, 'tracefs.json'), 'utf8'));
    expect(meta.windows[0].source).toBe('markers');
  });

  it('removes its instance after a failed start too', async () => {
    const ctx: CollectorContext = { host: fsHost, facts, clock: realClock, vm: { pid: child.pid! } as unknown as Vm, threads: () => ({ pid: child.pid!, vcpus: [], others: [child.pid!] }), dir, emit: () => undefined };
    const c = new TracefsCollector({ events: ['sched:sched_switch', 'sched:no_such_event_kvmlab'], buffer_kb: 256 });
    await expect(c.start(ctx)).rejects.toThrow(/no_such_event_kvmlab does not exist/);
    expect(await kvmlabInstances()).toEqual([]);
  });

  it('leaves no instance and the global tracing setup as it was', async () => {
    expect(await kvmlabInstances()).toEqual([]);
    expect(await snapshotGlobal()).toEqual(before);
  });
});
