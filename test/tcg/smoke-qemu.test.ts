// Real QEMU under TCG through the CLI: the smoke experiment on x86_64, a pseries guest answering a
// command, a guest whose host key is not its image's (refused), and a QEMU that cannot start (the
// variant is an error naming the command line). After each run no QEMU it started may remain.
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateClientKey } from '../../src/backend/ssh-guest.js';
import { findExecutable } from '../../src/backend/probe.js';
import { RealHostView } from '../../src/backend/qemu/host-view.js';
import { imagesDir } from '../../src/backend/qemu/image.js';
import { qemuProcesses, qemuSkipReason, readSummary, ROOT, runCli } from './qemu-helpers.js';

const x86Skip = await qemuSkipReason('x86_64');
const ppcSkip = await qemuSkipReason('ppc64le');
if (x86Skip) console.warn(`smoke-qemu (x86_64) skipped: ${x86Skip}`);
if (ppcSkip) console.warn(`smoke-qemu (ppc64) skipped: ${ppcSkip}`);

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'kvmlab-tcg-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A small x86 experiment file in the temp dir. */
async function x86Experiment(name: string, guestExtra = ''): Promise<string> {
  const file = join(tmp, `${name}.yaml`);
  await writeFile(
    file,
    `name: ${name}\ndescription: a tiny x86_64 guest for the QEMU backend tests\nguest:\n  arch: x86_64\n  cpus: 1\n  ready_timeout: 120s\n${guestExtra}steps:\n  - name: uname\n    guest: uname -m\n`,
  );
  return file;
}

