// Progress on stderr: one live line on a terminal (variant i/N, current step, elapsed), plain
// timestamped lines otherwise (CI logs, pipes).
import type { Progress } from '../model/progress.js';
import { formatDuration } from '../spec/units.js';

export function createProgress(stream: NodeJS.WriteStream = process.stderr, quiet = false): Progress {
  if (quiet) return { notice: () => undefined, variant: () => undefined, step: () => undefined, finished: () => undefined, close: () => undefined };
  return stream.isTTY ? new LiveProgress(stream) : new PlainProgress(stream);
}

class PlainProgress implements Progress {
  private readonly t0 = Date.now();
  private label = '';
  constructor(private readonly out: NodeJS.WritableStream) {}
  private line(text: string): void {
    this.out.write(`[${formatDuration(Date.now() - this.t0).padStart(6)}] ${text}\n`);
  }
  notice(text: string): void {
    this.line(text);
  }
  variant(i: number, n: number, id: string, rep: number, reps: number): void {
    this.label = `variant ${i}/${n} ${id}${reps > 1 ? ` rep ${rep}/${reps}` : ''}`;
    this.line(`${this.label}: starting`);
  }
  step(i: number, n: number, name: string): void {
    this.line(`${this.label}: step ${i}/${n} ${name}`);
  }
  finished(status: string, reason?: string): void {
    this.line(`${this.label}: ${status}${reason ? ` (${reason})` : ''}`);
  }
  close(): void {}
}

class LiveProgress implements Progress {
  private readonly t0 = Date.now();
  private variantAt = Date.now();
  private head = '';
  private tail = '';
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly out: NodeJS.WriteStream) {
    this.timer = setInterval(() => this.render(), 250).unref();
  }
  private render(): void {
    const text = `${this.head}  ${this.tail}  ${formatDuration(Date.now() - this.variantAt)} (total ${formatDuration(Date.now() - this.t0)})`;
    this.out.write(`\r\x1b[2K${text.slice(0, (this.out.columns ?? 100) - 1)}`);
  }
  private persist(text: string): void {
    this.out.write(`\r\x1b[2K${text}\n`);
    this.render();
  }
  notice(text: string): void {
    this.persist(text);
  }
  variant(i: number, n: number, id: string, rep: number, reps: number): void {
    this.variantAt = Date.now();
    this.head = `[${i}/${n}] ${id}${reps > 1 ? ` rep ${rep}/${reps}` : ''}`;
    this.tail = 'launching';
    this.render();
  }
  step(i: number, n: number, name: string): void {
    this.tail = `step ${i}/${n} ${name}`;
    this.render();
  }
  finished(status: string, reason?: string): void {
    this.persist(`${this.head}: ${status}${reason ? ` (${reason})` : ''} in ${formatDuration(Date.now() - this.variantAt)}`);
  }
  close(): void {
    clearInterval(this.timer);
    this.out.write('\r\x1b[2K');
  }
}
