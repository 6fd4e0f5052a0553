// `kvmlab plan`: what `run` would do, from the code run uses, with nothing done. The guest images and
// the QEMU binaries it sees are stand-ins: a QEMU that marks a file if anything ever executes it, so
// a plan that started one would show, and nothing can boot whatever this host is.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { generateClientKey } from '../../src/backend/ssh-guest.js';
import { QemuBackend } from '../../src/backend/qemu/qemu-backend.js';
import { chooseAccel } from '../../src/plan/accel.js';
import { NESTED_HLT_REASON, unmetRequirements } from '../../src/run/preflight.js';
import { loadExperiment } from '../../src/experiment/load.js';
import { expandMatrix } from '../../src/experiment/matrix.js';
import { nestedShape } from '../../src/targets/nested-host.js';

const root = new URL('../..', import.meta.url).pathname;
const cli = join(root, 'dist/cli.js');
const tmp = mkdtempSync(join(tmpdir(), 'kvmlab-plan-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const dir = (name: string) => {
  const d = join(tmp, name);
  mkdirSync(d, { recursive: true });
  return d;
};
const experiment = (name: string) => join(root, 'experiments', name);

// QEMU stand-ins: executing one leaves a mark, and boots nothing.
const bin = dir('bin');
const marker = join(tmp, 'qemu-was-executed');
for (const b of ['qemu-system-x86_64', 'qemu-system-ppc64']) writeFileSync(join(bin, b), `#!/bin/sh\necho "$0 $*" >> ${marker}\nexit 1\n`, { mode: 0o755 });

// Image stand-ins in a cache of their own: kvmlab's guest image and the nested host's.
const cache = dir('cache');
const image = dir('cache/images/x86_64');
for (const f of ['kernel', 'initrd.img']) writeFileSync(join(image, f), '');
writeFileSync(join(image, 'ssh_host_ed25519_key.pub'), `${generateClientKey().publicKey}\n`);
writeFileSync(join(image, 'manifest.json'), JSON.stringify({ arch: 'x86_64', kernelVersion: '6.1.0-test-amd64' }));
const nestedImage = dir('cache/images/nested-host');
for (const f of ['kernel', 'initrd.img']) writeFileSync(join(nestedImage, f), '');
writeFileSync(join(nestedImage, 'manifest.json'), JSON.stringify({ arch: 'x86_64', kernelVersion: '6.1.0-l1-amd64' }));
const nestedImage612 = dir('cache/images/nested-host-linux-6.12');
for (const f of ['kernel', 'initrd.img']) writeFileSync(join(nestedImage612, f), '');
writeFileSync(join(nestedImage612, 'manifest.json'), JSON.stringify({ arch: 'x86_64', kernelVersion: '6.12.9-l1-amd64' }));

// Where a plan could write if it wrote anything: its journal's state directory, $TMPDIR, its cwd.
const state = dir('state');
const scratch = dir('scratch');
const cwd = dir('cwd');
const env = { PATH: `${bin}:${process.env.PATH}`, KVMLAB_CACHE: cache, KVMLAB_STATE_DIR: state, TMPDIR: scratch };
const TRACEFS_INSTANCES = '/sys/kernel/tracing/instances';
const instances = () => (existsSync(TRACEFS_INSTANCES) ? readdirSync(TRACEFS_INSTANCES) : []);
const instancesBefore = instances();
const planPids: number[] = [];

async function plan(...args: string[]) {
  const r = execa('node', [cli, 'plan', ...args], { reject: false, cwd, stdin: 'ignore', env });
  if (r.pid !== undefined) planPids.push(r.pid);
  return r;
}
const planJson = async (...args: string[]) => {
  const r = await plan(...args, '--json');
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
};
const noStack = (s: string) => expect(s).not.toMatch(/^\s+at .*\(.*:\d+:\d+\)$/m);

interface Planned {
  id: string;
  verdict: string;
  reasons: string[];
  plan: { disableExitsMask: number; mwaitInCpuid: boolean; guestVendor?: string } | null;
  argv: string[] | null;
  env: Record<string, string>;
  commandLine: string | null;
  simulated?: { cpus: number; cmdline: string };
  estimatedSeconds: number;
}

describe('kvmlab plan on the mock backend', () => {
  it('lists every variant in matrix order with the ids run gives them, and the plan the mock carries out', async () => {
    const file = experiment('idle-exit-policy.yaml');
    const out = join(tmp, 'mock-run');
    const running = execa('node', [cli, 'run', file, '--backend', 'mock', '--repeat', '1', '-q', '--out', out], { reject: false, cwd: root, stdin: 'ignore' });
    const doc = await planJson(file, '--backend', 'mock', '--repeat', '1');
    const ids = doc.variants.map((v: Planned) => v.id);
    expect(ids).toEqual(expandMatrix((await loadExperiment(file)).experiment).map((v) => v.id));
    const r = await running;
    expect(r.exitCode, r.stderr).toBe(0);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.variants.map((v: { id: string }) => v.id)).toEqual(ids);
    // What the mock took effect with is what the plan says: the same VmPlan.
    for (const [i, v] of (doc.variants as Planned[]).entries()) {
      const effective = summary.variants[i].repetitions[0].effective;
      expect(v.verdict).toBe('runnable');
      expect(v.argv, v.id).toBeNull();
      expect({ mask: v.plan?.disableExitsMask, mwait: v.plan?.mwaitInCpuid }, v.id).toEqual({ mask: effective.disableExitsMask, mwait: effective.mwaitInGuestCpuid });
      expect(v.simulated?.cmdline).toMatch(/kvmlab\.authkey=<authkey>/);
      const cmdline = v.simulated!.cmdline.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace('<authkey>', '\\S+');
      expect(effective.argv, v.id).toContainEqual(expect.stringMatching(new RegExp(`^-append ${cmdline}$`)));
    }
    expect(doc).toMatchObject({ backend: 'mock', simulated: true, estimate: { clock: 'virtual' } });
  });

  it('--json is one JSON document on stdout and nothing on stderr; the estimate is the declared windows times the repetitions', async () => {
    const r = await plan(experiment('offline-vcpu-idle.yaml'), '--backend', 'mock', '--json');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const doc = JSON.parse(r.stdout);
    expect(doc.variants).toHaveLength(4);
    // 5 s and 10 s sample windows, three repetitions, on the mock's virtual clock
    for (const v of doc.variants as Planned[]) expect(v.estimatedSeconds, v.id).toBe(45);
    expect(doc.estimate.seconds).toBe(180);
  });

  it('reads as text: a block per variant with its plan, and the placeholders said once', async () => {
    const r = await plan(experiment('offline-vcpu-idle.yaml'), '--backend', 'mock', '--only', 'disable_exits=mwait');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^variant 1\/1 disable_exits=mwait$/m);
    expect(r.stdout).toMatch(/disabled exits 0x1 \(mwait\).*MWAIT in guest CPUID: yes; guest vendor: GenuineIntel/);
    expect(r.stdout.match(/^ {2}<authkey> /gm)).toHaveLength(1);
    expect(r.stdout).toMatch(/^total: 1 of 1 variant would run, 3 runs/m);
  });
});

