// The mock's QMP server: a real unix socket speaking QMP (greeting, capability negotiation,
// execute/return/error with ids, asynchronous events) for the commands kvmlab uses, answered from
// the simulated machine. kvmlab's real QMP client talks to it.
import { createServer, type Server, type Socket } from 'node:net';
import type { MockMachine } from './machine.js';

type Handler = (args: Record<string, unknown>) => unknown;

class CommandError extends Error {
  constructor(
    readonly errorClass: string,
    message: string,
  ) {
    super(message);
  }
}

export class MockQmpServer {
  private readonly server: Server;
  private readonly clients = new Set<Socket>();
  private readonly handlers: Record<string, Handler>;

  constructor(
    private readonly m: MockMachine,
    private readonly onQuit: () => void,
  ) {
    this.handlers = {
      'query-status': () => ({ running: !this.m.paused, status: this.m.paused ? 'paused' : 'running', singlestep: false }),
      stop: () => {
        this.m.setPaused(true);
        return {};
      },
      cont: () => {
        this.m.setPaused(false);
        return {};
      },
      'query-version': () => ({ qemu: { major: 7, minor: 2, micro: 0 }, package: 'kvmlab-mock (simulated)' }),
      'query-cpus-fast': () => this.queryCpusFast(),
      'query-hotpluggable-cpus': () => this.queryHotpluggable(),
      device_add: (a) => this.deviceAdd(a),
      device_del: (a) => {
        const err = this.m.unplug(String(a.id));
        if (err) throw new CommandError('DeviceNotFound', err);
        return {};
      },
      'query-stats': (a) => this.queryStats(a),
      'query-stats-schemas': () => [{ provider: 'kvm', target: 'vcpu', stats: Object.keys(this.m.vcpus[0]?.stats ?? {}).map((name) => ({ name, type: 'cumulative' })) }],
      quit: () => {
        setImmediate(() => this.onQuit());
        return {};
      },
    };
    this.server = createServer((socket) => this.accept(socket));
    m.onEvent((e) => {
      const now = m.config.clock.now();
      const msg = { event: e.event, data: e.data, timestamp: { seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000 } };
      for (const c of this.clients) c.write(`${JSON.stringify(msg)}\n`);
    });
  }

  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(path, () => resolve());
    });
  }

  close(): void {
    for (const c of this.clients) c.destroy();
    this.server.close();
  }

  private accept(socket: Socket): void {
    this.clients.add(socket);
    socket.on('close', () => this.clients.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.write(`${JSON.stringify({ QMP: { version: { qemu: { micro: 0, minor: 2, major: 7 }, package: 'kvmlab-mock (simulated)' }, capabilities: ['oob'] } })}\n`);
    let negotiated = false;
    let buf = '';
    socket.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let msg: { execute?: string; arguments?: Record<string, unknown>; id?: unknown };
        try {
          msg = JSON.parse(line);
        } catch {
          socket.write(`${JSON.stringify({ error: { class: 'GenericError', desc: 'JSON parse error' } })}\n`);
          continue;
        }
        const reply = (body: Record<string, unknown>) => socket.write(`${JSON.stringify(msg.id === undefined ? body : { ...body, id: msg.id })}\n`);
        const cmd = msg.execute ?? '';
        if (cmd === 'qmp_capabilities') {
          if (negotiated) reply({ error: { class: 'CommandNotFound', desc: "Capabilities negotiation is already complete, command ignored" } });
          else {
            negotiated = true;
            reply({ return: {} });
          }
          continue;
        }
        if (!negotiated) {
          reply({ error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" } });
          continue;
        }
        const handler = this.handlers[cmd];
        if (!handler) {
          reply({ error: { class: 'CommandNotFound', desc: `The command ${cmd} has not been found` } });
          continue;
        }
        try {
          reply({ return: handler(msg.arguments ?? {}) });
        } catch (e) {
          reply({ error: { class: e instanceof CommandError ? e.errorClass : 'GenericError', desc: (e as Error).message } });
        }
      }
    });
  }

  private queryCpusFast(): unknown {
    const target = this.m.config.arch === 'x86_64' ? 'x86_64' : 'ppc64';
    return this.m.vcpus
      .filter((v) => v.activity !== 'absent')
      .map((v) => ({ 'thread-id': v.tid, props: this.m.slotProps(v.index), 'qom-path': v.qomPath, 'cpu-index': v.index, target }));
  }

  private queryHotpluggable(): unknown {
    return [...this.m.vcpus].reverse().map((v) => ({
      type: this.m.hotpluggableType(),
      'vcpus-count': 1,
      props: this.m.slotProps(v.index),
      ...(v.activity === 'absent' ? {} : { 'qom-path': v.qomPath }),
    }));
  }

  private deviceAdd(a: Record<string, unknown>): unknown {
    const { driver, id, ...props } = a;
    if (typeof driver !== 'string') throw new CommandError('GenericError', "Parameter 'driver' is missing");
    const err = this.m.plug(driver, typeof id === 'string' ? id : undefined, props);
    if (err) throw new CommandError('GenericError', err);
    return {};
  }

  private queryStats(a: Record<string, unknown>): unknown {
    this.m.sync();
    if (a.target === 'vm') {
      const total = (name: string) => this.m.vcpus.reduce((s, v) => s + Math.round(v.stats[name] ?? 0), 0);
      return [{ provider: 'kvm', stats: [{ name: 'max_mmu_page_hash_collisions', value: 0 }, { name: 'halt_exits_total', value: total('halt_exits') }] }];
    }
    if (a.target !== 'vcpu') throw new CommandError('GenericError', "Parameter 'target' does not accept value");
    const wanted = Array.isArray(a.vcpus) ? new Set(a.vcpus as string[]) : undefined;
    return this.m.vcpus
      .filter((v) => v.activity !== 'absent' && (!wanted || wanted.has(v.qomPath)))
      .map((v) => ({ provider: 'kvm', 'qom-path': v.qomPath, stats: Object.entries(this.m.vcpuStats(v)).map(([name, value]) => ({ name, value })) }));
  }
}
