// The records of a repetition's files, as their writers write them and their readers read them: one
// zod schema each, the type inferred from it, and the line it becomes. steps.jsonl (the runner),
// qmp.jsonl (the QMP client), guest.jsonl (the SSH client), vcpu-cpu.csv (the sampler). Readers
// keep what the schema describes and leave the rest out; writers are held to the type (the sampler
// writes thousands of lines a second, so its lines are typed, not checked one by one).
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
const VCPU_FIELDS = ['t', 'entity', 'tid', 'runNs', 'waitNs', 'slices', 'guestNs', 'lastCpu'] as const;

export function vcpuSampleLine(s: VcpuSample): string {
  return `${s.t},${s.entity},${s.tid},${s.runNs},${s.waitNs},${s.slices},${s.guestNs},${s.lastCpu}\n`;
}

/** The samples of vcpu-cpu.csv text (none when it is not one); a row the schema does not describe (cut short, not numbers) is left out. */
export function parseVcpuSamples(text: string): VcpuSample[] {
  const lines = text.split('\n');
  if (`${lines[0]}\n` !== VCPU_SAMPLES_HEADER) return [];
  const out: VcpuSample[] = [];
  for (const line of lines.slice(1)) {
    const f = line.split(',');
    if (f.length !== VCPU_FIELDS.length) continue;
    const raw = Object.fromEntries(VCPU_FIELDS.map((k, i) => [k, k === 'entity' ? f[i] : f[i] === '' ? NaN : Number(f[i])]));
    const r = VcpuSampleSchema.safeParse(raw);
    if (r.success && Number.isFinite(r.data.t) && Number.isFinite(r.data.runNs)) out.push(r.data);
  }
  return out;
}
