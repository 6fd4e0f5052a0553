// `--on ssh://`: kvmlab run, probe and cleanup on a lab box, here a real OpenSSH sshd on 127.0.0.1
// that the test starts with its own config and keys (test/tcg/sshd.ts). kvmlab ships itself there,
// runs there, and brings the results directory back; the box's host key is checked, never trusted
// on first use; a dropped connection or Ctrl-C here leaves the box with no QEMU and no tracefs
// instance. Skipped, with the reason printed, without root or sshd; the real-QEMU cases also
// without QEMU and its guest image.
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { CLI, qemuSkipReason, ROOT, readSummary, runCli } from './qemu-helpers.js';
import { sshdSkipReason, startSshd, type Sshd } from './sshd.js';

const T = '/sys/kernel/tracing';
const skip = sshdSkipReason();
if (skip) console.warn(`ssh-box: skipped: ${skip}`);
const qemuSkip = skip ?? (await qemuSkipReason('x86_64'));
if (!skip && qemuSkip) console.warn(`ssh-box: the real-QEMU cases are skipped: ${qemuSkip}`);
const tracefsSkip = await access(`${T}/instances`, constants.W_OK).then(() => undefined, () => `no writable ${T}/instances`);
if (!qemuSkip && tracefsSkip) console.warn(`ssh-box: the cut-off cases are skipped: ${tracefsSkip} (they prove no tracefs instance is left)`);

/** Every process on this host (the box) whose command line (arguments joined by spaces) contains `text`. */
async function processesWith(text: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replace(/\0/g, ' ');
    if (cmdline.includes(text)) found.push(`${pid}: ${cmdline.slice(0, 160)}`);
  }
  return found;
}

