// A QEMU process kvmlab launched, for its life: spawned with the argv from argv.ts (never through a
// shell), one QMP connection held, the guest reached over SSH with its image's host key checked, its
// output kept. Shutdown follows QEMU's own machine.py: QMP quit, then SIGTERM, then SIGKILL, each
// with a deadline, always reaping. A launch failure carries the command line and QEMU's last words.
import { join } from 'node:path';
import { createWriteStream, type WriteStream } from 'node:fs';
import { access, open, readFile } from 'node:fs/promises';
import { execa, type ResultPromise } from 'execa';
import { errorMessage, HostError, KvmlabError } from '../../errors.js';
import { formatMask, parseShimRecord, type ShimRecord } from '../../model/exits.js';
import { processStartTicks, type HostJournal } from '../../host/journal.js';
import { realClock, settlesWithin } from '../clock.js';
import type { LaunchRequest, Vm } from '../backend.js';
import type { Effective } from '../../results/summary.js';
import { REPETITION } from '../../results/layout.js';
import { QmpClient } from '../qmp-client.js';
import { SshGuest } from '../ssh-guest.js';
import { shellLine, type QemuCommand } from './argv.js';
import { checkExitRecord } from './exit-record.js';
import type { GuestImage } from './image.js';

/** QEMU did not come up; the message has the command line and the tail of its output and console. */
export class QemuLaunchError extends KvmlabError {
  constructor(
    readonly why: string,
    readonly commandLine: string,
    readonly output: string,
    readonly consoleTail: string,
  ) {
    super(
      `QEMU failed to start: ${why}\n  command: ${commandLine}` +
        (output.trim() ? `\n  QEMU output (last lines):\n${indent(output)}` : '\n  QEMU printed nothing') +
        (consoleTail.trim() ? `\n  guest console (last lines):\n${indent(consoleTail)}` : ''),
    );
  }
}

function indent(text: string): string {
  return lastLines(text, 15)
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

export function lastLines(text: string, n: number): string {
  const lines = text.replace(/\s+$/, '').split('\n');
  return lines.slice(-n).join('\n');
}

/** The last `max` bytes of a stream, kept while the stream also goes to a file. */
class OutputTail {
  private text = '';
  constructor(private readonly max = 16_384) {}
  add(chunk: string): void {
    this.text += chunk;
    if (this.text.length > this.max * 2) this.text = this.text.slice(-this.max);
  }
  get value(): string {
    return this.text.slice(-this.max);
  }
}

export async function readTail(path: string, bytes = 8192): Promise<string> {
  try {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const start = Math.max(0, size - bytes);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      return buf.toString('utf8').replace(/\r/g, '');
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}

/** QMP's SHUTDOWN event: whether the guest asked for it, and why (guest-reset, guest-shutdown, …). */
interface QmpShutdown {
  guest?: boolean;
  reason?: string;
}

/**
 * How QEMU ended, in a line: killed by a signal, or its status and why. The guest's own reset or
 * power-off ends QEMU too (-no-reboot), and QMP says which just before. Without that event, an exit 0
 * in silence is still the guest's doing, unless kvmlab was ending QEMU itself: a signal or an error
 * makes QEMU say so on stderr, whose last line is given otherwise. Pure.
 */
export function exitText(r: { signal?: string; exitCode?: number; shortMessage?: string }, lastLine: string, shutdown: QmpShutdown | undefined, stopping: boolean): string {
  if (r.signal) return `QEMU was killed by ${r.signal}`;
  if (r.exitCode === undefined) return `QEMU did not run: ${r.shortMessage}`;
  const why = shutdown?.guest
    ? `the guest ended it: QMP SHUTDOWN reason ${shutdown.reason}${shutdown.reason === 'guest-reset' ? ', the guest reset (-no-reboot makes QEMU exit)' : ''}`
    : lastLine || (r.exitCode === 0 && !stopping ? 'it printed nothing, as when the guest resets or powers off (-no-reboot makes QEMU exit on a reset) before QMP could report which' : '');
  return `QEMU exited with status ${r.exitCode}${why ? ` (${why})` : ''}`;
}

/** The environment QEMU runs with: ours, less anything that would load or steer the shim by accident. */
function qemuEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('KVMLAB_') && k !== 'LD_PRELOAD') env[k] = v;
  return { ...env, ...extra };
}

