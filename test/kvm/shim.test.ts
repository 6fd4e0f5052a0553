// Real QEMU on real /dev/kvm, with libkvmlab-exits.so preloaded: the shim must replace the mask
// that `-overcommit cpu-pm=on` asks for, set the per-VM halt poll limit, say when cpu-pm=on was
// absent, and stay out of the way when no KVMLAB_* variable is set. QEMU runs with -S, so no guest
// code is needed: everything checked happens while the VM and its vCPUs are created.

import { RealHostView } from '../../src/backend/qemu/host-view.js';
import { describe, it, expect, afterEach, beforeAll } from 'vitest';
import { access, constants, mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { cpuPmMask, formatMask, maskOf, missingBits, parseShimRecord, type ExitName, type ShimRecord } from '../../src/model/exits.js';
import {
  BUILD_HINT,
  EXITS_SHIM_PATH,
  HOST_SCRIPTS_DIR,
  KVM_PROBE_PATH,
  allowedDisableExits,
  kvmUsable,
  runKvmProbe,
  type KvmProbe,
} from '../../src/host/kvm-probe.js';

const QEMU = 'qemu-system-x86_64';
const EINVAL = 22;

async function onPath(cmd: string): Promise<boolean> {
  const r = await execa('sh', ['-c', `command -v ${cmd}`], { reject: false });
  return r.exitCode === 0;
}

async function exists(path: string): Promise<boolean> {
  return access(path, constants.F_OK).then(
    () => true,
    () => false,
  );
}

interface Ready {
  probe: KvmProbe;
  allowed: number;
}

/** Builds host-scripts (so the test cannot pass vacuously), then decides whether it can run here. */
async function prepare(): Promise<Ready | string> {
  if (await onPath('make')) {
    // Always make: it is a no-op when up to date and rebuilds after a source change. A failed
    // build is a test failure, not a reason to skip.
    const r = await execa('make', ['-C', HOST_SCRIPTS_DIR], { reject: false, all: true });
    if (r.exitCode !== 0) throw new Error(`${BUILD_HINT} failed:\n${r.all}`);
  } else if (!(await exists(EXITS_SHIM_PATH)) || !(await exists(KVM_PROBE_PATH))) {
    return `host-scripts are not built and make is not installed (run \`${BUILD_HINT}\`)`;
  }
  if (!(await onPath(QEMU))) return `${QEMU} is not installed`;
  const res = await runKvmProbe(new RealHostView());
  if (res.status === 'not_built') return res.message;
  const probe = res.probe;
  if (!kvmUsable(probe)) {
    const why = !probe.dev_kvm.ok ? probe.dev_kvm.error : probe.vm && !probe.vm.ok ? probe.vm.error : 'unknown';
    return `/dev/kvm is not usable (${why})`;
  }
  const allowed = allowedDisableExits(probe);
  if (allowed === null) return 'KVM_CHECK_EXTENSION(KVM_CAP_X86_DISABLE_EXITS) failed on /dev/kvm';
  return { probe, allowed };
}

const prepared = await prepare();
const skipReason = typeof prepared === 'string' ? prepared : undefined;
if (skipReason) console.warn(`test/kvm/shim.test.ts skipped: ${skipReason}`);

// ---- running QEMU -----------------------------------------------------------------------------

interface Qemu {
  proc: ResultPromise;
  pid: number;
  dir: string;
  record: string;
  qmp: string;
  exited: () => boolean;
  output: () => string;
}

const running = new Set<Qemu>();

async function startQemu(opts: { cpuPm: boolean; env: Record<string, string> }): Promise<Qemu> {
  const dir = await mkdtemp(join(tmpdir(), 'kvmlab-shim-'));
  const record = join(dir, 'exits.jsonl');
  const qmp = join(dir, 'qmp.sock');
  // Start from a clean environment as far as the shim is concerned.
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('KVMLAB_')) env[k] = v;
  Object.assign(env, { LD_PRELOAD: EXITS_SHIM_PATH }, opts.env);
  for (const [k, v] of Object.entries(env)) env[k] = v.replaceAll('@RECORD@', record);

  const args = [
    '-accel', 'kvm',
    ...(opts.cpuPm ? ['-overcommit', 'cpu-pm=on'] : []),
    '-S', '-display', 'none', '-nodefaults', '-machine', 'q35', '-m', '128',
    '-qmp', `unix:${qmp},server=on,wait=off`,
  ];
  const proc = execa(QEMU, args, { env, extendEnv: false, reject: false, all: true, stdin: 'ignore', buffer: true });
  let done = false;
  let out = '';
  proc.all?.on('data', (d: Buffer) => (out += d.toString()));
  void proc.then(() => (done = true));
  if (proc.pid === undefined) throw new Error(`${QEMU} did not start`);
  const q: Qemu = { proc, pid: proc.pid, dir, record, qmp, exited: () => done, output: () => out };
  running.add(q);
  return q;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function stopQemu(q: Qemu): Promise<void> {
  running.delete(q);
  if (!q.exited()) {
    q.proc.kill('SIGTERM');
    const deadline = Date.now() + 5_000;
    while (!q.exited() && Date.now() < deadline) await sleep(50);
    if (!q.exited()) q.proc.kill('SIGKILL');
    await q.proc;
  }
  await rm(q.dir, { recursive: true, force: true });
}

/** Polls the record until `want` finds what it needs; fails early if QEMU exits. */
async function waitForRecord<T>(q: Qemu, want: (recs: ShimRecord[]) => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: ShimRecord[] = [];
  for (;;) {
    const text = await readFile(q.record, 'utf8').catch(() => '');
    last = parseShimRecord(text, { allowPartialTail: true, source: q.record });
    const found = want(last);
    if (found !== undefined) return found;
    if (q.exited()) throw new Error(`${QEMU} exited before the record was complete; output:\n${q.output()}\nrecord: ${JSON.stringify(last)}`);
    if (Date.now() > deadline) throw new Error(`no matching record within ${timeoutMs} ms; record so far: ${JSON.stringify(last)}\nQEMU output:\n${q.output()}`);
    await sleep(50);
  }
}

async function waitForFile(q: Qemu, path: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await exists(path))) {
    if (q.exited()) throw new Error(`${QEMU} exited; output:\n${q.output()}`);
    if (Date.now() > deadline) throw new Error(`${path} did not appear within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * One QMP round trip: greeting, qmp_capabilities, query-cpus-fast. QMP answers only once the main
 * loop runs, i.e. after the machine and its vCPUs were created, so this is the point at which the
 * shim has seen every KVM_CREATE_VCPU it will see under -S.
 */
async function queryCpus(q: Qemu, timeoutMs = 20_000): Promise<unknown[]> {
  await waitForFile(q, q.qmp, timeoutMs);
  return new Promise((resolve, reject) => {
    const sock = connect(q.qmp);
    let buf = '';
    let step = 0;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`QMP on ${q.qmp} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('data', (d) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        if ('event' in msg) continue;
        if ('error' in msg) {
          clearTimeout(timer);
          sock.destroy();
          reject(new Error(`QMP error: ${JSON.stringify(msg)}`));
          return;
        }
        if (step === 0 && 'QMP' in msg) {
          step = 1;
          sock.write('{"execute":"qmp_capabilities"}\n');
        } else if (step === 1 && 'return' in msg) {
          step = 2;
          sock.write('{"execute":"query-cpus-fast"}\n');
        } else if (step === 2 && 'return' in msg) {
          clearTimeout(timer);
          sock.destroy();
          resolve(msg.return as unknown[]);
        }
      }
    });
  });
}

