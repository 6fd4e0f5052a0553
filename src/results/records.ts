// The records of a repetition's files, as their writers write them and their readers read them: one
// zod schema each, the type inferred from it, and the line it becomes. steps.jsonl (the runner),
// qmp.jsonl (the QMP client), guest.jsonl (the SSH client), vcpu-cpu.csv (the sampler). Readers
// keep what the schema describes and leave the rest out; writers are held to the type (the sampler
// writes thousands of lines a second, so its lines are typed, not checked one by one, and its
// reader applies the schema's rules by hand, for the same reason).
import * as z from 'zod';
import type { Effective } from './summary.js';

/** One line of steps.jsonl: a step as it ran, or the teardown (its `how`). Times in seconds since the epoch. */
export const StepRecordSchema = z.object({
  step: z.string(),
  kind: z.string().optional(),
  start: z.number().optional(),
  end: z.number(),
  ok: z.boolean().optional(),
  error: z.string().optional(),
  detail: z.record(z.string(), z.unknown()).optional(),
  /** teardown only: how QEMU went away. */
  how: z.string().optional(),
});
export type StepRecord = z.output<typeof StepRecordSchema>;

/** A step record as its line in steps.jsonl. */
export function stepLine(record: StepRecord): string {
  return `${JSON.stringify(record)}\n`;
}

/** The records of lines that the schema describes (a line of another kind is left out). */
function recordsOf<T extends z.ZodType>(schema: T, lines: readonly Record<string, unknown>[]): z.output<T>[] {
  return lines.flatMap((l) => {
    const r = schema.safeParse(l);
    return r.success ? [r.data] : [];
  });
}

/** The step records of steps.jsonl. */
export const stepRecords = (lines: readonly Record<string, unknown>[]) => recordsOf(StepRecordSchema, lines);

/** launch.json: what the backend launched and what took effect (read back with summary.ts's EffectiveSchema). */
export const launchText = (effective: Effective) => `${JSON.stringify(effective, null, 2)}\n`;

/** One line of qmp.jsonl: a message from QEMU (<), to it (>), or the monitor closing (!), at t (s). */
export const QmpRecordSchema = z.object({ t: z.number(), dir: z.enum(['<', '>', '!']), msg: z.unknown() });
export type QmpRecord = z.output<typeof QmpRecordSchema>;

export const qmpLine = (record: QmpRecord) => `${JSON.stringify(record)}\n`;
export const qmpRecords = (lines: readonly Record<string, unknown>[]) => recordsOf(QmpRecordSchema, lines);

/** One line of guest.jsonl: a guest command and what it returned (times: startedAt ms, t s). */
export const GuestCommandSchema = z.object({
  t: z.number(),
  cmd: z.string(),
  /** null: killed, or the channel died. */
  status: z.number().nullable(),
  stdout: z.string(),
  stderr: z.string(),
  startedAt: z.number(),
  durationMs: z.number(),
  timedOut: z.boolean(),
});
export type GuestCommand = z.output<typeof GuestCommandSchema>;
/** The other lines of guest.jsonl: the client's notes (ready after N attempts; a host key refused). */
export const GuestNoteSchema = z.object({ t: z.number(), ready: z.boolean().optional(), attempts: z.number().optional(), hostKeyMismatch: z.boolean().optional(), offered: z.string().optional() });
export type GuestNote = z.output<typeof GuestNoteSchema>;

export const guestLine = (record: GuestCommand | GuestNote) => `${JSON.stringify(record)}\n`;
export const guestCommands = (lines: readonly Record<string, unknown>[]) => recordsOf(GuestCommandSchema, lines);

/** One row of vcpu-cpu.csv: cumulative counters of one QEMU thread at one instant (t: s since the epoch). */
export const VcpuSampleSchema = z.object({
  t: z.number(),
  entity: z.string(),
  tid: z.number().int(),
  runNs: z.number(),
  waitNs: z.number(),
  slices: z.number(),
  guestNs: z.number(),
  lastCpu: z.number().int(),
});
export type VcpuSample = z.output<typeof VcpuSampleSchema>;

export const VCPU_SAMPLES_HEADER = 't,entity,tid,run_ns,wait_ns,timeslices,guest_ns,last_cpu\n';

/** A thread's counters in one row of vcpu-cpu.csv: the row less its instant and its thread. */
export type VcpuCounters = Omit<VcpuSample, 't' | 'entity' | 'tid'>;