describe('kvmlab plan says what run would refuse before booting, and still plans (exit 0)', () => {
  it('a pinning to a host CPU the host lacks, and a host step without --allow-host-commands', async () => {
    const smoke = readFileSync(experiment('smoke-cpu-hotplug.yaml'), 'utf8').replace(/^steps:\n/m, 'steps:\n  - host: ["true"]\n');
    const file = join(tmp, 'refused.yaml');
    writeFileSync(file, `${smoke}pinning:\n  vcpupin: { "1": "64" }\n`);
    const doc = await planJson(file, '--backend', 'mock');
    expect(doc.refusals).toEqual([
      { exitCode: 2, reason: expect.stringMatching(/step "01-host" runs a command on the host; kvmlab runs host commands only with --allow-host-commands$/) },
      { exitCode: 3, reason: expect.stringMatching(/pinning\.vcpupin\.1 pins vCPU 1 to host CPU 64, but this simulated host has CPUs 0-7/) },
    ]);
    expect((await plan(file, '--backend', 'mock')).stdout).toMatch(/^total: nothing would run as given \(refused above\)/m);
  });
});

describe('kvmlab plan with real QEMU on this host', () => {
  const file = experiment('offline-vcpu-idle.yaml');

  it('shows for [hlt] under --accel kvm the command launch builds: cpu-pm=on and the shim with mask 0x2', async () => {
    const doc = await planJson(file, '--backend', 'qemu', '--accel', 'kvm');
    const hlt = (doc.variants as Planned[]).find((v) => v.id === 'disable_exits=hlt')!;
    expect(hlt.argv![0]).toBe('qemu-system-x86_64');
    expect(hlt.argv!.join(' ')).toContain('-overcommit cpu-pm=on');
    expect(hlt.env.KVMLAB_DISABLE_EXITS).toBe('0x2');
    expect(hlt.commandLine).toMatch(/^LD_PRELOAD=\S+ KVMLAB_EXITS_RECORD='<run-dir>\/exits\.jsonl' KVMLAB_DISABLE_EXITS=0x2 qemu-system-x86_64 /);
    expect(hlt.argv).toContain(`-kernel`);
    expect(hlt.argv![hlt.argv!.indexOf('-kernel') + 1]).toBe(join(image, 'kernel'));
    expect(hlt.argv!.join(' ')).toContain('hostfwd=tcp:127.0.0.1:<port>-:22');
    expect(hlt.argv!.join(' ')).toContain('file:<out>/variants/disable_exits=hlt/rep-<rep>/console.log');
    expect(hlt.argv!.join(' ')).toContain('kvmlab.authkey=<authkey>');
    expect(Object.keys(doc.placeholders)).toEqual(expect.arrayContaining(['<port>', '<run-dir>', '<out>', '<authkey>']));
  });

  it('gives the reasons run gives, from the same preflight', async () => {
    const doc = await planJson(file, '--backend', 'qemu', '--accel', 'kvm');
    const { experiment: exp } = await loadExperiment(file);
    const facts = await new QemuBackend().probe();
    const { accel } = chooseAccel('kvm', exp.guest.arch, facts);
    const expected = await Promise.all(expandMatrix(exp).map((v) => unmetRequirements(exp, v.knobs, facts, accel)));
    expect((doc.variants as Planned[]).map((v) => v.reasons)).toEqual(expected);
    expect((doc.variants as Planned[]).map((v) => v.verdict)).toEqual(expected.map((r) => (r.length ? 'skipped' : 'runnable')));
    if (!expected.every((r) => r.length > 0)) return;
    // Every variant is skipped here, so a real run boots nothing: what it records must be the same.
    const out = join(tmp, 'qemu-run');
    const run = await execa('node', [cli, 'run', file, '--backend', 'qemu', '--accel', 'kvm', '-q', '--out', out], { reject: false, cwd: root, stdin: 'ignore', env: { ...env, KVMLAB_STATE_DIR: dir('run-state'), TMPDIR: dir('run-tmp') } });
    expect(run.exitCode, run.stderr).toBe(3);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.variants.map((v: { id: string; reason?: string }) => [v.id, v.reason])).toEqual((doc.variants as Planned[]).map((v) => [v.id, v.reasons.join('; ')]));
    const text = await plan(file, '--backend', 'qemu', '--accel', 'kvm');
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toMatch(/^total: no variant would run here: run would skip every one/m);
  });

  it('--on nested shows L1\'s command line and skips what no L1 can run (HLT passthrough); the rest is decided inside L1', async () => {
    const doc = await planJson(file, '--on', 'nested');
    const { experiment: exp } = await loadExperiment(file);
    const shape = nestedShape(exp);
    expect(doc.nested[0].argv[0]).toBe(join(bin, 'qemu-system-x86_64'));
    expect(doc.nested[0].argv.join(' ')).toContain(`-cpu max -smp ${shape.cpus} -m ${shape.memoryMiB}M`);
    expect(doc.nested[0].argv).toContain(join(nestedImage, 'kernel'));
    expect(doc.nested[0].inside.join(' ')).toContain('run');
    expect(doc.nested[0].inside.join(' ')).toContain('--backend qemu --accel kvm --out <out>');
    expect(doc.nested[0].decidedInside).toMatch(/inside L1/);
    const verdicts = Object.fromEntries((doc.variants as Planned[]).map((v) => [v.id, [v.verdict, v.reasons]]));
    expect(verdicts).toEqual({
      'disable_exits=none': ['decided inside L1', []],
      'disable_exits=hlt': ['skipped', [NESTED_HLT_REASON]],
      'disable_exits=mwait': ['decided inside L1', []],
      'disable_exits=hlt+mwait': ['skipped', [NESTED_HLT_REASON]],
    });
    const mwait = (doc.variants as Planned[]).find((v) => v.id === 'disable_exits=mwait')!;
    expect(mwait.env.KVMLAB_DISABLE_EXITS).toBe('0x1');
    expect(mwait.plan?.guestVendor).toBe('GenuineIntel');
  });

  it('--on nested with a host axis plans one L1 per label, each with its kernel and boot parameters, and holds each label to the L1 it gets', async () => {
    const hosts = join(tmp, 'host-axis.yaml');
    writeFileSync(
      hosts,
      `${readFileSync(file, 'utf8').replace(/^matrix:\n/m, 'matrix:\n  host:\n    before: { kernel: "debian:6.1" }\n    after: { kernel: "debian:6.12", cmdline: "rcutree.nocb_patience_delay=1000" }\n')}`,
    );
    const doc = await planJson(hosts, '--on', 'nested');
    expect(doc.nested.map((l: { hosts: string[]; variants: string[] }) => [l.hosts.join(), l.variants])).toEqual([
      ['before', ['host=before,disable_exits=none', 'host=before,disable_exits=hlt', 'host=before,disable_exits=mwait', 'host=before,disable_exits=hlt+mwait']],
      ['after', ['host=after,disable_exits=none', 'host=after,disable_exits=hlt', 'host=after,disable_exits=mwait', 'host=after,disable_exits=hlt+mwait']],
    ]);
    // debian:6.1 is the default image's series: no second image
    expect(doc.nested[0].argv).toContain(join(nestedImage, 'kernel'));
    expect(doc.nested[1].argv).toContain(join(nestedImage612, 'kernel'));
    expect(doc.nested[1].argv.join(' ')).toMatch(/-append \S.* rcutree\.nocb_patience_delay=1000/);
    expect(doc.nested[1].inside.join(' ')).toContain('--out <out>/hosts/after --force --where host=after');
    expect((doc.variants as Planned[]).map((v) => v.verdict)).toEqual(['decided inside L1', 'skipped', 'decided inside L1', 'skipped', 'decided inside L1', 'skipped', 'decided inside L1', 'skipped']);
    // --host-kernel cannot override a host axis that chooses kernels
    const refused = await plan(hosts, '--on', 'nested', '--host-kernel', 'debian:6.12');
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(/host axis chooses the kernel of host before; drop --host-kernel/);
    // --where picks one label
    const after = await planJson(hosts, '--on', 'nested', '--where', 'host=after');
    expect(after.nested).toHaveLength(1);
    // a local run runs a label only on a host that is what it names
    const local = await planJson(hosts, '--backend', 'mock');
    const reasons = Object.fromEntries((local.variants as Planned[]).map((v) => [v.id, v.reasons.join('; ')]));
    expect(reasons['host=before,disable_exits=none']).toMatch(/^host before runs kernel 6\.1; the simulated host runs 6\.12\.0-kvmlab-sim \(kvmlab run --on nested boots a host that is/);
    expect(reasons['host=after,disable_exits=none']).toMatch(/^host after boots with rcutree\.nocb_patience_delay=1000, which the simulated host's \/proc\/cmdline lacks/);
  });

  it('applies the vendor rule before L1 boots: an AMD-vendor guest (L1 is TCG\'s -cpu max) is skipped for MWAIT', async () => {
    const amd = join(tmp, 'amd-vendor.yaml');
    writeFileSync(amd, readFileSync(file, 'utf8').replace(/^ {2}cpu: host,vendor=GenuineIntel,.*$/m, '  cpu: host'));
    const doc = await planJson(amd, '--on', 'nested', '--only', 'disable_exits=mwait');
    expect(doc.variants[0].verdict).toBe('skipped');
    expect(doc.variants[0].reasons.join()).toMatch(/guest CPU vendor is AuthenticAMD/);
  });
});

describe('kvmlab plan follows the exit table', () => {
  it('2 for bad input: --only matching nothing, a file that cannot be read, a bad --repeat, the mock --on nested', async () => {
    const cases: [string[], RegExp][] = [
      [[experiment('offline-vcpu-idle.yaml'), '--backend', 'mock', '--only', 'nope*'], /--only nope\* matches no variant; variants are: disable_exits=none/],
      [[join(tmp, 'missing.yaml')], /missing\.yaml: cannot read it \(ENOENT\)/],
      [[experiment('offline-vcpu-idle.yaml'), '--repeat', '0'], /--repeat 0: give a whole number from 1 to 1000/],
      [[experiment('offline-vcpu-idle.yaml'), '--on', 'nested', '--backend', 'mock'], /drop --backend mock/],
    ];
    const results = await Promise.all(cases.map(([args]) => plan(...args)));
    for (const [i, [args, message]] of cases.entries()) {
      const r = results[i]!;
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
      noStack(r.stderr);
    }
  });

  it('3 when it could not: QEMU not installed with --backend qemu, no guest image (naming the command that builds it)', async () => {
    const bare = dir('bare-bin');
    const node = join(bare, 'node');
    if (!existsSync(node)) await execa('ln', ['-s', process.execPath, node]);
    const [noQemu, noImage] = await Promise.all([
      execa('node', [cli, 'plan', experiment('offline-vcpu-idle.yaml'), '--backend', 'qemu'], { reject: false, cwd, stdin: 'ignore', env: { ...env, PATH: bare } }),
      execa('node', [cli, 'plan', experiment('offline-vcpu-idle.yaml'), '--backend', 'qemu'], { reject: false, cwd, stdin: 'ignore', env: { ...env, KVMLAB_CACHE: dir('empty-cache') } }),
    ]);
    expect(noQemu.exitCode).toBe(3);
    expect(noQemu.stderr).toMatch(/--backend qemu: qemu-system-x86_64 is not installed .*apt-get install qemu-system-x86/);
    expect(noImage.exitCode).toBe(3);
    expect(noImage.stderr).toMatch(/no kvmlab guest image for x86_64 .*kvmlab image build --arch x86_64/);
    noStack(noQemu.stderr + noImage.stderr);
  });
});

describe('kvmlab plan changes nothing', () => {
  it('started no QEMU, took no journal, wrote no file and made no tracefs instance', async () => {
    // These, and every plan of this file before them.
    const variants = [['--backend', 'mock'], ['--backend', 'qemu', '--accel', 'kvm'], ['--backend', 'qemu', '--accel', 'tcg'], ['--on', 'nested']];
    const results = await Promise.all(variants.map((args) => plan(experiment('offline-vcpu-idle.yaml'), ...args)));
    for (const [i, args] of variants.entries()) expect(results[i]!.exitCode, `${args.join(' ')}: ${results[i]!.stderr}`).toBe(0);
    expect(existsSync(marker), existsSync(marker) ? readFileSync(marker, 'utf8') : '').toBe(false);
    expect(readdirSync(state)).toEqual([]);
    expect(readdirSync(scratch)).toEqual([]);
    expect(readdirSync(cwd)).toEqual([]);
    // Another kvmlab on this machine may hold instances of its own (named by its pid): only a plan's count.
    const ours = (names: string[]) => names.filter((n) => !/^kvmlab-\d+-/.test(n) || planPids.includes(Number(n.split('-')[1])));
    expect(ours(instances())).toEqual(ours(instancesBefore));
  });
});
