// One SSH connection to a lab box: the user's own key (ssh-agent, ~/.ssh/id_ed25519, id_ecdsa,
// id_rsa, or --ssh-key), the box's host key held to known_hosts or --host-key (never trusted on
// first use), and commands run there with their output streamed back.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type { Client as SshClient, ClientChannel, ConnectConfig } from 'ssh2';
import { HostError, InputError, errorMessage } from '../errors.js';
import { ssh2 } from '../backend/ssh2.js';
import { fingerprint, refuseHostKey, type Trust } from './known-hosts.js';
import type { SshBox } from './on.js';

/** How kvmlab logs in and what it trusts: flags, else the user's usual SSH setup. */
export interface SshAccess {
  /** --ssh-key FILE: the only key tried. */
  sshKey?: string;
  /** --host-key SHA256:…: the box's host key fingerprint, instead of known_hosts. */
  hostKey?: string;
}

const DEFAULT_KEYS = ['id_ed25519', 'id_ecdsa', 'id_rsa'];
const KNOWN_HOSTS = () => [join(homedir(), '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts'];

type AuthMethod = { type: 'agent'; username: string; agent: string } | { type: 'publickey'; username: string; key: string };

/** The ways to log in, in the order OpenSSH's client tries them. Throws when there is none. */
export function authMethods(box: SshBox, access: SshAccess, env: NodeJS.ProcessEnv = process.env): AuthMethod[] {
  const { utils } = ssh2();
  const key = (path: string): string | undefined => {
    const text = readFileSync(path, 'utf8');
    const parsed = utils.parseKey(text);
    if (!(parsed instanceof Error)) return text;
    if (/encrypted|passphrase/i.test(parsed.message)) return undefined;
    throw new InputError(`${path}: not a private key kvmlab can use (${parsed.message}); give another with --ssh-key FILE`);
  };
  if (access.sshKey !== undefined) {
    if (!existsSync(access.sshKey)) throw new InputError(`--ssh-key ${access.sshKey}: no such file; give the private key that logs in to ${box.user}@${box.host}`);
    const text = key(access.sshKey);
    if (text === undefined) throw new InputError(`--ssh-key ${access.sshKey}: the key is protected by a passphrase, which kvmlab does not ask for: add it to ssh-agent (ssh-add ${access.sshKey}) and drop --ssh-key`);
    return [{ type: 'publickey', username: box.user, key: text }];
  }
  const methods: AuthMethod[] = [];
  if (env.SSH_AUTH_SOCK) methods.push({ type: 'agent', username: box.user, agent: env.SSH_AUTH_SOCK });
  for (const name of DEFAULT_KEYS) {
    const path = join(homedir(), '.ssh', name);
    if (!existsSync(path)) continue;
    const text = key(path);
    if (text !== undefined) methods.push({ type: 'publickey', username: box.user, key: text });
  }
  if (!methods.length) throw new InputError(`no SSH key to log in to ${box.text} with: no ssh-agent ($SSH_AUTH_SOCK unset) and no unencrypted ${DEFAULT_KEYS.map((k) => `~/.ssh/${k}`).join(', ')}; give one with --ssh-key FILE`);
  return methods;
}

/** What the user trusts: --host-key, else known_hosts files (the user's, then the system's). */
export function trustOf(access: SshAccess): Trust {
  if (access.hostKey !== undefined) {
    if (!/^SHA256:[A-Za-z0-9+/]{43}$/.test(access.hostKey)) throw new InputError(`--host-key ${access.hostKey}: give the box's key fingerprint as OpenSSH prints it (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the box): SHA256: and 43 base64 characters`);
    return { knownHosts: [], fingerprint: access.hostKey };
  }
  return { knownHosts: KNOWN_HOSTS().filter((p) => existsSync(p)).map((path) => ({ path, text: readFileSync(path, 'utf8') })) };
}

function loginFailure(e: Error, box: SshBox, methods: AuthMethod[]): string {
  const tried = methods.map((m) => (m.type === 'agent' ? 'the ssh-agent keys' : 'a key file')).join(', ');
  return /authentication/i.test(e.message) ? `the box accepted none of ${tried} for ${box.user}` : `cannot log in (${errorMessage(e)})`;
}

export interface ExecStreams {
  /** The remote command's stdout and stderr, as they come. */
  stdout?: Writable;
  stderr?: Writable;
  /** Fed to the remote command's stdin; ended when it ends. Without it, stdin is closed at once. */
  stdin?: Readable;
  /** Keep the remote stdin open (kvmlab's leash, KVMLAB_LEASH=stdin) until this signal aborts. */
  leash?: AbortSignal;
}

export interface ExecOutcome {
  /** The exit status, or null when the command was killed by a signal or the connection dropped. */
  code: number | null;
  signal?: string;
}

export class BoxSession {
  private constructor(
    private readonly client: SshClient,
    readonly box: SshBox,
    /** The host key the box showed (and the user trusts), as a fingerprint. */
    readonly hostKey: string,
  ) {}

  static async open(box: SshBox, access: SshAccess): Promise<BoxSession> {
    const trust = trustOf(access);
    const authHandler = authMethods(box, access);
    let shown: Buffer | undefined;
    let refused: string | undefined;
    const client = new (ssh2().Client)();
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', (e) => reject(new HostError(`${box.text}: ${refused ?? loginFailure(e, box, authHandler)}`, { cause: e })));
      const config: ConnectConfig = {
        host: box.host,
        port: box.port,
        username: box.user,
        authHandler: authHandler as ConnectConfig['authHandler'],
        readyTimeout: 20_000,
        // A box that stops answering is noticed in half a minute; the run there then tears down by itself (its leash).
        keepaliveInterval: 5_000,
        keepaliveCountMax: 6,
        hostVerifier: (key: Buffer) => {
          shown = key;
          refused = refuseHostKey(key, box.host, box.port, trust);
          return refused === undefined;
        },
      };
      client.connect(config);
    });
    client.on('error', () => undefined); // after login, a dropped connection ends the running command (exec)
    return new BoxSession(client, box, fingerprint(shown!));
  }

  /** Runs a shell command line on the box, streaming its output. */
  exec(command: string, io: ExecStreams = {}): Promise<ExecOutcome> {
    return new Promise((resolve, reject) => {
      const gone = () => resolve({ code: null, signal: 'connection dropped' });
      this.client.once('close', gone);
      this.client.exec(command, (err, ch: ClientChannel) => {
        if (err) {
          this.client.off('close', gone);
          reject(new HostError(`${this.box.text}: could not run a command there (${err.message})`, { cause: err }));
          return;
        }
        let outcome: ExecOutcome = { code: null };
        ch.on('exit', (code: number | null, signal?: string) => (outcome = typeof code === 'number' ? { code } : { code: null, ...(signal ? { signal } : {}) }));
        ch.on('data', (d: Buffer) => io.stdout?.write(d));
        ch.stderr.on('data', (d: Buffer) => io.stderr?.write(d));
        ch.on('close', () => {
          this.client.off('close', gone);
          resolve(outcome);
        });
        if (io.stdin) io.stdin.pipe(ch);
        else if (io.leash) {
          if (io.leash.aborted) ch.end();
          else io.leash.addEventListener('abort', () => ch.end(), { once: true });
        } else ch.end();
      });
    });
  }

  /** Runs a command and returns what it printed; a failure is the caller's to judge. */
  async capture(command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const r = await this.exec(command, { stdout, stderr });
    return { code: r.code, stdout: stdout.read()?.toString('utf8') ?? '', stderr: stderr.read()?.toString('utf8') ?? '' };
  }

  close(): void {
    this.client.end();
  }
}
