// The seam's clock: every wait, window, deadline and timestamp of a run goes through it. Real QEMU
// gets the real monotonic clock. The mock gets a virtual one, so a `sample: 10s` window costs no
// wall time and rates stay exact: the simulated host computes its counters from the same clock the
// collectors divide by.
//
// Virtual time moves only when something waits on it, and only while nothing is in flight:
// - `sleep` (a step's window, a retry's backoff, the simulation's own scheduled events) pulls time
//   forward to when it is due;
// - `every` (a sampler) is passive: it fires as time passes it, never pulls time by itself, and its
//   tick's own work (a returned promise) is in flight until it settles;
// - `deadline` (a guard on something expected sooner) and the simulation's own scheduled events
//   (VirtualClock.schedule: an ACPI event, an unplug completing, a simulated crash) are passive
//   too; when nothing pulls and nothing is in flight for a short quiet spell of real time, time moves
//   to the earliest of them: nothing else is going to happen first. Like an unref'd timer, they never
//   keep the process alive on their own;
// - `busy` marks work whose answer does not depend on the clock (a QMP command, an SSH exchange):
//   time stands still until it settles, or until it has stalled for a grace of real time (a peer that
//   hung), after which time moves on so that its deadline can fire.
import { performance } from 'node:perf_hooks';
import { setTimeout as realSleep } from 'node:timers/promises';

export interface Clock {
  /** Milliseconds since the epoch; never goes backwards. */
  now(): number;
  /** Resolves after `ms` on this clock; rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Calls `fn` every `ms` until the returned function is called; a tick's returned promise is in flight. */
  every(ms: number, fn: () => unknown): () => void;
  /** Calls `fn` once after `ms` unless the returned function is called first: a deadline. */
  deadline(ms: number, fn: () => void): () => void;
  /** `work`, marked as in flight: its answer does not depend on this clock. */
  busy<T>(work: Promise<T>): Promise<T>;
}

/** The host's monotonic clock, anchored to the epoch at process start. */
export const realClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  sleep: (ms, signal) => realSleep(ms, undefined, signal ? { signal } : undefined),
  every(ms, fn) {
    const t = setInterval(fn, ms);
    return () => clearInterval(t);
  },
  deadline(ms, fn) {
    const t = setTimeout(fn, ms).unref();
    return () => clearTimeout(t);
  },
  busy: (work) => work,
};

interface Timer {
  due: number;
  seq: number;
  fn: () => unknown;
  /** sleep pulls time to it; every and once are passive (once: a deadline or a scheduled event). */
  kind: 'sleep' | 'every' | 'once';
  interval?: number;
}

/** Real milliseconds of quiet before time moves to a passive timer nothing pulls towards. */
const DEADLINE_QUIET_MS = 20;
/** Real milliseconds busy work may stall the clock before it moves on regardless. */
const BUSY_GRACE_MS = 2000;

/** Virtual time for the simulated host and guest (see the top of this file). */
export class VirtualClock implements Clock {
  private t: number;
  private readonly timers: Timer[] = [];
  private seq = 0;
  private inFlight = 0;
  /** Bumped whenever something the clock can see happens; time moves only after a quiet turn. */
  private generation = 0;
  private seen = -1;
  private pumping = false;
  private waiter: NodeJS.Timeout | undefined;
  /** Where time is headed when no sleep pulls it: the passive timer found after a quiet spell. */
  private target: Timer | undefined;

