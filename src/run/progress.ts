// Progress on stderr: one live line on a terminal (variant i/N, repetition, current step, elapsed,
// time left), plain timestamped lines otherwise (CI logs, pipes).
// Whatever draws it, where the run is goes to the heartbeat too (targets/heartbeat.ts), for a
// watcher outside this process.
import type { Progress, RunAt } from '../model/progress.js';
import { beatDoing } from '../targets/heartbeat.js';
import { formatDuration } from '../experiment/units.js';

export function createProgress(stream: NodeJS.WriteStream = process.stderr, quiet = false): Progress {
  if (quiet) return beating({ ...noticesOnly(stream), notice: () => undefined });
  return beating(stream.isTTY ? new LiveProgress(stream) : new PlainProgress(stream));
}

/** Notices as plain lines and no run to follow: for a command that runs nothing (`kvmlab plan`). */
export function noticesOnly(stream: NodeJS.WritableStream): Progress {
  return { notice: (text) => void stream.write(`${text}\n`), variant: () => undefined, step: () => undefined, stage: () => undefined, finished: () => undefined, close: () => undefined };
}

/** `p`, telling the heartbeat each place the run reaches. */
function beating(p: Progress): Progress {
  let label = '';
  return {
    notice: (text) => p.notice(text),
    variant(at) {
      label = runLabel(at);
      beatDoing(`${label}: launching`);
      p.variant(at);
    },
    step(i, n, name) {
      beatDoing(`${label}: step ${i}/${n} ${name}`);
      p.step(i, n, name);
    },
    stage(text) {
      beatDoing(`${label}: ${text}`);
      p.stage(text);
    },
    finished(status, reason) {
      beatDoing(`${label}: ${status}`);
      p.finished(status, reason);
    },
    close: () => p.close(),
  };
}

/**
 * The time a run has left. A run's declared windows (sample:, wait:) are known from the file; the
 * rest of it — boot, the steps that take what they take, teardown — only from the runs before: each
 * run left is taken to last its windows plus the mean time completed runs spent outside theirs.
 * Until a run has completed, what is known is a lower bound: the windows left.
 */
export class Eta {
  private at: RunAt | undefined;
  private startedAt = 0;
  private readonly outside: number[] = [];

  start(at: RunAt, now: number): void {
    this.at = at;
    this.startedAt = now;
  }

  finished(status: string, now: number): void {
    if (this.at && status === 'completed') this.outside.push(Math.max(0, now - this.startedAt - this.at.windowsMs));
  }

  /** "about 4m10s left", "at least 40.0s left", or undefined when nothing is known to be left. */
  text(now: number): string | undefined {
    if (!this.at) return undefined;
    const measured = this.outside.length > 0;
    const perRun = this.at.windowsMs + (measured ? this.outside.reduce((a, b) => a + b, 0) / this.outside.length : 0);
    const left = Math.max(0, perRun - (now - this.startedAt)) + (this.at.runs - this.at.run) * perRun;
    if (!measured && left === 0) return undefined;
    return `${measured ? 'about' : 'at least'} ${formatDuration(Math.round(left / 1000) * 1000)} left`;
  }
}

/** "variant 3/8 disable_exits=hlt rep 2/3" (the repetition only when there are several). */
function runLabel(at: RunAt): string {
  return `variant ${at.variant}/${at.variants} ${at.id}${at.repetitions > 1 ? ` rep ${at.repetition}/${at.repetitions}` : ''}`;
}

class PlainProgress implements Progress {
  private readonly t0 = Date.now();
  private readonly eta = new Eta();
  private label = '';
  constructor(private readonly out: NodeJS.WritableStream) {}
  private line(text: string): void {
    this.out.write(`[${formatDuration(Date.now() - this.t0).padStart(6)}] ${text}\n`);
  }
  notice(text: string): void {
    this.line(text);
  }
  variant(at: RunAt): void {
    this.eta.start(at, Date.now());
    this.label = runLabel(at);
    const left = this.eta.text(Date.now());
    this.line(`${this.label}: starting${left ? ` (${left})` : ''}`);
  }
  step(i: number, n: number, name: string): void {
    this.line(`${this.label}: step ${i}/${n} ${name}`);
  }
  /** Stages are not printed here (a line per stage of every repetition is noise in a CI log); the heartbeat has them. */
  stage(): void {}
  finished(status: string, reason?: string): void {
    this.eta.finished(status, Date.now());
    this.line(`${this.label}: ${status}${reason ? ` (${reason})` : ''}`);
  }
  close(): void {}
}

class LiveProgress implements Progress {
  private readonly t0 = Date.now();
  private readonly eta = new Eta();
  private variantAt = Date.now();
  private head = '';
  private tail = '';
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly out: NodeJS.WriteStream) {
    this.timer = setInterval(() => this.render(), 250).unref();
  }
  private render(): void {
    const left = this.eta.text(Date.now());
    const text = `${this.head}  ${this.tail}  ${formatDuration(Date.now() - this.variantAt)} (total ${formatDuration(Date.now() - this.t0)}${left ? `, ${left}` : ''})`;
    this.out.write(`\r\x1b[2K${text.slice(0, (this.out.columns ?? 100) - 1)}`);
  }
  private persist(text: string): void {
    this.out.write(`\r\x1b[2K${text}\n`);
    this.render();
  }
  notice(text: string): void {
    this.persist(text);
  }
  variant(at: RunAt): void {
    this.variantAt = Date.now();
    this.eta.start(at, this.variantAt);
    this.head = runLabel(at);
    this.tail = 'launching';
    this.render();
  }
  step(i: number, n: number, name: string): void {
    this.tail = `step ${i}/${n} ${name}`;
    this.render();
  }
  stage(text: string): void {
    this.tail = text;
    this.render();
  }
  finished(status: string, reason?: string): void {
    this.eta.finished(status, Date.now());
    this.persist(`${this.head}: ${status}${reason ? ` (${reason})` : ''} in ${formatDuration(Date.now() - this.variantAt)}`);
  }
  close(): void {
    clearInterval(this.timer);
    this.out.write('\r\x1b[2K');
  }
}
