// Faults at the seam that used to hang, leak or mislead, each against a peer that misbehaves in
// exactly that way: a QMP monitor that refuses negotiation, an SSH server that never opens a
// channel, a launch still in flight at Ctrl-C, a monitor that never answers device_del or reports
// another CPU's eject, KVM statistics under TCG, a vCPU directory named by APIC id, a sampler that
// hits EIO mid-window.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, describe, expect, it } from 'vitest';
import type { HostView, OpenFile, Vm } from '../../src/backend/backend.js';
import { realClock, VirtualClock } from '../../src/backend/clock.js';
import { MockBackend } from '../../src/backend/mock/mock-backend.js';
import { contains, QmpClient, type QmpEvent } from '../../src/backend/qmp-client.js';
import { generateClientKey, SshGuest } from '../../src/backend/ssh-guest.js';
import { NotCollected } from '../../src/collect/collector.js';
import { KvmStatsCollector } from '../../src/collect/kvm-stats.js';
import { VcpuCpuCollector } from '../../src/collect/vcpu-cpu.js';
import type { HostFacts } from '../../src/model/host-facts.js';
import type { MetricRow } from '../../src/model/metrics.js';
import type { ThreadMap } from '../../src/model/threads.js';
import { createProgress } from '../../src/run/progress.js';
import { runExperiment } from '../../src/run/runner.js';
import { runStep } from '../../src/run/steps.js';
import { parseExperiment } from '../../src/experiment/load.js';

const { Server } = ssh2;
/** These collectors ask nothing of the host's facts. */
const NO_FACTS = {} as HostFacts;
const tmp = mkdtempSync(join(tmpdir(), 'kvmlab-seam-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('QMP and SSH clients', () => {
  it('close a greeted QMP connection whose qmp_capabilities is refused', async () => {
    const path = join(tmp, 'refusing.sock');
    let peer: Socket | undefined;
    const closed = new Promise<void>((resolve) => {
      const server = createServer((s) => {
        peer = s;
        s.on('close', () => {
          server.close();
          resolve();
        });
        s.write('{"QMP": {"version": {}, "capabilities": []}}\n');
        s.on('data', (d) => {
          const { id } = JSON.parse(d.toString()) as { id: string };
          s.write(`${JSON.stringify({ id, error: { class: 'GenericError', desc: 'no negotiation today' } })}\n`);
        });
      }).listen(path);
    });
    await expect(QmpClient.connect(path, { timeoutMs: 2000 })).rejects.toThrow(/no negotiation today/);
    await closed;
    expect(peer?.destroyed).toBe(true);
  });

  it('end a guest command whose channel the server never opens', async () => {
    const host = generateClientKey();
    const client = generateClientKey();
    const server = new Server({ hostKeys: [host.privateKey] }, (c) => {
      c.on('authentication', (ctx) => ctx.accept());
      c.on('ready', () => c.on('session', (accept) => accept().on('exec', () => undefined))); // never accepts, never rejects
      c.on('error', () => undefined);
    });
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    const guest = new SshGuest({ host: '127.0.0.1', port, user: 'root', privateKey: client.privateKey, hostKey: host.publicKey });
    try {
      await expect(guest.exec('uname -r', 500)).rejects.toThrow(/did not start the command within 500 ms/);
    } finally {
      guest.disconnect();
      server.close();
    }
  });
});

describe('the runner', () => {
  it('shuts down a VM whose launch was still in flight when Ctrl-C came', async () => {
    const exp = parseExperiment('name: late\ndescription: d\nguest: { arch: x86_64, cpus: 1 }\nsteps: [{ wait: 1s }]\n', 'late.yaml');
    const mock = new MockBackend();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let launched: Vm | undefined;
    const ac = new AbortController();
    const backend = Object.assign(Object.create(mock) as MockBackend, {
      launch: async (req: Parameters<MockBackend['launch']>[0]) => {
        ac.abort(); // Ctrl-C while QEMU is still starting
        await gate;
        launched = await mock.launch(req);
        return launched;
      },
    });
    const running = runExperiment({ loaded: { file: 'late.yaml', text: '', experiment: exp }, backend, accel: 'auto', out: join(tmp, 'late'), allowHostCommands: false, progress: createProgress(process.stderr, true), signal: ac.signal });
    await new Promise((r) => setTimeout(r, 50));
    release(); // the VM comes up after the runner stopped waiting for it
    const { summary } = await running;
    expect(summary.interrupted).toBe(true);
    expect(launched?.exitReason()).toMatch(/quit over QMP|stopped by kvmlab/);
  });
});

