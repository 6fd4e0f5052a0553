// A small QMP client: greeting and capability negotiation, id-correlated commands with timeouts,
// an event history with waitForEvent(name, match, timeout), QMP errors as typed errors carrying the
// command and its arguments, and a JSONL transcript of everything sent and received.
// One connection is held for the VM's whole life: QEMU drops events nobody is connected to hear.
import { KvmlabError } from '../errors.js';
import { appendFileSync } from 'node:fs';
import { qmpLine } from '../results/records.js';
import { connect, type Socket } from 'node:net';
import { realClock, type Clock } from './clock.js';

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  /** QEMU's timestamp, seconds since the epoch. */
  qemuTime: number;
  /** When kvmlab received it, ms since the epoch on the backend's clock. */
  receivedAt: number;
  /** Position in the event history: waitForEvent(…, {after}) looks past it. */
  seq: number;
}

/** QEMU answered a command with an error. */
/** Anything that went wrong talking QMP: the monitor refused a command, went away, or did not answer in time. */
export class QmpFailure extends KvmlabError {}

export class QmpError extends QmpFailure {
  constructor(
    readonly command: string,
    readonly args: Record<string, unknown> | undefined,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command}${args ? ` ${JSON.stringify(args)}` : ''} failed: ${errorClass}: ${desc}`);
  }
}

/** The connection is gone (QEMU exited or closed the socket) or never came up. */
export class QmpConnectionError extends QmpFailure {
  constructor(message: string) {
    super(message);
  }
}

export class QmpTimeoutError extends QmpFailure {
  constructor(message: string) {
    super(message);
  }
}

interface Pending {
  command: string;
  args: Record<string, unknown> | undefined;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  cancel: () => void;
}

interface Waiter {
  name: string;
  match: Record<string, unknown> | undefined;
  after: number;
  resolve: (e: QmpEvent) => void;
  reject: (e: Error) => void;
  cancel: () => void;
}

export interface QmpConnectOptions {
  /** Keep retrying while the socket does not exist or refuses, until this many ms have passed. */
  timeoutMs?: number;
  /** Append every message sent and received to this JSONL file. */
  transcript?: string;
  /** Default timeout for a command. */
  commandTimeoutMs?: number;
  /** Stop retrying (QEMU exited, nobody will ever serve the socket). */
  signal?: AbortSignal;
  /** The backend's clock: timeouts, retries and event stamps go by it. */
  clock?: Clock;
}

export class QmpClient {
  readonly events: QmpEvent[] = [];
  readonly greeting: Record<string, unknown>;
  /** Resolves when the connection ends, with the reason. */
  readonly closed: Promise<string>;
  private readonly pending = new Map<string, Pending>();
  private readonly waiters = new Set<Waiter>();
  private nextId = 1;
  private buffer = '';
  private closeReason: string | undefined;

  private constructor(
    private readonly socket: Socket,
    greeting: Record<string, unknown>,
    rest: string,
    private readonly transcript: string | undefined,
    private readonly commandTimeoutMs: number,
    private readonly clock: Clock,
  ) {
    this.greeting = greeting;
    let markClosed!: (reason: string) => void;
    this.closed = new Promise((resolve) => (markClosed = resolve));
    socket.on('data', (chunk) => this.onData(chunk.toString('utf8')));
    socket.on('error', (e) => this.fail(`QMP socket error: ${e.message}`));
    socket.on('close', () => {
      this.fail('QMP connection closed (QEMU exited or closed its monitor)');
      markClosed(this.closeReason!);
    });
    if (rest) this.onData(rest);
  }

  static async connect(path: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const clock = opts.clock ?? realClock;
    const deadline = clock.now() + (opts.timeoutMs ?? 10_000);
    let lastError = '';
    for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
      let client: QmpClient | undefined;
      try {
        const { socket, greeting, rest } = await clock.busy(openAndGreet(path, Math.max(1000, deadline - clock.now()), clock));
        client = new QmpClient(socket, greeting, rest, opts.transcript, opts.commandTimeoutMs ?? 30_000, clock);
        client.record('<', greeting);
        await client.execute('qmp_capabilities');
        return client;
      } catch (e) {
        // A greeted connection whose negotiation failed is closed, not left to QEMU's monitor.
        client?.close();
        lastError = (e as Error).message;
        if (e instanceof QmpError || clock.now() + delay > deadline || opts.signal?.aborted) break;
        await clock.sleep(delay, opts.signal).catch(() => undefined);
      }
    }
    throw new QmpConnectionError(`could not connect to QMP at ${path}: ${lastError}`);
  }

  get isOpen(): boolean {
    return this.closeReason === undefined;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = this.commandTimeoutMs): Promise<T> {
    if (this.closeReason !== undefined) return Promise.reject(new QmpConnectionError(`QMP ${command}: ${this.closeReason}`));
    const id = `kvmlab-${this.nextId++}`;
    const msg = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
    return this.clock.busy(
      new Promise<T>((resolve, reject) => {
        const cancel = this.clock.deadline(timeoutMs, () => {
          this.pending.delete(id);
          reject(new QmpTimeoutError(`QMP ${command} got no answer within ${timeoutMs} ms`));
        });
        this.pending.set(id, { command, args, resolve: resolve as (v: unknown) => void, reject, cancel });
        this.record('>', msg);
        this.socket.write(`${JSON.stringify(msg)}\n`);
      }),
    );
  }

  /** The next event named `name` whose data contains `match`, received after event number `after`. */
  waitForEvent(name: string, match: Record<string, unknown> | undefined, timeoutMs: number, after = -1): Promise<QmpEvent> {
    const seen = this.events.find((e) => e.seq > after && e.event === name && contains(e.data, match));
    if (seen) return Promise.resolve(seen);
    if (this.closeReason !== undefined) return Promise.reject(new QmpConnectionError(`waiting for ${name}: ${this.closeReason}`));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        name,
        match,
        after,
        resolve,
        reject,
        // a deadline: a waiter that lost a race never keeps kvmlab alive
        cancel: this.clock.deadline(timeoutMs, () => {
          this.waiters.delete(waiter);
          reject(new QmpTimeoutError(`no ${name}${match ? ` matching ${JSON.stringify(match)}` : ''} within ${timeoutMs} ms`));
        }),
      };
      this.waiters.add(waiter);
    });
  }

  /** Sequence number of the latest event, for waitForEvent(…, after). */
  get lastSeq(): number {
    return this.events.length - 1;
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(text: string): void {
    this.buffer += text;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.record('<', { unparsable: line });
      return;
    }
    this.record('<', msg);
    if (typeof msg.event === 'string') {
      const ts = msg.timestamp as { seconds?: number; microseconds?: number } | undefined;
      const event: QmpEvent = {
        event: msg.event,
        data: (msg.data as Record<string, unknown>) ?? {},
        qemuTime: (ts?.seconds ?? 0) + (ts?.microseconds ?? 0) / 1e6,
        receivedAt: this.clock.now(),
        seq: this.events.length,
      };
      this.events.push(event);
      for (const w of this.waiters) {
        if (event.seq > w.after && event.event === w.name && contains(event.data, w.match)) {
          w.cancel();
          this.waiters.delete(w);
          w.resolve(event);
        }
      }
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    const p = id === undefined ? undefined : this.pending.get(id);
    if (!p) return;
    this.pending.delete(id!);
    p.cancel();
    if ('error' in msg) {
      const err = msg.error as { class?: string; desc?: string };
      p.reject(new QmpError(p.command, p.args, err.class ?? 'GenericError', err.desc ?? 'no description'));
    } else {
      p.resolve(msg.return);
    }
  }

  private fail(reason: string): void {
    if (this.closeReason !== undefined) return;
    this.closeReason = reason;
    this.record('!', { closed: reason });
    for (const p of this.pending.values()) {
      p.cancel();
      p.reject(new QmpConnectionError(`QMP ${p.command}: ${reason}`));
    }
    this.pending.clear();
    for (const w of this.waiters) {
      w.cancel();
      w.reject(new QmpConnectionError(`waiting for ${w.name}: ${reason}`));
    }
    this.waiters.clear();
  }

  private record(dir: '<' | '>' | '!', msg: unknown): void {
    if (!this.transcript) return;
    try {
      appendFileSync(this.transcript, qmpLine({ t: this.clock.now() / 1000, dir, msg }));
    } catch {
      // An unwritable results directory must not take the VM's monitor down with it; the runner
      // notices the unwritable directory on its own writes and reports it.
    }
  }
}

function openAndGreet(path: string, timeoutMs: number, clock: Clock): Promise<{ socket: Socket; greeting: Record<string, unknown>; rest: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let buf = '';
    const cancel = clock.deadline(timeoutMs, () => finish(new Error('no QMP greeting')));
    const finish = (err?: Error, value?: { socket: Socket; greeting: Record<string, unknown>; rest: string }) => {
      cancel();
      socket.removeAllListeners('data');
      socket.removeAllListeners('error');
      socket.removeAllListeners('close');
      if (err) {
        socket.destroy();
        reject(err);
      } else resolve(value!);
    };
    socket.on('error', (e) => finish(e));
    socket.on('close', () => finish(new Error('closed before the greeting')));
    socket.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        const greeting = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        if (!('QMP' in greeting)) throw new Error(`not a QMP greeting: ${buf.slice(0, nl)}`);
        finish(undefined, { socket, greeting, rest: buf.slice(nl + 1) });
      } catch (e) {
        finish(e as Error);
      }
    });
  });
}

/** Does `data` contain every key of `match` with an equal value (recursively)? */
export function contains(data: unknown, match: unknown): boolean {
  if (match === undefined) return true;
  if (match === null || typeof match !== 'object') return data === match;
  if (data === null || typeof data !== 'object') return false;
  return Object.entries(match).every(([k, v]) => contains((data as Record<string, unknown>)[k], v));
}

/** QEMU's version as its QMP greeting gives it: "7.2.22", with the package when it names one. */
export function qemuVersion(greeting: Record<string, unknown>): string | undefined {
  const v = (greeting.QMP as { version?: { qemu?: { major?: unknown; minor?: unknown; micro?: unknown }; package?: unknown } } | undefined)?.version;
  const q = v?.qemu;
  if (typeof q?.major !== 'number' || typeof q.minor !== 'number' || typeof q.micro !== 'number') return undefined;
  const pkg = typeof v?.package === 'string' ? v.package.trim() : '';
  return `${q.major}.${q.minor}.${q.micro}${pkg ? ` (${pkg})` : ''}`;
}