  constructor(start = Date.now()) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        cancel();
        reject(signal!.reason);
      };
      const cancel = this.add(ms, 'sleep', () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  every(ms: number, fn: () => unknown): () => void {
    return this.add(ms, 'every', fn, Math.max(1, ms));
  }

  deadline(ms: number, fn: () => void): () => void {
    return this.add(ms, 'once', fn);
  }

  /** Something the simulation makes happen `ms` from now: it happens when time gets there. */
  schedule(ms: number, fn: () => void): () => void {
    return this.add(ms, 'once', fn);
  }

  busy<T>(work: Promise<T>): Promise<T> {
    this.inFlight++;
    this.touch();
    const done = () => {
      this.inFlight--;
      this.touch();
    };
    work.then(done, done);
    return work;
  }

  private add(ms: number, kind: Timer['kind'], fn: () => unknown, interval?: number): () => void {
    const timer: Timer = { due: this.t + Math.max(0, ms), seq: this.seq++, fn, kind, ...(interval ? { interval } : {}) };
    this.insert(timer);
    this.touch();
    return () => {
      const i = this.timers.indexOf(timer);
      if (i >= 0) this.timers.splice(i, 1);
      timer.interval = undefined; // an interval cancelled from its own tick is not put back
      if (this.target === timer) this.target = undefined;
      this.touch();
    };
  }

  private insert(timer: Timer): void {
    let i = this.timers.length;
    while (i > 0 && (this.timers[i - 1]!.due > timer.due || (this.timers[i - 1]!.due === timer.due && this.timers[i - 1]!.seq > timer.seq))) i--;
    this.timers.splice(i, 0, timer);
  }

  private touch(): void {
    this.generation++;
    if (this.pumping) return;
    this.pumping = true;
    setImmediate(this.pump);
  }

  private readonly pump = (): void => {
    this.pumping = false;
    clearTimeout(this.waiter);
    this.waiter = undefined;
    const next = this.timers[0];
    if (!next) return;
    if (this.generation !== this.seen) {
      // Something happened in the last turn: give its consequences (a socket write, a resolved
      // promise) one more turn of the event loop before time moves.
      this.seen = this.generation;
      this.pumping = true;
      setImmediate(this.pump);
      return;
    }
    if (this.inFlight > 0) return this.waitReal(BUSY_GRACE_MS, 'fire');
    const pull = this.timers.find((t) => t.kind === 'sleep') ?? this.target;
    if (pull && next.due <= pull.due) {
      // Sampler ticks that did their work at once, starting nothing, need no quiet turn between them.
      for (let t: Timer | undefined = next, n = 0; t && t.due <= pull.due && n < 256; t = this.timers[0], n++) {
        if (!this.fire(t) || this.inFlight > 0) return;
      }
      return;
    }
    const once = this.timers.find((t) => t.kind === 'once');
    if (once) this.waitReal(DEADLINE_QUIET_MS, once);
  };

  /**
   * Nothing may move now. If nothing happens for `ms` of real time: head for the timer `then`, or
   * ('fire') fire the next timer although work is still in flight.
   */
  private waitReal(ms: number, then: Timer | 'fire'): void {
    const at = this.generation;
    this.waiter = setTimeout(() => {
      this.waiter = undefined;
      const next = this.timers[0];
      if (this.generation !== at || !next) return this.touch();
      if (then === 'fire') return this.fire(next);
      this.target = then;
      this.touch();
    }, ms).unref();
  }

  /** Fires the timer; true when it was a tick that finished at once and touched nothing else. */
  private fire(timer: Timer): boolean {
    this.timers.splice(this.timers.indexOf(timer), 1);
    this.t = Math.max(this.t, timer.due);
    if (this.target === timer) this.target = undefined;
    if (timer.interval) {
      timer.due += timer.interval;
      this.insert(timer);
    }
    this.touch();
    const before = this.generation;
    const out = timer.fn();
    if (out instanceof Promise) {
      void this.busy(out).catch(() => undefined);
      return false;
    }
    return timer.kind === 'every' && this.generation === before;
  }
}
/** Resolves true when `p` settles within `ms` on `clock`, false when the deadline passes first. */
export function settlesWithin(clock: Clock, p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const cancel = clock.deadline(ms, () => resolve(false));
    p.then(
      () => resolve(true),
      () => resolve(true),
    ).finally(cancel);
  });
}