/** A Vm whose monitor the test scripts: answers by command, events already sent. */
function scriptedVm(answer: (cmd: string, args?: Record<string, unknown>, timeoutMs?: number) => Promise<unknown>, events: Omit<QmpEvent, 'seq' | 'receivedAt' | 'qemuTime'>[] = []): Vm {
  const history: QmpEvent[] = events.map((e, seq) => ({ ...e, seq, receivedAt: 0, qemuTime: 0 }));
  const qmp = {
    events: history,
    isOpen: true,
    get lastSeq() {
      return -1; // the events were all sent after the step began
    },
    execute: answer,
    waitForEvent: (name: string, match: Record<string, unknown> | undefined, timeoutMs: number, after = -1) => {
      const seen = history.find((e) => e.seq > after && e.event === name && contains(e.data, match));
      return seen ? Promise.resolve(seen) : new Promise((_, reject) => realClock.deadline(timeoutMs, () => reject(new Error(`no ${name}`))));
    },
  };
  const guest = { exec: async () => ({ status: 0, stdout: '', stderr: '', timedOut: false }) };
  return { qmp, guest } as unknown as Vm;
}

const unplugStep = (timeout: string) => parseExperiment(`name: u\ndescription: d\nguest: { arch: x86_64, cpus: 1, maxcpus: 3 }\nsteps: [{ unplug: cpu2, timeout: ${timeout} }]\n`, 'u.yaml').steps[0]!;
const stepCtx = (vm: Vm, rows: MetricRow[] = []) => ({ vm, host: fileHost({}), clock: realClock, arch: 'x86_64' as const, emit: (r: Omit<MetricRow, 'variant' | 'repetition'>) => void rows.push({ variant: 'v', repetition: 1, ...r }), allowHostCommands: false, signal: new AbortController().signal, eventsFrom: 0, refreshThreads: async () => undefined });

describe('the unplug step', () => {
  it('gives device_del the step\'s timeout, not QMP\'s 30 s default', async () => {
    const timeouts: (number | undefined)[] = [];
    const vm = scriptedVm(async (cmd, _args, timeoutMs) => {
      if (cmd === 'device_del') timeouts.push(timeoutMs);
      return cmd === 'query-cpus-fast' ? [] : {};
    });
    await runStep(unplugStep('700ms'), stepCtx(vm)).catch(() => undefined);
    expect(timeouts).toEqual([700]);
  });

  it('takes this CPU\'s completed eject, named by its slot as QEMU 7.2 reports it, for its removal', async () => {
    const cpu2 = [
      { event: 'ACPI_DEVICE_OST', data: { info: { device: 'cpu2', source: 3, status: 132, slot: '2', 'slot-type': 'CPU' } } },
      { event: 'DEVICE_DELETED', data: { path: '/machine/peripheral/cpu2/lapic' } },
      { event: 'ACPI_DEVICE_OST', data: { info: { source: 3, status: 0, slot: '2', 'slot-type': 'CPU' } } },
    ];
    const rows: MetricRow[] = [];
    const detail = await runStep(unplugStep('2s'), stepCtx(scriptedVm(async (cmd) => (cmd === 'query-cpus-fast' ? [] : {}), cpu2), rows));
    expect(detail.outcome).toBe('ejected');
    expect(rows.find((r) => r.metric === 'unplug.removed')?.value).toBe(1);
  });

  it('does not take another CPU\'s completed eject for this one\'s', async () => {
    // QEMU 7.2's own sequence for cpu3, in full: its request names it, its completion only its slot
    const cpu3 = [
      { event: 'ACPI_DEVICE_OST', data: { info: { device: 'cpu3', source: 3, status: 132, slot: '3', 'slot-type': 'CPU' } } },
      { event: 'ACPI_DEVICE_OST', data: { info: { source: 3, status: 0, slot: '3', 'slot-type': 'CPU' } } },
    ];
    const vm = scriptedVm(async (cmd) => (cmd === 'query-cpus-fast' ? [] : {}), cpu3);
    const rows: MetricRow[] = [];
    const detail = await runStep(unplugStep('300ms'), stepCtx(vm, rows));
    expect(detail.outcome).toBe('timeout');
    expect(rows.find((r) => r.metric === 'unplug.removed')?.value).toBe(0);
  });
});

/** A host that serves only the files given, and fails reads with EIO while `failing`. */
function fileHost(files: Record<string, string>, state = { failing: false }): HostView {
  const read = (path: string) => {
    if (state.failing) throw Object.assign(new Error(`EIO: i/o error, read '${path}'`), { code: 'EIO' });
    const text = files[path];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    return text;
  };
  return {
    readFile: async (p) => read(p),
    openFile: (p): OpenFile => (read(p), { read: (into) => Buffer.from(read(p)).copy(into), close: () => undefined }),
    readdir: async (p) => [...new Set(Object.keys(files).filter((f) => f.startsWith(`${p}/`)).map((f) => f.slice(p.length + 1).split('/')[0]!))],
    exists: async (p) => p in files,
  } as HostView;
}