export class QemuVm implements Vm {
  readonly pid: number;
  readonly consoleLog: string;
  readonly guest: SshGuest;
  readonly effective: Effective;
  readonly commandLine: string;
  private readonly proc: ResultPromise;
  private readonly reaped: Promise<void>;
  private readonly exited: Promise<string>;
  private exit: string | undefined;
  private readonly tail = new OutputTail();
  private readonly log: WriteStream;
  private qmpClient: QmpClient | undefined;
  private shutdownPromise: Promise<string> | undefined;
  /** kvmlab is ending QEMU itself (quit, then signals): its exit then says nothing of the guest. */
  private stopping = false;
  private readonly transcript: string;

  constructor(
    private readonly cmd: QemuCommand,
    req: LaunchRequest,
    private readonly image: GuestImage,
    attempt: number,
    journal: HostJournal | undefined,
  ) {
    this.consoleLog = cmd.consoleLog;
    this.commandLine = shellLine(cmd.binary, cmd.args, cmd.env);
    this.log = createWriteStream(`${req.logDir}/qemu.log`, { flags: attempt === 1 ? 'w' : 'a' });
    this.log.on('error', () => undefined); // an unwritable results dir must not take QEMU down
    this.log.write(`# ${new Date().toISOString()} ${this.commandLine}\n`);
    this.proc = execa(cmd.binary, cmd.args, {
      env: qemuEnv(cmd.env),
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: false,
      cleanup: true, // kill QEMU if kvmlab itself exits
      forceKillAfterDelay: false,
    });
    const take = (d: Buffer) => {
      const s = d.toString('utf8');
      this.tail.add(s);
      this.log.write(s);
    };
    this.proc.stdout?.on('data', take);
    this.proc.stderr?.on('data', take);
    this.exited = this.proc.then((r) => {
      const shutdown = [...(this.qmpClient?.events ?? [])].reverse().find((e) => e.event === 'SHUTDOWN')?.data as QmpShutdown | undefined;
      this.exit = exitText(r, lastLines(this.tail.value, 1).trim(), shutdown, this.stopping);
      this.log.write(`# ${new Date().toISOString()} ${this.exit}\n`);
      return this.exit;
    });
    this.pid = this.proc.pid ?? -1;
    const startTicks = this.pid > 0 ? processStartTicks(this.pid) : undefined;
    const entry = journal && startTicks !== undefined ? journal.record({ kind: 'process', pid: this.pid, startTicks, comm: cmd.binary }) : undefined;
    this.reaped = this.exited.then(() => {
      if (entry !== undefined) journal?.resolve(entry);
    });
    this.guest = new SshGuest({
      host: '127.0.0.1',
      port: cmd.sshPort,
      user: image.ssh.user,
      privateKey: image.ssh.privateKey ?? req.clientKey.privateKey,
      hostKey: image.ssh.hostKey,
      transcript: join(req.logDir, REPETITION.guest),
    });
    this.transcript = join(req.logDir, REPETITION.qmp);
    this.effective = {
      accel: req.plan.accel,
      argv: [cmd.binary, ...cmd.args],
      env: cmd.env,
      qemuPid: this.pid,
      sshPort: cmd.sshPort,
      image: image.source === 'kvmlab' ? { source: 'kvmlab', dir: image.dir, kernelVersion: image.manifest?.kernelVersion, builtAt: image.manifest?.builtAt } : { source: 'user', ...image.boot },
      exitControl: cmd.exitControl.mode,
    };
  }

  get qmp(): QmpClient {
    if (!this.qmpClient) throw new Error('QMP is not connected');
    return this.qmpClient;
  }

  output(): string {
    return this.tail.value;
  }

  exitReason(): string | undefined {
    return this.exit;
  }

  /** Rejects as soon as QEMU exits (use inside Promise.race). */
  private dies(what: string): Promise<never> {
    return this.exited.then((r) => {
      throw new Error(`${r} while ${what}`);
    });
  }

  async start(qmpTimeoutMs: number): Promise<void> {
    if (this.proc.pid === undefined) {
      const r = await this.proc;
      const code = (r as { code?: string }).code;
      if (code === 'ENOENT' && this.cmd.binary.includes('/')) throw new HostError(`${this.cmd.binary}: no such QEMU binary (given with --qemu, or by the experiment's host axis)`);
      if (code === 'ENOENT') throw new HostError(`${this.cmd.binary} is not installed; install the Debian package ${this.cmd.binary === 'qemu-system-x86_64' ? 'qemu-system-x86' : 'qemu-system-ppc'} (or run bash host-scripts/setup.sh)`);
      throw new Error(`could not start ${this.cmd.binary}: ${r.shortMessage}`);
    }
    const deadline = realClock.now() + qmpTimeoutMs;
    // The socket appears once QEMU has parsed its options and created its chardevs.
    await Promise.race([this.waitForFile(this.cmd.qmpSocket, deadline), this.dies('waiting for its QMP socket')]);
    let lost = false;
    const gone = new AbortController();
    void this.exited.then(() => gone.abort());
    const connecting = QmpClient.connect(this.cmd.qmpSocket, { timeoutMs: Math.max(1000, deadline - realClock.now()), transcript: this.transcript, signal: gone.signal, clock: realClock });
    void connecting.then(
      (c) => {
        if (lost) c.close();
      },
      () => undefined,
    );
    try {
      this.qmpClient = await Promise.race([connecting, this.dies('connecting to QMP')]);
    } catch (e) {
      lost = true;
      throw e;
    }
    if (this.cmd.exitsRecord) await this.checkExits(this.cmd.exitsRecord);
  }

