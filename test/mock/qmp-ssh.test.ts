// kvmlab's real QMP and SSH clients against the mock's real servers.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/backend/mock/mock-backend.js';
import { QmpClient, QmpError, QmpTimeoutError } from '../../src/backend/qmp-client.js';
import { generateClientKey, GuestDisconnectedError, SshGuest } from '../../src/backend/ssh-guest.js';
import type { Vm } from '../../src/backend/backend.js';
import { planVm } from '../../src/plan/vm.js';
import { parseExperiment } from '../../src/experiment/load.js';

const exp = parseExperiment('name: t\ndescription: d\nguest: { arch: x86_64, cpus: 2, maxcpus: 3 }\nsteps: [{ wait: 1 }]\n', 't.yaml');
const dirs: string[] = [];
let vm: Vm | undefined;

async function launch(): Promise<{ vm: Vm; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'kvmlab-test-'));
  dirs.push(dir);
  const backend = new MockBackend();
  const plan = planVm(exp.guest, exp.knobs, 'tcg', await backend.probe());
  vm = await backend.launch({ name: 'test', guest: exp.guest, plan, runDir: dir, logDir: dir, clientKey: generateClientKey() });
  return { vm, dir };
}

afterEach(async () => {
  await vm?.shutdown();
  vm = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('QMP client against the mock QMP server', () => {
  it('negotiates, correlates commands, and keeps a transcript', async () => {
    const { vm, dir } = await launch();
    const cpus = await vm.qmp.execute<{ 'thread-id': number; 'cpu-index': number }[]>('query-cpus-fast');
    expect(cpus.map((c) => c['cpu-index'])).toEqual([0, 1]);
    expect(vm.qmp.greeting).toHaveProperty('QMP');
    const transcript = readFileSync(join(dir, 'qmp.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(transcript.some((t) => t.dir === '>' && t.msg.execute === 'qmp_capabilities')).toBe(true);
    expect(transcript.some((t) => t.dir === '<' && Array.isArray(t.msg.return))).toBe(true);
  });

  it('turns QMP errors into typed errors carrying the command and arguments', async () => {
    const { vm } = await launch();
    const err = await vm.qmp.execute('device_del', { id: 'nope' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({ command: 'device_del', args: { id: 'nope' }, errorClass: 'DeviceNotFound' });
    await expect(vm.qmp.execute('no-such-command')).rejects.toMatchObject({ errorClass: 'CommandNotFound' });
  });

  it('waits for events by name and match, including ones that already arrived', async () => {
    const { vm } = await launch();
    const from = vm.qmp.lastSeq;
    await vm.qmp.execute('device_add', { driver: 'qemu64-x86_64-cpu', id: 'cpu2', 'socket-id': 0, 'core-id': 2, 'thread-id': 0 });
    const ost = await vm.qmp.waitForEvent('ACPI_DEVICE_OST', { info: { device: 'cpu2' } }, 5000, from);
    expect(ost.data).toMatchObject({ info: { source: 1, status: 0 } });
    await vm.qmp.execute('device_del', { id: 'cpu2' });
    const del = await vm.qmp.waitForEvent('DEVICE_DELETED', { device: 'cpu2' }, 5000, ost.seq);
    expect(del.data.path).toBe('/machine/peripheral/cpu2');
    // asking again after the fact finds the same event in the history
    expect((await vm.qmp.waitForEvent('DEVICE_DELETED', { device: 'cpu2' }, 10, ost.seq)).seq).toBe(del.seq);
    await expect(vm.qmp.waitForEvent('DEVICE_DELETED', { device: 'cpu9' }, 100)).rejects.toBeInstanceOf(QmpTimeoutError);
  });

  it('fails pending work when the connection closes', async () => {
    const { vm } = await launch();
    const waiting = vm.qmp.waitForEvent('NEVER', undefined, 60_000);
    await vm.qmp.execute('quit');
    await expect(waiting).rejects.toThrow(/connection closed/);
    await expect(vm.qmp.execute('query-status')).rejects.toThrow(/closed/);
  });

  it('gives up connecting to a socket nobody serves, with the path in the message', async () => {
    await expect(QmpClient.connect('/nonexistent/qmp.sock', { timeoutMs: 300 })).rejects.toThrow(/could not connect to QMP at \/nonexistent\/qmp\.sock/);
  });
});

describe('SSH guest channel against the mock SSH server', () => {
  it('runs commands with exit status, stdout and stderr, and records them', async () => {
    const { vm, dir } = await launch();
    await vm.waitReady(Date.now() + 10_000);
    const ok = await vm.guest.exec('cat /sys/devices/system/cpu/online', 5000);
    expect(ok).toMatchObject({ status: 0, stdout: '0-1\n', timedOut: false });
    const bad = await vm.guest.exec('echo 0 > /sys/devices/system/cpu/cpu0/online', 5000);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/can't create/);
    const missing = await vm.guest.exec('frobnicate', 5000);
    expect(missing.status).toBe(127);
    const log = readFileSync(join(dir, 'guest.jsonl'), 'utf8');
    expect(log).toContain('frobnicate');
  });

  it('refuses a guest whose host key is not the one expected', async () => {
    const { vm } = await launch();
    await vm.waitReady(Date.now() + 10_000);
    const port = (vm.guest as unknown as { opts: { port: number } }).opts.port;
    const key = generateClientKey();
    const impostor = new SshGuest({ host: '127.0.0.1', port, user: 'root', privateKey: key.privateKey, hostKey: generateClientKey().publicKey });
    await expect(impostor.waitReady(Date.now() + 3000)).rejects.toBeInstanceOf(GuestDisconnectedError);
    await expect(impostor.waitReady(Date.now() + 3000)).rejects.toThrow(/host key is not the one its image was built with/);
  });

  it('is refused by the guest with a client key it was not given', async () => {
    const { vm } = await launch();
    await vm.waitReady(Date.now() + 10_000);
    const opts = (vm.guest as unknown as { opts: { port: number; hostKey: string } }).opts;
    const stranger = new SshGuest({ host: '127.0.0.1', port: opts.port, user: 'root', privateKey: generateClientKey().privateKey, hostKey: opts.hostKey });
    await expect(stranger.waitReady(Date.now() + 1500)).rejects.toThrow(/did not answer SSH|authentication/i);
  });
});
