// The mock guest's SSH server: a real SSH server (ssh2) on 127.0.0.1 that accepts only the client
// key the "kernel command line" carried (kvmlab.authkey=, as kvmlab's real guest image does) and runs
// each exec request in the simulated shell.
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server as SshServer } from 'ssh2';
import { ssh2 } from '../ssh2.js';
import type { MockShell } from './shell.js';

export class MockSshServer {
  private readonly server: SshServer;
  private readonly authorized: { algo: string; data: Buffer };
  private readonly connections = new Set<{ end(): unknown }>();

  constructor(
    hostPrivateKey: string,
    authorizedKeyLine: string,
    private readonly shell: MockShell,
    private readonly isAlive: () => boolean,
    faults: { neverReady?: boolean; dropSshOn?: string } = {},
  ) {
    const { Server, utils } = ssh2();
    const parsed = utils.parseKey(authorizedKeyLine);
    if (parsed instanceof Error) throw new Error(`mock guest: unusable authorized key: ${parsed.message}`);
    this.authorized = { algo: parsed.type, data: parsed.getPublicSSH() };
    this.server = new Server({ hostKeys: [hostPrivateKey] }, (client) => {
      if (faults.neverReady) {
        client.end(); // like QEMU's user-net forward to a guest port nobody listens on
        return;
      }
      // As dropbear does: Nagle and delayed ACKs would cost 40 ms a request. (ssh2 has setNoDelay on
      // server connections; its type declarations leave it out.)
      (client as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
      this.connections.add(client);
      client.on('close', () => this.connections.delete(client));
      client.on('error', () => undefined);
      client.on('authentication', (ctx) => {
        if (ctx.method !== 'publickey' || ctx.username !== 'root') return ctx.reject(['publickey']);
        const same = ctx.key.algo === this.authorized.algo && ctx.key.data.length === this.authorized.data.length && timingSafeEqual(ctx.key.data, this.authorized.data);
        if (!same) return ctx.reject(['publickey']);
        if (!ctx.signature) return ctx.accept(); // the client asks whether this key would do
        const key = utils.parseKey(authorizedKeyLine) as ReturnType<typeof utils.parseKey> & { verify: (d: Buffer, s: Buffer, h?: string) => boolean };
        if (key.verify(ctx.blob!, ctx.signature, ctx.hashAlgo)) ctx.accept();
        else ctx.reject(['publickey']);
      });
      client.on('ready', () => {
        client.on('session', (accept) => {
          const session = accept();
          session.on('exec', (acceptExec, _reject, info) => {
            const stream = acceptExec();
            if (!this.isAlive()) {
              stream.close();
              return;
            }
            if (faults.dropSshOn !== undefined && info.command.includes(faults.dropSshOn)) {
              client.end(); // the connection dies mid-command
              return;
            }
            const r = this.shell.run(info.command);
            if (r.stdout) stream.write(r.stdout);
            if (r.stderr) stream.stderr.write(r.stderr);
            stream.exit(r.status);
            stream.end();
          });
        });
      });
    });
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve((this.server.address() as AddressInfo).port));
    });
  }

  close(): void {
    this.server.close();
    for (const c of this.connections) c.end(); // established sessions die with the guest too

  }
}
