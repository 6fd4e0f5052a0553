// The x86 list-thread experiments on real KVM, in the KVM host kvmlab boots under TCG (`--on nested`):
// one repetition each, the cells a nested host can show checked from real rows, the cells it cannot
// show skipped with the reason. Needs root, an x86_64 host, QEMU and kvmlab's images; else skipped
// with the reason printed.
import { readFile, readdir, mkdtemp, rm } from 'node:fs/promises';
import { machine, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { BUILD_HINT, HOST_SCRIPTS_DIR } from '../../src/host/kvm-probe.js';
import { NESTED_IMAGE, nestedImageName } from '../../src/targets/nested-host.js';
import { imagesDir } from '../../src/backend/qemu/image.js';
import { cacheDir } from '../../src/util/cache-dir.js';
import { parseCsv } from '../../src/model/metrics.js';
import { qemuProcesses, qemuSkipReason, readSummary, runCli } from '../tcg/qemu-helpers.js';

async function skipReason(): Promise<string | undefined> {
  if (machine() !== 'x86_64') return `the nested KVM host is x86_64 and this host is ${machine()}`;
  if (process.getuid?.() !== 0) return 'not root';
  const q = await qemuSkipReason('x86_64');
  if (q) return q;
  // The run in L1 uses this checkout's native helpers (kvm-probe, the disable-exits shim).
  const made = await execa('make', ['-C', HOST_SCRIPTS_DIR], { reject: false, all: true });
  if (made.exitCode !== 0) throw new Error(`${BUILD_HINT} failed:\n${made.all}`);
  const img = join(imagesDir(), NESTED_IMAGE, 'initrd.img');
  return (await readFile(img).then(() => true, () => false)) ? undefined : `no nested KVM host image at ${img} (kvmlab image build --arch nested-host)`;
}

const skip = await skipReason();
if (skip) console.warn(`nested KVM host tests skipped: ${skip}`);

/** Debian's 6.12 kernel package, which the test of a user's own kernel unpacks as a build tree would leave it. */
const DEBS = join(cacheDir(), 'debs', 'x86_64');
const userKernelDeb = (await readdir(DEBS).catch(() => [] as string[])).find((f) => /^linux-image-6\.12\.[^_]*-amd64_.*\.deb$/.test(f));
if (!skip && !userKernelDeb) console.warn(`a kernel of the user's own: skipped: no linux-image-6.12 package in ${DEBS} (setup.sh fetches it for the 6.12 nested host)`);

// KVMLAB_TEST_KEEP=DIR keeps every run's results directory under DIR (test/bench/nested-tier.mjs reads them).
const keep = process.env.KVMLAB_TEST_KEEP;
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(keep ?? tmpdir(), 'kvmlab-nested-'));
});
afterAll(async () => {
  if (!keep) await rm(tmp, { recursive: true, force: true });
});

/** The value of one row of a results directory's metrics.csv. */
async function metric(out: string, variant: string, step: string, entity: string, name: string): Promise<number | undefined> {
  const { rows } = parseCsv(await readFile(join(out, 'metrics.csv'), 'utf8'));
  return rows.find((r) => r.variant === variant && r.step === step && r.entity === entity && r.metric === name)?.value;
}

/** The nested host failing as a machine, not KVM or kvmlab: it never came up, or reset by itself. */
const L1_FAILED = /--on nested: (L1 did not become ready|L1 exited \(status 0\) before the run in it finished: L1 reset)/;
/**
 * A last resort far above a healthy run (1-2 min; a wedge is caught in about 1.5), kept under half a
 * test's timeout so that a run and its retry end, process group and all, before vitest gives up.
 */
const RUN_LIMIT_MS = 700_000;
/** kvmlab's watchdog found the nested host wedged and stopped it. */
const L1_WEDGED = /--on nested: L1 wedged/;
/**
 * An L2 guest that reset by itself as it booted, a QEMU that exited 0 in silence (seen once in about
 * ten nested tiers, 2026-12-05: 3.6 s into the variant, on L1 6.12, while kvmlab listed its threads).
 * The SVM that L1's KVM runs on is TCG's emulation; a guest that resets on every try fails anyway.
 */