  private async waitForFile(path: string, deadline: number): Promise<void> {
    while (!(await access(path).then(() => true, () => false))) {
      if (this.exit) return;
      if (realClock.now() > deadline) throw new Error(`QEMU did not create its QMP socket ${path} in time`);
      await realClock.sleep(20);
    }
  }

  /** QMP answers only after QEMU created the VM and its vCPUs, so the shim's record is complete. */
  private async checkExits(path: string): Promise<void> {
    const text = await readFile(path, 'utf8').catch(() => '');
    let records: ShimRecord[];
    try {
      records = parseShimRecord(text, { source: path });
    } catch (e) {
      throw new KvmlabError(`the disable-exits record is unreadable: ${errorMessage(e)}`, { cause: e });
    }
    const outcome = checkExitRecord(this.cmd.exitControl, this.cmd.haltPollNs, records);
    this.effective.exitsRecord = records;
    if (outcome.disableExitsMask !== undefined) {
      this.effective.disableExitsMask = outcome.disableExitsMask;
      this.effective.disableExits = formatMask(outcome.disableExitsMask);
    }
    if (outcome.haltPollNs !== undefined) this.effective.haltPollNs = outcome.haltPollNs;
    if (outcome.problems.length) throw new Error(`exit control did not take effect as asked: ${outcome.problems.join('; ')}`);
  }

  async waitReady(deadline: number): Promise<void> {
    try {
      if (this.image.readyMarker) await this.waitForConsole(this.image.readyMarker, deadline);
      await this.guest.waitReady(deadline, () => this.exit);
    } catch (e) {
      const console = lastLines(await readTail(this.consoleLog, 4096), 10);
      throw new KvmlabError(`${errorMessage(e)}${console ? `\n  guest console (last lines):\n${console.split('\n').map((l) => `    ${l}`).join('\n')}` : ''}`, { cause: e });
    }
  }

  /** Follows the console log until `marker` appears; QEMU's death or the deadline end the wait. */
  private async waitForConsole(marker: string, deadline: number): Promise<void> {
    let offset = 0;
    let carry = '';
    for (;;) {
      try {
        const fh = await open(this.consoleLog, 'r');
        try {
          const { size } = await fh.stat();
          if (size > offset) {
            const buf = Buffer.alloc(size - offset);
            await fh.read(buf, 0, buf.length, offset);
            offset = size;
            const text = carry + buf.toString('utf8');
            if (text.includes(marker)) return;
            carry = text.slice(-marker.length);
          }
        } finally {
          await fh.close();
        }
      } catch {
        // not created yet
      }
      if (this.exit) throw new Error(`the guest never became ready: ${this.exit}`);
      if (realClock.now() > deadline) throw new Error(`the guest did not print "${marker}" on its console before the deadline`);
      await realClock.sleep(50);
    }
  }

  shutdown(): Promise<string> {
    this.shutdownPromise ??= this.stop();
    return this.shutdownPromise;
  }

  private async stop(): Promise<string> {
    this.stopping = true;
    this.guest.disconnect();
    let how: string | undefined;
    if (this.exit) how = `already gone: ${this.exit}`;
    if (!how && this.qmpClient?.isOpen) {
      await this.qmpClient.execute('quit', undefined, 5000).catch(() => undefined);
      if (await settlesWithin(realClock, this.reaped, 10_000)) how = 'quit over QMP';
    }
    if (!how) {
      this.proc.kill('SIGTERM');
      if (await settlesWithin(realClock, this.reaped, 5000)) how = 'SIGTERM';
    }
    if (!how) {
      this.proc.kill('SIGKILL');
      await this.reaped;
      how = 'SIGKILL';
    }
    this.qmpClient?.close();
    await new Promise<void>((resolve) => this.log.end(resolve));
    return how;
  }
}
