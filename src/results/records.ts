// The line records of a repetition's transcripts, as their writers write them and their readers
// read them: one zod schema each, the type inferred from it (the runner's steps.jsonl here; the QMP
// and guest transcripts carry their clients' own records).
import * as z from 'zod';

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

/** The records of steps.jsonl that are step records (a line another writer added is left out). */
export function stepRecords(lines: readonly Record<string, unknown>[]): StepRecord[] {
  return lines.flatMap((l) => {
    const r = StepRecordSchema.safeParse(l);
    return r.success ? [r.data] : [];
  });
}
