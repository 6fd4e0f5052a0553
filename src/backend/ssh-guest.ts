// The guest command channel: SSH with a fresh client key per run and the guest's host key known in
// advance and checked (never trust-on-first-use). Every command and its result go to a JSONL
// transcript.
import { KvmlabError } from '../errors.js';
import { appendFileSync } from 'node:fs';
import { guestLine, type GuestCommand, type GuestNote } from '../results/records.js';
import { realClock, type Clock } from './clock.js';
import { ssh2 } from './ssh2.js';
import type { Client as SshClient, ClientChannel } from 'ssh2';

export interface ExecResult {
  cmd: string;
  /** Exit status, or null when the command was killed or the channel died. */
  status: number | null;
  stdout: string;
  stderr: string;
  startedAt: number;
  durationMs: number;
  timedOut: boolean;
}

export interface KeyPair {
  /** OpenSSH private key text. */
  privateKey: string;
  /** One OpenSSH public key line, "ssh-ed25519 AAAA… kvmlab". */
  publicKey: string;
}

export function generateClientKey(): KeyPair {
  // ssh2 now and then writes an ed25519 public key with 31 key bytes instead of 32 (17 in 3000 here),
  // which neither ssh2 nor dropbear will parse: draw again until the key reads back.
  for (;;) {
    const { utils } = ssh2();
    const pair = utils.generateKeyPairSync('ed25519', { comment: 'kvmlab' });
    const publicKey = pair.public.trim();
    if (!(utils.parseKey(publicKey) instanceof Error)) return { privateKey: pair.private, publicKey };
  }
}

/** The key blob of an OpenSSH public key line ("ssh-ed25519 AAAA… comment"). */
export function keyBlob(line: string): Buffer {
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2 || !/^(ssh-|ecdsa-)/.test(parts[0]!)) throw new Error(`not an OpenSSH public key line: "${line.slice(0, 60)}"`);
  return Buffer.from(parts[1]!, 'base64');
}

export class GuestDisconnectedError extends KvmlabError {
  constructor(message: string) {
    super(message);
  }
}

export interface SshGuestOptions {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  /** The guest's host public key as an OpenSSH line; a different key is refused. */
  hostKey: string;
  transcript?: string;
  /** The backend's clock: timeouts, retries and stamps go by it. */
  clock?: Clock;
}

export class SshGuest {
  private client: SshClient | undefined;
  private readonly expectedHostKey: Buffer;
  private hostKeyMismatch = false;
  private readonly clock: Clock;

  constructor(private readonly opts: SshGuestOptions) {
    this.expectedHostKey = keyBlob(opts.hostKey);
    this.clock = opts.clock ?? realClock;
  }

  /** Connect with backoff until a command runs or the deadline passes. */
  async waitReady(deadline: number, isAlive: () => string | undefined = () => undefined): Promise<number> {
    let attempt = 0;
    let last = '';
    const clock = this.clock;
    for (let delay = 250; clock.now() < deadline; delay = Math.min(delay * 1.5, 3000)) {
      attempt++;
      const dead = isAlive();
      if (dead) throw new GuestDisconnectedError(`guest never became ready: ${dead}`);
      try {
        await this.connect(Math.min(20_000, Math.max(1000, deadline - clock.now())));
        const r = await this.exec('true', Math.max(1000, deadline - clock.now()));
        if (r.status === 0) {
          this.note({ ready: true, attempts: attempt });
          return attempt;
        }
        last = `"true" exited ${r.status}`;
      } catch (e) {
        last = (e as Error).message;
        if (this.hostKeyMismatch) throw new GuestDisconnectedError(last);
      }
      this.disconnect();
      await clock.sleep(Math.min(delay, Math.max(0, deadline - clock.now())));
    }
    throw new GuestDisconnectedError(`guest did not answer SSH on 127.0.0.1:${this.opts.port} before the deadline (${attempt} attempts; last: ${last})`);
  }