const L2_RESET = /QEMU exited with status 0 \((it printed nothing, as when the guest resets|the guest ended it: QMP SHUTDOWN reason guest-reset)/;

/**
 * `kvmlab run FILE --on nested`, tried once more when the emulated host failed as `retryOn` says:
 * said, with what kvmlab printed from that line on. A claim that fails is never retried.
 */
async function onL1(file: string, out: string, args: string[], retryOn: RegExp) {
  let r = await runCli(['run', file, '--on', 'nested', '--out', out, ...args], {}, RUN_LIMIT_MS);
  if (r.exitCode === 3 && retryOn.test(r.stderr)) {
    const at = r.stderr.search(retryOn);
    console.warn(`${file}: the nested host failed; running it once more. kvmlab said:\n${r.stderr.slice(r.stderr.lastIndexOf('\n', at) + 1)}`);
    out = `${out}-again`;
    r = await runCli(['run', file, '--on', 'nested', '--out', out, ...args], {}, RUN_LIMIT_MS);
  }
  return { r, out };
}

async function runNested(name: string, extra: string[] = [], outName = name) {
  const { r, out } = await onL1(`experiments/${name}.yaml`, join(tmp, outName), ['--repeat', '1', ...extra], new RegExp(`${L1_FAILED.source}|${L1_WEDGED.source}|${L2_RESET.source}`));
  const summary = await readSummary(out, r);
  expect(summary).toMatchObject({ simulated: false, backend: 'qemu', accel: 'kvm', target: { kind: 'nested' } });
  expect(await qemuProcesses('kvmlab-nested-host')).toEqual([]);
  return { r, out, summary, byId: new Map(summary.variants.map((v) => [v.id, v])) };
}

describe.skipIf(skip !== undefined)('list threads on KVM in the nested host', () => {
  it('offline-vcpu-idle: a passed-through MWAIT park burns the pCPU, an intercepted park sleeps, HLT cells skipped', async () => {
    const { r, out, byId } = await runNested('offline-vcpu-idle');
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(byId.get('disable_exits=mwait')!.status).toBe('passed');
    expect(byId.get('disable_exits=none')!.status).toBe('passed');
    for (const id of ['disable_exits=hlt', 'disable_exits=hlt+mwait']) expect(byId.get(id)!.reason).toMatch(/HLT passthrough is not run in a KVM host nested under TCG/);
    const passed = await metric(out, 'disable_exits=mwait', 'parked', 'vcpu1', 'vcpu.cpu_pct');
    const intercepted = await metric(out, 'disable_exits=none', 'parked', 'vcpu1', 'vcpu.cpu_pct');
    console.warn(`offline-vcpu-idle in the nested host: offlined vCPU thread ${passed} % with MWAIT passed through, ${intercepted} % intercepted`);
    expect(passed).toBeGreaterThanOrEqual(90);
    expect(intercepted).toBeLessThanOrEqual(5);
    // The mock, simulating this very host, agrees with its real KVM cell by cell.
    const mock = join(tmp, 'offline-vcpu-idle-mock');
    const m = await runCli(['run', 'experiments/offline-vcpu-idle.yaml', '--backend', 'mock', '--mock-host', 'nested-l1', '--repeat', '1', '-q', '--out', mock]);
    expect(m.exitCode, m.stderr).toBe(0);
    const agree = await runCli(['compare', mock, out, '--verdicts']);
    console.warn(`the mock (nested-l1) against the nested host:\n${agree.stdout}`);
    expect(agree.exitCode, agree.stdout).toBe(0);
  }, 1_500_000);

  // One cell, to keep CI within its time: the intercepted park is offline-vcpu-idle's none cell.
  it('idle-exit-policy: MWAIT exposed but intercepted spins through a storm of MWAIT exits', async () => {
    const storm = 'policy=mwait-exposed-intercepted,halt_poll_ns=0';
    const { r, out, byId } = await runNested('idle-exit-policy', ['--only', storm]);
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(byId.get(storm)!.status).toBe('passed');
    const mwaitExits = await metric(out, storm, 'parked', 'vcpu1', 'exits.mwait');
    expect(mwaitExits).toBeGreaterThanOrEqual(1000);
    console.warn(`idle-exit-policy in the nested host: ${mwaitExits} MWAIT exits of the offlined vCPU in 10 s`);
  }, 1_500_000);

  it('mwait-exit-storm: the in-kernel count of the MWAIT storm agrees with KVM\'s own', async () => {
    const { r, out, byId } = await runNested('mwait-exit-storm');
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    for (const v of byId.values()) expect(v.status, v.id).toBe('passed');
    const storm = await metric(out, 'mwait=intercepted', 'storm', 'vcpu1', 'exits.mwait');
    const kvm = await metric(out, 'mwait=intercepted', 'storm', 'vcpu1', 'exits.kvm_stat');
    const passed = await metric(out, 'mwait=passed', 'storm', 'vcpu1', 'exits.mwait');
    const passedAll = await metric(out, 'mwait=passed', 'storm', 'vcpu1', 'exits.total');
    console.warn(`mwait-exit-storm in the nested host: offlined vCPU ${storm} MWAIT exits in 10 s intercepted (KVM's exits: ${kvm}); passed through ${passed} MWAIT exits, ${passedAll} of any kind`);
    expect(storm!).toBeGreaterThanOrEqual(100 * Math.max(1, passed!));
  }, 1_500_000);

  // Seed 002 before and after a host kernel: the experiment's host axis boots one L1 per label —
  // Debian's 6.1, its 6.12, and 6.12 with rcutree.nocb_patience_delay — and merges their runs. The
  // 6.12 labels need the image setup.sh builds; without it they are left out, saying so.
  it('rcuc-isolated-pcpu on three L1s (6.1, 6.12, 6.12 with the patience delay): each variant ran on the host its label names, rcuc counted on the isolated vCPU pCPUs', async () => {
    const img612 = join(imagesDir(), nestedImageName('debian:6.12'), 'initrd.img');
    const has612 = await readFile(img612).then(() => true, () => false);
    if (!has612) console.warn(`rcuc-isolated-pcpu on Linux 6.12 skipped: no image at ${img612} (kvmlab image build --arch nested-host --kernel debian:6.12)`);
    const { r, out, summary } = await runNested('rcuc-isolated-pcpu', has612 ? [] : ['--where', 'host=v6.1'], 'rcuc');
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    const labels = has612 ? ['v6.1', 'v6.12', 'v6.12-patience'] : ['v6.1'];
    expect(summary.variants.map((v) => v.id)).toEqual(labels.map((l) => `host=${l}`));
    for (const v of summary.variants) {
      const label = v.labels.host!;
      // what L1 reported once booted, not what was asked for
      expect(v.ranOn?.kernel).toMatch(label === 'v6.1' ? /^6\.1\./ : /^6\.12\./);
      expect(v.ranOn?.cmdline.includes('rcutree.nocb_patience_delay=5000')).toBe(label === 'v6.12-patience');
      expect(await readFile(join(out, 'hosts', label, 'nested-console.log'), 'utf8')).toMatch(/kvmlab-nested: ready/);
      const rows = await Promise.all(['trace.rcu_ticks', 'trace.rcuc_wakeups', 'trace.rcuc_tick_wakeups', 'trace.rcuc_preemptions'].map(async (m) => [m, await metric(out, v.id, 'busy', 'pcpu2', m), await metric(out, v.id, 'busy', 'pcpu3', m)] as const));
      console.warn(`rcuc-isolated-pcpu on L1 ${v.ranOn?.kernel}${label === 'v6.12-patience' ? ' with nocb_patience_delay=5000' : ''}, busy 10 s, pcpu2 and pcpu3: ${rows.map(([m, a, b]) => `${m} ${a}, ${b}`).join('; ')}`);
      // the rows are the measurement: present on both isolated pCPUs whatever they count
      for (const [, a, b] of rows) for (const n of [a, b]) expect(n).toBeTypeOf('number');
    }
    expect(await qemuProcesses('kvmlab-nested-host')).toEqual([]);
  }, 1_500_000);

  // A kernel developer's own build, played here by Debian's 6.12 package unpacked as a build tree
  // would leave it (bzImage; lib/modules/RELEASE from modules_install): run builds its image and boots it.
  it.skipIf(userKernelDeb === undefined)('a kernel of the user\'s own: --host-kernel PATH --host-modules DIR boots L1 on it, leaving their tree as it was', async () => {
    const deb = userKernelDeb!;
    const tree = join(tmp, 'user-kernel');
    await execa('dpkg-deb', ['-x', join(DEBS, deb), tree]);
    const release = (await readdir(join(tree, 'usr/lib/modules')))[0]!;
    const modules = join(tree, 'usr/lib/modules', release);
    const before = (await readdir(modules)).sort();
    const { r, summary } = await runNested('offline-vcpu-idle', ['--only', 'disable_exits=none', '--host-kernel', join(tree, 'boot', `vmlinuz-${release}`), '--host-modules', modules], 'user-kernel-run');
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stderr).toMatch(/nested host: building its image with .*vmlinuz-/);
    expect(summary.target?.kind === 'nested' && summary.target.l1.kernel).toBe(release);
    expect(summary.variants[0]!.ranOn?.kernel).toBe(release);
    expect((await readdir(modules)).sort()).toEqual(before);
  }, 1_500_000);
});