afterEach(async () => {
  for (const q of [...running]) await stopQemu(q);
});

// ---- tests ------------------------------------------------------------------------------------

describe.skipIf(skipReason !== undefined)('libkvmlab-exits.so under real QEMU', () => {
  let allowed = 0;
  let haltPollCap = 0;
  beforeAll(() => {
    if (typeof prepared === 'string') throw new Error(prepared);
    allowed = prepared.allowed;
    const hp = prepared.probe.caps?.halt_poll;
    haltPollCap = typeof hp === 'number' ? hp : 0;
    console.warn(`host allows ${formatMask(allowed)}; cpu-pm=on will request ${formatMask(cpuPmMask(allowed))}`);
  });

  const variants: ExitName[][] = [['hlt'], ['hlt', 'pause']];
  for (const names of variants) {
    const mask = maskOf(names);
    it(`cpu-pm=on with KVMLAB_DISABLE_EXITS=[${names.join(', ')}] applies ${formatMask(mask)}`, async () => {
      const q = await startQemu({
        cpuPm: true,
        env: { KVMLAB_DISABLE_EXITS: `0x${mask.toString(16)}`, KVMLAB_EXITS_RECORD: '@RECORD@' },
      });
      try {
        const rec = await waitForRecord(q, (rs) => rs.find((r) => r.event === 'disable_exits'));
        expect(rec.pid).toBe(q.pid);
        expect(rec.requested).toBe(cpuPmMask(allowed));
        expect(rec.applied).toBe(mask);
        if (missingBits(mask, allowed) === 0) {
          expect({ ret: rec.ret, errno: rec.errno }).toEqual({ ret: 0, errno: 0 });
        } else {
          expect({ ret: rec.ret, errno: rec.errno }).toEqual({ ret: -1, errno: EINVAL });
        }
        // Once QMP answers, every vCPU exists; nothing may say cpu-pm=on was missing.
        expect(await queryCpus(q)).toHaveLength(1);
        const all = await waitForRecord(q, (rs) => rs);
        expect(all.filter((r) => r.event === 'disable_exits')).toHaveLength(1);
        expect(all.filter((r) => r.event === 'disable_exits_not_requested')).toHaveLength(0);
        expect(all.filter((r) => r.event === 'config_error')).toHaveLength(0);
        expect(q.exited()).toBe(false);
      } finally {
        await stopQemu(q);
      }
    });
  }

  it('KVMLAB_HALT_POLL_NS=50000 sets the VM halt poll limit before the first vCPU', async () => {
    const q = await startQemu({
      cpuPm: true,
      env: { KVMLAB_DISABLE_EXITS: '0x2', KVMLAB_HALT_POLL_NS: '50000', KVMLAB_EXITS_RECORD: '@RECORD@' },
    });
    try {
      const recs = await waitForRecord(q, (rs) => (rs.some((r) => r.event === 'halt_poll') ? rs : undefined));
      const hp = recs.find((r) => r.event === 'halt_poll');
      const de = recs.find((r) => r.event === 'disable_exits');
      if (hp?.event !== 'halt_poll' || de?.event !== 'disable_exits') throw new Error(`records: ${JSON.stringify(recs)}`);
      expect(hp.ns).toBe(50_000);
      expect(hp.pid).toBe(q.pid);
      expect(hp.vm_fd).toBe(de.vm_fd); // the VM QEMU enabled the cap on
      expect(recs.indexOf(de)).toBeLessThan(recs.indexOf(hp)); // cap at kvm_init, halt poll at first vCPU
      if (haltPollCap > 0) expect({ ret: hp.ret, errno: hp.errno }).toEqual({ ret: 0, errno: 0 });
      else expect(hp.ret).toBe(-1);
      expect(await queryCpus(q)).toHaveLength(1);
      const all = await waitForRecord(q, (rs) => rs);
      expect(all.filter((r) => r.event === 'halt_poll')).toHaveLength(1);
    } finally {
      await stopQemu(q);
    }
  });

  it('without cpu-pm=on the record says the mask was wanted but never requested', async () => {
    const q = await startQemu({
      cpuPm: false,
      env: { KVMLAB_DISABLE_EXITS: '0x2', KVMLAB_EXITS_RECORD: '@RECORD@' },
    });
    try {
      const rec = await waitForRecord(q, (rs) => rs.find((r) => r.event === 'disable_exits_not_requested'));
      expect(rec.wanted).toBe(0x2);
      expect(rec.pid).toBe(q.pid);
      expect(await queryCpus(q)).toHaveLength(1);
      const all = await waitForRecord(q, (rs) => rs);
      expect(all.filter((r) => r.event === 'disable_exits')).toHaveLength(0);
      expect(all.filter((r) => r.event === 'disable_exits_not_requested')).toHaveLength(1);
    } finally {
      await stopQemu(q);
    }
  });

  it('with no KVMLAB_* variable the shim is loaded but writes nothing and QEMU runs', async () => {
    const q = await startQemu({ cpuPm: true, env: {} });
    try {
      expect(await queryCpus(q)).toHaveLength(1); // machine and vCPU created through the shim
      const maps = await readFile(`/proc/${q.pid}/maps`, 'utf8');
      expect(maps).toContain('libkvmlab-exits.so');
      await sleep(500);
      expect(q.exited()).toBe(false);
      expect(await exists(q.record)).toBe(false);
    } finally {
      await stopQemu(q);
    }
  });
});