async function until<T>(what: string, timeoutMs: number, f: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(skip !== undefined)('--on ssh:// against a real sshd on 127.0.0.1', () => {
  let sshd: Sshd;
  let scratch: string;
  let fp: string;
  const on = () => ['--on', sshd.box, '--ssh-key', sshd.clientKey];
  const env = () => ({ HOME: sshd.home, SSH_AUTH_SOCK: '' });

  beforeAll(async () => {
    sshd = await startSshd();
    scratch = await mkdtemp(join(tmpdir(), 'kvmlab-ssh-box-'));
    fp = (await execa('ssh-keygen', ['-lf', '-'], { input: sshd.hostKeyLine })).stdout.split(' ')[1]!;
  });
  afterAll(async () => {
    await sshd?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('refuses a box whose host key is not in known_hosts, and names the key to check', async () => {
    const r = await runCli(['probe', ...on()], { HOME: sshd.strangerHome, SSH_AUTH_SOCK: '' }, 60_000);
    expect(r.exitCode, r.stderr).toBe(3);
    expect(r.stderr).toContain('never trusts a host key on first use');
    expect(r.stderr).toContain(fp);
  });

  it('takes the box by its fingerprint (--host-key), and refuses another', async () => {
    const wrong = `SHA256:${'A'.repeat(43)}`;
    const bad = await runCli(['probe', ...on(), '--host-key', wrong], { HOME: sshd.strangerHome, SSH_AUTH_SOCK: '' }, 60_000);
    expect(bad.exitCode, bad.stderr).toBe(3);
    expect(bad.stderr).toContain(`not the ${wrong}`);
    const good = await runCli(['probe', ...on(), '--host-key', fp, '--json'], { HOME: sshd.strangerHome, SSH_AUTH_SOCK: '' }, 120_000);
    expect(good.exitCode, good.stderr).toBe(0);
    const probed = JSON.parse(good.stdout) as { arch: string; simulated: boolean };
    expect(probed.simulated).toBe(false);
  });

  it('a mock run on the box comes back complete, labelled with the box', async () => {
    const out = join(scratch, 'mock');
    const r = await runCli(['run', 'experiments/smoke-cpu-hotplug.yaml', ...on(), '--backend', 'mock', '--out', out], env(), 120_000);
    expect(r.exitCode, r.stderr).toBe(0);
    const s = await readSummary(out);
    expect(s.target).toEqual({ kind: 'ssh', box: sshd.box, hostKey: fp });
    expect(s.simulated).toBe(true);
    for (const f of ['summary.json', 'summary.md', 'metrics.csv', 'index.html', 'experiment.yaml', 'variants/default/rep-1/steps.jsonl']) await access(join(out, f));
    expect(r.stdout).toContain(`on lab box ${sshd.box}, run over SSH`);
    expect(r.stdout).toContain(`results: ${out}`);
  });

  it.skipIf(qemuSkip !== undefined)('a real run of smoke-cpu-hotplug on the box passes its claims, its results brought back', async () => {
    const out = join(scratch, 'qemu');
    const r = await runCli(['run', 'experiments/smoke-cpu-hotplug.yaml', ...on(), '--backend', 'qemu', '--out', out], env(), 300_000);
    expect(r.exitCode, r.stderr).toBe(0);
    const s = await readSummary(out);
    expect(s.target?.kind).toBe('ssh');
    expect(s.simulated).toBe(false);
    expect(s.variants.map((v) => v.status)).toEqual(['passed']);
    for (const f of ['launch.json', 'qmp.jsonl', 'guest.jsonl', 'steps.jsonl', 'console.log']) await access(join(out, 'variants/default/rep-1', f));
    // nothing of the run is left on the box: its directory there was removed once brought back
    expect(await processesWith('kvmlab-box-')).toEqual([]);
  }, 320_000);

  describe.skipIf(qemuSkip !== undefined || tracefsSkip !== undefined)('a run cut off from here leaves the box clean', () => {
    /** The smoke experiment with a tracefs collector, so there is an instance to leave behind. */
    let file: string;
    beforeAll(async () => {
      const smoke = await readFile(join(ROOT, 'experiments/smoke-cpu-hotplug.yaml'), 'utf8');
      file = join(scratch, 'smoke-traced.yaml');
      await writeFile(file, smoke.replace('  vcpu-cpu: { interval: 100ms }', '  vcpu-cpu: { interval: 100ms }\n  tracefs: { events: [sched:sched_switch] }').replace('sample: 2s', 'sample: 60s'));
    });

    /** Starts the run and returns once kvmlab on the box has its QEMU and tracefs instance: the box's kvmlab pid. */
    async function startCut(out: string) {
      const child = spawn(process.execPath, [CLI, 'run', file, ...on(), '--backend', 'qemu', '--out', out], { cwd: ROOT, env: { ...process.env, ...env() }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      const ws = await until('the box names its working directory', 120_000, async () => /working in (\/\S+) there/.exec(stderr)?.[1]);
      // kvmlab itself, not the shell that copied the experiment file there a moment before
      const boxPid = await until("kvmlab's process on the box", 30_000, async () => (await processesWith(`cli.js run ${ws}/exp/`)).map((l) => l.split(':')[0]!)[0]);
      await until(`QEMU and a tracefs instance of kvmlab ${boxPid}\n${stderr}`, 120_000, async () => {
        const qemu = await processesWith(`-${boxPid}-1,debug-threads`);
        const inst = (await readdir(`${T}/instances`)).filter((n) => n.startsWith(`kvmlab-${boxPid}-`));
        return qemu.length && inst.length ? true : undefined;
      });
      return { child, exited, ws, boxPid, stderr: () => stderr };
    }

    async function boxIsClean(boxPid: string): Promise<void> {
      // gone, or a zombie its parent (the box's sshd) has yet to reap: either way it ran to its end
      const ended = async () => {
        const stat = await readFile(`/proc/${boxPid}/stat`, 'utf8').catch(() => undefined);
        return stat === undefined || stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z' ? true : undefined;
      };
      await until(`kvmlab ${boxPid} on the box ends`, 90_000, ended).catch(async (e: unknown) => {
        throw new Error(`${(e as Error).message}; the box's processes:\n${(await execa('ps', ['-eo', 'pid,ppid,stat,etime,args'])).stdout}`);
      });
      expect(await processesWith(`-${boxPid}-1,debug-threads`)).toEqual([]);
      expect((await readdir(`${T}/instances`)).filter((n) => n.startsWith(`kvmlab-${boxPid}-`))).toEqual([]);
    }

    it('a dropped connection: the box tears the run down by itself, and keeps what it collected', async () => {
      const cut = await startCut(join(scratch, 'dropped'));
      cut.child.kill('SIGKILL'); // the connection dies with the process that held it
      await cut.exited;
      await boxIsClean(cut.boxPid);
      const s = JSON.parse(await readFile(join(cut.ws, 'out', 'summary.json'), 'utf8')) as { interrupted: boolean; target: { kind: string } };
      expect(s.interrupted).toBe(true);
      expect(s.target.kind).toBe('ssh');
      await rm(cut.ws, { recursive: true, force: true });
    }, 300_000);

    it('Ctrl-C here: the run there stops after its teardown, and what it collected comes back', async () => {
      const out = join(scratch, 'interrupted');
      const cut = await startCut(out);
      cut.child.kill('SIGINT');
      expect(await cut.exited, cut.stderr()).toBe(130);
      await boxIsClean(cut.boxPid);
      const s = await readSummary(out);
      expect(s.interrupted).toBe(true);
      expect(s.variants[0]!.repetitions[0]!.reason).toMatch(/interrupted/);
    }, 300_000);
  });
});