describe.skipIf(skip !== undefined)('a wedged nested host', () => {
  it('ends the run with exit 3 within about a minute of the wedge, naming what L1 last did, and leaves nothing running', async () => {
    // a wedge is what this run is for: only a host that failed otherwise is tried again
    const { r, out } = await onL1('test/kvm/nested-wedge.yaml', join(tmp, 'wedge'), ['--allow-host-commands'], L1_FAILED);
    expect(r.exitCode, r.stderr).toBe(3);
    // the step is named by the heartbeat's last stage or, where a beat was not seen in time, by the last progress line
    const m = /--on nested: L1 wedged: kvmlab in L1 stopped: no heartbeat for (\d+) s; kvmlab in L1 was at "([^"]*)" \(for \d+ s\)(; its last progress line: "([^"]*)")?/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    expect(m![4] ?? m![2], r.stderr).toMatch(/variant 1\/1 default: step 1\/1 freeze$/);
    console.warn(`a wedged nested host: the run in L1 stopped at step freeze and was ended ${m![1]} s after its last heartbeat${m![4] ? ` (its heartbeat said "${m![2]}")` : ''}`);
    expect(await qemuProcesses('kvmlab-nested-host')).toEqual([]);
    // What L1 wrote before the wedge is kept, and the console says what L0 did.
    expect(await readFile(join(out, 'variants/default/rep-1/launch.json'), 'utf8')).toMatch(/"argv"/);
    expect(await readFile(join(out, 'nested-console.log'), 'utf8')).toMatch(/kvmlab \(L0\): L1 wedged/);
  }, 1_500_000);
});

describe('--on nested without its image', () => {
  it('exits 3 naming the command that builds it', async () => {
    const r = await runCli(['run', 'experiments/offline-vcpu-idle.yaml', '--on', 'nested', '--out', join(tmpdir(), `kvmlab-nested-noimage-${process.pid}`)], { KVMLAB_CACHE: join(tmpdir(), `kvmlab-no-cache-${process.pid}`) });
    expect(r.exitCode, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/no nested KVM host image .*kvmlab image build --arch nested-host/);
  });
});