/**
 * vcpu-cpu.csv as a sampler writes it, ten rows a second per thread: the header, then rows put
 * straight into bytes, each number's digits written where they go. No string is made per row: rows
 * made as strings and held until the next write kept V8's young-generation collector busy
 * (test/bench/sampler-overhead.mjs). The instant is formatted once for every thread read at it.
 */
export class VcpuSampleWriter {
  private buf = Buffer.allocUnsafe(64 * 1024);
  private n = 0;
  /** The current instant's `t,` as bytes. */
  private at: Uint8Array = new Uint8Array();

  /** `out` takes each batch of bytes, its own to keep. */
  constructor(private readonly out: (bytes: Buffer) => void) {
    out(Buffer.from(VCPU_SAMPLES_HEADER));
  }

  /** The rows that follow are of instant `t` (s since the epoch). */
  instant(t: number): void {
    this.at = Buffer.from(`${t},`);
  }

  /** One thread's row at the current instant. */
  row(entity: string, tid: number, c: Readonly<VcpuCounters>): void {
    if (this.buf.length - this.n < 256 + entity.length + this.at.length) {
      const bigger = Buffer.allocUnsafe(this.buf.length * 2);
      this.buf.copy(bigger, 0, 0, this.n);
      this.buf = bigger;
    }
    const b = this.buf;
    b.set(this.at, this.n);
    let n = this.n + this.at.length;
    for (let i = 0; i < entity.length; i++) b[n++] = entity.charCodeAt(i);
    b[n++] = 0x2c;
    n = digits(b, n, tid);
    b[n++] = 0x2c;
    n = digits(b, n, c.runNs);
    b[n++] = 0x2c;
    n = digits(b, n, c.waitNs);
    b[n++] = 0x2c;
    n = digits(b, n, c.slices);
    b[n++] = 0x2c;
    n = digits(b, n, c.guestNs);
    b[n++] = 0x2c;
    n = digits(b, n, c.lastCpu);
    b[n++] = 0x0a;
    this.n = n;
  }

  /** Hand the rows so far to `out`. */
  flush(): void {
    if (this.n === 0) return;
    this.out(Buffer.from(this.buf.subarray(0, this.n)));
    this.n = 0;
  }
}

/**
 * An integer's decimal digits into `b` at `n`, as String(v) writes them; returns where they end.
 * Exact for every safe integer (v / 10 rounds, but never across a whole number below 2^53); a value
 * that is not one is written by String(), which the reader then rejects as it would any.
 */
function digits(b: Buffer, n: number, v: number): number {
  if (!Number.isSafeInteger(v)) return n + b.write(String(v), n, 'latin1');
  if (v < 0) {
    b[n++] = 0x2d;
    v = -v;
  }
  let len = 1;
  for (let x = v; x >= 10; x = Math.floor(x / 10)) len++;
  for (let i = n + len - 1; i >= n; i--) {
    const q = Math.floor(v / 10);
    b[i] = 0x30 + (v - q * 10);
    v = q;
  }
  return n + len;
}

/**
 * The samples of vcpu-cpu.csv text (none when it is not one); a row VcpuSampleSchema does not
 * describe (cut short, not numbers) is left out. A run's file holds hundreds of thousands of rows,
 * so each is held to the schema's rules (finite numbers, whole tid and CPU) by hand: 100,000 rows
 * read in 78–93 ms so, in 160–200 ms through zod.
 */
export function parseVcpuSamples(text: string): VcpuSample[] {
  const lines = text.split('\n');
  if (`${lines[0]}\n` !== VCPU_SAMPLES_HEADER) return [];
  const out: VcpuSample[] = [];
  const num = (f: string) => (f === '' ? NaN : Number(f));
  for (const line of lines.slice(1)) {
    const f = line.split(',');
    if (f.length !== 8 || !f[1]) continue;
    const s: VcpuSample = { t: num(f[0]!), entity: f[1], tid: num(f[2]!), runNs: num(f[3]!), waitNs: num(f[4]!), slices: num(f[5]!), guestNs: num(f[6]!), lastCpu: num(f[7]!) };
    if ([s.t, s.runNs, s.waitNs, s.slices, s.guestNs].every(Number.isFinite) && Number.isInteger(s.tid) && Number.isInteger(s.lastCpu)) out.push(s);
  }
  return out;
}