describe('collectors', () => {
  const threads: ThreadMap = { pid: 4242, vcpus: [{ index: 0, tid: 4243, qomPath: '/machine/unattached/device[0]', props: {} }, { index: 1, tid: 4244, qomPath: '/machine/unattached/device[1]', props: {} }], others: [] };

  it('kvm-stats under TCG says "not collected" at start, instead of "collected" and a throw at stop', async () => {
    const vm = scriptedVm(async () => []); // query-stats: no kvm provider
    const c = new KvmStatsCollector();
    await expect(c.start({ facts: NO_FACTS, host: fileHost({}), clock: realClock, vm: { ...vm, pid: 4242 } as Vm, threads: () => threads, dir: tmp, emit: () => undefined })).rejects.toThrow(NotCollected);
    await expect(c.stop()).resolves.toBeUndefined();
  });

  it('kvm-stats from debugfs names each vCPU by its cpu-index, not by the vcpu_id (APIC id) debugfs uses', async () => {
    const dbg = '/sys/kernel/debug/kvm/4242-11';
    const files = { [`${dbg}/halt_exits`]: '5\n', [`${dbg}/vcpu0/halt_exits`]: '1\n', [`${dbg}/vcpu2/halt_exits`]: '100\n' };
    const apic: Record<string, number> = { '/machine/unattached/device[0]': 0, '/machine/unattached/device[1]': 2 }; // threads=2: vCPU 1 is APIC 2
    const vm = { ...scriptedVm(async (cmd, args) => (cmd === 'qom-get' ? apic[String(args?.path)] : Promise.reject(new Error('no query-stats')))), pid: 4242 } as Vm;
    const rows: MetricRow[] = [];
    const c = new KvmStatsCollector();
    await c.start({ facts: NO_FACTS, host: fileHost(files), clock: realClock, vm, threads: () => threads, dir: tmp, emit: (r) => void rows.push({ variant: 'v', repetition: 1, ...r }) });
    await c.stepStart();
    files[`${dbg}/vcpu2/halt_exits`] = '130\n';
    await c.stepEnd('s');
    expect(rows.filter((r) => r.metric === 'kvm.halt_exits').map((r) => `${r.entity}=${r.value}`).sort()).toEqual(['vcpu0=0', 'vcpu1=30', 'vm=0']);
  });

  it('vcpu-cpu fails the step on a sampling error mid-window (EIO), rather than swallowing it', async () => {
    const files: Record<string, string> = {};
    for (const v of threads.vcpus) {
      files[`/proc/4242/task/${v.tid}/schedstat`] = '1000 0 1\n';
      files[`/proc/4242/task/${v.tid}/stat`] = `${v.tid} (CPU ${v.index}/KVM) S 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 4 0 100 0 0 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 -1 ${v.index} 0 0 0 0 0\n`;
    }
    const state = { failing: false };
    const clock = new VirtualClock(0);
    const c = new VcpuCpuCollector(100);
    await c.start({ facts: NO_FACTS, host: fileHost(files, state), clock, vm: { pid: 4242 } as Vm, threads: () => threads, dir: tmp, emit: () => undefined });
    await c.stepStart();
    state.failing = true;
    await clock.sleep(150); // one tick reads while the host fails
    state.failing = false;
    await clock.sleep(150);
    await expect(c.stepEnd('s')).rejects.toThrow(/sampling failed: EIO/);
    await c.stop();
  });

  it('vcpu-cpu counts a vCPU thread\'s CPU changes over the window, the end snapshot included, and writes every sample', async () => {
    const files: Record<string, string> = {};
    const put = (tid: number, cpu: number) => {
      files[`/proc/4242/task/${tid}/schedstat`] = '1000 0 1\n';
      files[`/proc/4242/task/${tid}/stat`] = `${tid} (CPU 0/KVM) S 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 4 0 100 0 0 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 -1 ${cpu} 0 0 0 0 0\n`;
    };
    for (const v of threads.vcpus) put(v.tid, 2);
    const clock = new VirtualClock(0);
    const rows: MetricRow[] = [];
    const dir = mkdtempSync(join(tmp, 'moves-'));
    const c = new VcpuCpuCollector(100);
    await c.start({ facts: NO_FACTS, host: fileHost(files), clock, vm: { pid: 4242 } as Vm, threads: () => threads, dir, emit: (r) => void rows.push({ variant: 'v', repetition: 1, ...r }) });
    await c.stepStart();
    // vcpu0: 2 → 3 → 3 → 2 (two ticks' moves), then 5 at the end snapshot; vcpu1 stays on 2
    for (const cpu of [3, 3, 2]) {
      put(4243, cpu);
      await clock.sleep(100);
    }
    put(4243, 5);
    await c.stepEnd('s');
    await c.stop();
    const moves = (e: string) => rows.find((r) => r.metric === 'vcpu.migrations' && r.entity === e)?.value;
    expect([moves('vcpu0'), moves('vcpu1')]).toEqual([3, 0]);
    const csv = readFileSync(join(dir, 'vcpu-cpu.csv'), 'utf8').trim().split('\n');
    expect(csv.length - 1).toBe(3 * 2); // every tick's sample of both threads, though fewer than a batch
  });
});
