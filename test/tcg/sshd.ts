// A real OpenSSH sshd on 127.0.0.1 for the --on ssh:// tests, with its own config, host key and
// authorized client key in a scratch directory (never the system's sshd or ~/.ssh), and a HOME of
// its own whose known_hosts holds the box's key. Root is needed: sshd logs users in only as root.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

export const SSHD = '/usr/sbin/sshd';

export function sshdSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (sshd logs users in only when it runs as root)';
  if (!existsSync(SSHD)) return `no ${SSHD} (apt-get install openssh-server; host-scripts/setup.sh installs it)`;
  return undefined;
}

export interface Sshd {
  port: number;
  /** ssh://root@127.0.0.1:PORT */
  box: string;
  /** The client's private key file. */
  clientKey: string;
  /** A HOME whose ~/.ssh/known_hosts holds the box's host key. */
  home: string;
  /** A HOME with no known_hosts. */
  strangerHome: string;
  /** The box's host key line ("ssh-ed25519 AAAA… "). */
  hostKeyLine: string;
  stop(): Promise<void>;
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

const answers = (port: number) =>
  new Promise<boolean>((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.once('data', () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });

export async function startSshd(): Promise<Sshd> {
  const dir = await mkdtemp(join(tmpdir(), 'kvmlab-sshd-'));
  for (const k of ['host', 'client']) await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `kvmlab-test-${k}`, '-f', join(dir, k)]);
  await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'client.pub')));
  const port = await freePort();
  const config = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${join(dir, 'host')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    '',
  ].join('\n');
  await writeFile(join(dir, 'sshd_config'), config);
  // sshd's privilege-separation directory, which its service would make
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKeyLine = (await readFile(join(dir, 'host.pub'), 'utf8')).trim();
  const home = join(dir, 'home');
  await mkdir(join(home, '.ssh'), { recursive: true });
  await writeFile(join(home, '.ssh', 'known_hosts'), `[127.0.0.1]:${port} ${hostKeyLine}\n`);
  const strangerHome = join(dir, 'stranger');
  await mkdir(strangerHome);
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  for (let i = 0; !(await answers(port)); i++) {
    if (i > 100 || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`sshd did not come up on 127.0.0.1:${port}: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    box: `ssh://root@127.0.0.1:${port}`,
    clientKey: join(dir, 'client'),
    home,
    strangerHome,
    hostKeyLine,
    async stop() {
      child.kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