describe.skipIf(x86Skip !== undefined)('x86_64 under TCG', () => {
  it('runs the smoke experiment: boot, SSH, hotplug, online, offline, unplug', async () => {
    const out = join(tmp, 'smoke');
    const r = await runCli(['run', 'experiments/smoke-cpu-hotplug.yaml', '--backend', 'qemu', '--accel', 'tcg', '--out', out]);
    expect(await qemuProcesses('kvmlab-smoke-cpu-hotplug-')).toEqual([]);
    const summary = await readSummary(out, r);
    expect(summary.simulated).toBe(false);
    expect(summary.backend).toBe('qemu');
    expect(summary.accel).toBe('tcg');
    const v = summary.variants[0]!;
    const launch = JSON.parse(await readFile(join(v.repetitions[0]!.dir, 'launch.json'), 'utf8')) as { argv: string[] };
    const accel = launch.argv[launch.argv.indexOf('-accel') + 1];
    expect(accel).toMatch(/^tcg/);
    expect({ code: r.exitCode, status: v.status, failed: v.expectations.filter((e) => !e.passed) }, `${r.stdout}\n${r.stderr}`).toEqual({ code: 0, status: 'passed', failed: [] });
    // The eject completed: the lapic's DEVICE_DELETED and _OST "eject succeeded" are in the transcript.
    const qmp = await readFile(join(v.repetitions[0]!.dir, 'qmp.jsonl'), 'utf8');
    expect(qmp).toContain('"DEVICE_DELETED","data":{"path":"/machine/peripheral/cpu2/lapic"}');
    expect(qmp).toMatch(/"ACPI_DEVICE_OST","data":\{"info":\{"source":3,"status":0/);
    const metrics = await readFile(join(out, 'metrics.csv'), 'utf8');
    expect(metrics).toMatch(/,unplug,cpu2,unplug\.removed,1,bool/);
    // QEMU 7.2 under TCG does not send the CPU's own DEVICE_DELETED; say so when it is missing.
    if (/,unplug,cpu2,unplug\.deleted,0,bool/.test(metrics)) console.warn('smoke-qemu: the vCPU was ejected and removed, but QEMU sent no DEVICE_DELETED for the CPU device itself');
  }, 300_000);

  it('refuses a guest whose SSH host key is not the one its image says', async () => {
    const cache = join(tmp, 'cache-badkey');
    const dir = join(cache, 'images', 'x86_64');
    await mkdir(dir, { recursive: true });
    const real = join(imagesDir(), 'x86_64');
    for (const f of ['kernel', 'initrd.img', 'manifest.json']) await symlink(join(real, f), join(dir, f));
    await writeFile(join(dir, 'ssh_host_ed25519_key.pub'), `${generateClientKey().publicKey}\n`);
    const file = await x86Experiment('tcg-bad-host-key');
    const out = join(tmp, 'badkey');
    const r = await runCli(['run', file, '--backend', 'qemu', '--accel', 'tcg', '--out', out], { KVMLAB_CACHE: cache });
    expect(r.exitCode).toBe(3);
    const v = (await readSummary(out, r)).variants[0]!;
    expect(v.status).toBe('error');
    expect(v.reason).toMatch(/host key is not the one its image was built with/);
    expect(await qemuProcesses('kvmlab-tcg-bad-host-key-')).toEqual([]);
  }, 180_000);

  // A QEMU build of the user's as a host-axis value, played by a wrapper in a "build tree" that
  // execs the installed one: each variant launches its own QEMU, and says which ran it.
  it('a host axis with a QEMU of the user\'s: each variant launches the QEMU its label names', async () => {
    const build = join(tmp, 'qemu-build', 'build');
    await mkdir(build, { recursive: true });
    const installed = (await findExecutable(new RealHostView(), 'qemu-system-x86_64'))!;
    await writeFile(join(build, 'qemu-system-x86_64'), `#!/bin/sh\nexec ${installed} "$@"\n`, { mode: 0o755 });
    const file = await x86Experiment('qemu-axis', '');
    await writeFile(file, `${await readFile(file, 'utf8')}matrix:\n  host:\n    installed: {}\n    build: { qemu: qemu-build/build/qemu-system-x86_64 }\n`);
    const out = join(tmp, 'qemu-axis');
    const r = await runCli(['run', file, '--backend', 'qemu', '--accel', 'tcg', '--out', out]);
    expect(await qemuProcesses('kvmlab-qemu-axis-')).toEqual([]);
    const summary = await readSummary(out, r);
    expect(summary.variants.map((v) => [v.id, v.status])).toEqual([['host=installed', 'unchecked'], ['host=build', 'unchecked']]);
    const argv0 = await Promise.all(summary.variants.map(async (v) => (JSON.parse(await readFile(join(v.repetitions[0]!.dir, 'launch.json'), 'utf8')) as { argv: string[] }).argv[0]));
    expect(argv0).toEqual(['qemu-system-x86_64', join(build, 'qemu-system-x86_64')]);
    for (const v of summary.variants) expect(v.ranOn?.qemu).toMatch(/^\d+\.\d+\.\d+/);
    // the mock runs no QEMU: it skips the label that names one, saying so
    const mock = await runCli(['run', file, '--backend', 'mock', '--out', join(tmp, 'qemu-axis-mock')]);
    expect(mock.stderr).toMatch(/skipping host=build: host build runs the guest in the QEMU at qemu-build\/build\/qemu-system-x86_64; the mock simulates QEMU and runs none/);
    // --qemu cannot stand beside an axis that names QEMUs
    const refused = await runCli(['run', file, '--backend', 'qemu', '--qemu', join(build, 'qemu-system-x86_64'), '--out', join(tmp, 'qemu-axis-refused')]);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(/--qemu: the experiment's host axis chooses the QEMU of host build; drop --qemu/);
  }, 300_000);

  it('a QEMU that cannot start makes the variant an error carrying the command line', async () => {
    const file = await x86Experiment('tcg-launch-failure', '  cpu: no-such-cpu-model\n');
    const out = join(tmp, 'launchfail');
    const r = await runCli(['run', file, '--backend', 'qemu', '--accel', 'tcg', '--out', out]);
    expect(r.exitCode).toBe(3);
    const v = (await readSummary(out, r)).variants[0]!;
    expect(v.status).toBe('error');
    expect(v.reason).toMatch(/QEMU failed to start/);
    expect(v.reason).toMatch(/qemu-system-x86_64 -name kvmlab-tcg-launch-failure-\d+-1,debug-threads=on .*-cpu no-such-cpu-model/);
    expect(v.reason).toMatch(/unable to find CPU model 'no-such-cpu-model'/);
    const log = await readFile(join(v.repetitions[0]!.dir, 'qemu.log'), 'utf8');
    expect(log).toMatch(/QEMU exited with status 1/);
    expect(await qemuProcesses('kvmlab-tcg-launch-failure-')).toEqual([]);
  }, 120_000);
});

describe.skipIf(ppcSkip !== undefined)('ppc64 pseries under TCG', () => {
  it('boots kvmlab\'s ppc64le image and answers a guest command', async () => {
    const out = join(tmp, 'ppc');
    const r = await runCli(['run', join(ROOT, 'test/tcg/ppc64-uname.yaml'), '--backend', 'qemu', '--accel', 'tcg', '--out', out]);
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    const summary = await readSummary(out, r);
    expect(summary.simulated).toBe(false);
    const v = summary.variants[0]!;
    expect(v.status).toBe('passed');
    const steps = await readFile(join(v.repetitions[0]!.dir, 'steps.jsonl'), 'utf8');
    expect(steps).toContain('ppc64le');
    expect(await qemuProcesses('kvmlab-tcg-ppc64-uname-')).toEqual([]);
  }, 300_000);
});