  async exec(cmd: string, timeoutMs: number): Promise<ExecResult> {
    if (!this.client) await this.connect(Math.min(timeoutMs, 20_000));
    const client = this.client!;
    const startedAt = this.clock.now();
    const result = await this.clock.busy(
      new Promise<ExecResult>((resolve, reject) => {
        let stdout = '';
        let stderr = '';
        let timedOut = false;
        let channel: ClientChannel | undefined;
        const onClientGone = () => reject(new GuestDisconnectedError(`SSH connection to the guest dropped while running: ${cmd}`));
        client.once('close', onClientGone);
        const cancel = this.clock.deadline(timeoutMs, () => {
          timedOut = true;
          if (channel) {
            channel.signal('KILL');
            channel.close();
            return;
          }
          // The server never opened the channel: no close will ever come to end the command.
          client.off('close', onClientGone);
          this.disconnect();
          reject(new GuestDisconnectedError(`the guest did not start the command within ${timeoutMs} ms: ${cmd}`));
        });
        client.exec(cmd, (err, ch) => {
          if (err) {
            cancel();
            client.off('close', onClientGone);
            reject(new GuestDisconnectedError(`could not start a guest command: ${err.message}`));
            return;
          }
          if (timedOut) {
            ch.close();
            return;
          }
          channel = ch;
          let status: number | null = null;
          ch.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
          ch.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
          ch.on('exit', (code: number | null) => (status = typeof code === 'number' ? code : null));
          ch.on('close', () => {
            cancel();
            client.off('close', onClientGone);
            resolve({ cmd, status: timedOut ? null : status, stdout, stderr, startedAt, durationMs: this.clock.now() - startedAt, timedOut });
          });
        });
      }),
    );
    this.note(result);
    return result;
  }

  disconnect(): void {
    this.client?.end();
    this.client = undefined;
  }

  private connect(timeoutMs: number): Promise<void> {
    this.disconnect();
    const connecting = new Promise<void>((resolve, reject) => {
      const client = new (ssh2().Client)();
      // ssh2 can go quiet when the peer hangs up before the handshake (no error, no close): our own
      // deadline makes sure the attempt ends.
      const cancel = this.clock.deadline(timeoutMs + 1000, () => fail(new Error(`no SSH handshake within ${timeoutMs} ms`)));
      const fail = (e: Error) => {
        cancel();
        client.end();
        reject(e);
      };
      client.once('close', () => fail(new Error('connection closed before the SSH handshake')));
      client.on('error', fail); // on, not once: a dying handshake can report more than one error
      client.once('ready', () => {
        cancel();
        client.removeAllListeners('close');
        client.removeListener('error', fail);
        client.on('error', () => undefined); // later errors surface as 'close' on the running exec
        client.on('close', () => {
          if (this.client === client) this.client = undefined;
        });
        this.client = client;
        resolve();
      });
      client.connect({
        host: this.opts.host,
        port: this.opts.port,
        username: this.opts.user,
        privateKey: this.opts.privateKey,
        readyTimeout: timeoutMs,
        keepaliveInterval: 5000,
        keepaliveCountMax: 6,
        hostVerifier: (key: Buffer) => {
          const ok = key.equals(this.expectedHostKey);
          if (!ok) {
            this.hostKeyMismatch = true;
            this.note({ hostKeyMismatch: true, offered: key.toString('base64') });
          }
          return ok;
        },
      });
      // Every guest command is a few small round trips: Nagle and delayed ACKs would add ~40 ms each.
      client.setNoDelay(true);
    }).catch((e: Error) => {
      if (this.hostKeyMismatch) throw new GuestDisconnectedError(`the guest's SSH host key is not the one its image was built with; refusing to talk to it (${e.message})`);
      throw e;
    });
    return this.clock.busy(connecting);
  }

  private note(entry: Omit<GuestCommand, 't'> | Omit<GuestNote, 't'>): void {
    if (!this.opts.transcript) return;
    try {
      appendFileSync(this.opts.transcript, guestLine({ t: this.clock.now() / 1000, ...entry }));
    } catch {
      // see QmpClient.record
    }
  }
}
