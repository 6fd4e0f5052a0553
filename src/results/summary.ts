// What a run's results say, as summary.json holds them: the run, where it happened, each variant
// with its repetitions and expectations, and the exit status that follows from them. The zod schemas
// are the source: the types are inferred from them, and `report`, `compare` and `bundle` read
// summary.json through SummarySchema, so a file they accept is one these types describe.
import * as z from 'zod';
import { Knobs, Source } from '../experiment/schema.js';
import type { Accel, HostFacts } from '../model/host-facts.js';
import type { PinRecord } from '../model/threads.js';

/** true when A and B are assignable both ways: a schema that reads exactly a type declared elsewhere. */
type Agree<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

const AccelSchema = z.enum(['kvm', 'tcg']);
true satisfies Agree<z.output<typeof AccelSchema>, Accel>;

const count = z.number().int().min(0);

/** What was asked of the VM and what actually took effect, for the results. */
export const EffectiveSchema = z.looseObject({
  accel: AccelSchema,
  argv: z.array(z.string()),
  /** The disabled-exits mask KVM accepted, when known. */
  disableExitsMask: count.optional(),
});
export type Effective = z.output<typeof EffectiveSchema>;

export const ExpectationResultSchema = z.object({
  description: z.string(),
  metric: z.string(),
  /** e.g. "median vcpu.cpu_pct [vcpu1] @ parked >= 80" */
  claim: z.string(),
  passed: z.boolean(),
  /** The observed value, or null when no row matched. */
  observed: z.number().nullable(),
  /** One value per repetition, in repetition order. */
  perRepetition: z.array(z.number()),
  rows: count,
  note: z.string().optional(),
});
export type ExpectationResult = z.output<typeof ExpectationResultSchema>;

/** Where a run happened. On a nested host: the emulator under L1 and L1 itself; on a lab box over SSH: which box. */
export const RunTargetSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('local') }),
  z.object({
    kind: z.literal('nested'),
    l0: z.string(),
    l1: z.object({ kernel: z.string(), cpus: z.number().int().min(1), memoryMiB: z.number().int().min(1), cmdline: z.string(), image: z.string() }),
  }),
  /** A lab box the run was started on over SSH (--on ssh://…): which, and the host key it showed. */
  z.object({ kind: z.literal('ssh'), box: z.string(), hostKey: z.string() }),
]);
export type RunTarget = z.output<typeof RunTargetSchema>;

/** passed/failed: its claims were checked; unchecked: it ran but no claim applies to it; skipped: it did not run here; error: it broke. */
const VariantStatusSchema = z.enum(['passed', 'failed', 'error', 'skipped', 'unchecked']);
export type VariantStatus = z.output<typeof VariantStatusSchema>;

const PinRecordSchema = z.object({ thread: z.string(), tid: z.number().int(), requested: z.string(), actual: z.string() });
true satisfies Agree<z.output<typeof PinRecordSchema>, PinRecord>;

export const RepetitionResultSchema = z.object({
  repetition: z.number().int().min(1),
  /** completed: every step ran; error: something broke (reason says what). */
  status: z.enum(['completed', 'error']),
  reason: z.string().optional(),
  dir: z.string(),
  readySeconds: z.number().optional(),
  effective: EffectiveSchema.optional(),
  pinned: z.array(PinRecordSchema),
  collectors: z.record(z.string(), z.string()),
  /** The QEMU that ran it, from its QMP greeting ("7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)"). Absent in results written before kvmlab recorded it. */
  qemu: z.string().optional(),
});
export type RepetitionResult = z.output<typeof RepetitionResultSchema>;

const Insn = z.enum(['hlt', 'mwait', 'poll', 'none']);
const KvmAct = z.enum(['passed', 'blocks', 'nop-spin', 'none']);
/** What the plan said a cell measures (plan/mechanism.ts) and what its parked vCPUs were seen doing (run/observed-mechanism.ts). */
export const MechanismResultSchema = z.object({
  planned: z.object({ idle: Insn, idleKvm: KvmAct, parked: Insn, kvm: KvmAct, notes: z.array(z.string()) }),
  parked: z.array(
    z.object({
      step: z.string(),
      entity: z.string(),
      mwaitPerS: z.number().nullable(),
      hltPerS: z.number().nullable(),
      exitsPerS: z.number().nullable(),
      cpuPct: z.number().nullable(),
      kvm: z.union([KvmAct, z.literal('unclear')]),
      parkedIn: z.enum(['mwait', 'hlt', 'hlt or mwait', 'unknown']),
      asPlanned: z.boolean().optional(),
    }),
  ),
});
export type MechanismResult = z.output<typeof MechanismResultSchema>;

export const VariantResultSchema = z.object({
  id: z.string().min(1),
  labels: z.record(z.string(), z.string()),
  knobs: Knobs,
  status: VariantStatusSchema,
  reason: z.string().optional(),
  repetitions: z.array(RepetitionResultSchema),
  expectations: z.array(ExpectationResultSchema),
  /** The claims of the file that apply to this variant, checked or not. Absent in results written before kvmlab counted them. */
  claims: count.optional(),
  /** x86 under KVM only. Absent in results written before kvmlab recorded it. */
  mechanism: MechanismResultSchema.optional(),
  /** The host it ran on, read from that host as it ran (not from the request): uname -r, /proc/cmdline and QEMU's own version. With a host axis under --on nested, each L1's. Absent in results written before kvmlab recorded it. */
  ranOn: z.object({ kernel: z.string(), cmdline: z.string(), qemu: z.string().optional() }).optional(),
  /**
   * What watching cost over its sample and wait steps (every step when it has none), each a median
   * over repetitions: kvmlab's own CPU (observer.cpu_pct rows), the median step's and the costliest
   * step's; and, with kvm-exits, its histogram trigger's runs a second in the kernel (exits.traced
   * rows) at the busiest step, which run on the exiting vCPUs' threads and are in no CPU figure of
   * kvmlab's. tracedPerS is absent in results written before kvmlab recorded it.
   */
  observer: z
    .object({ medianCpuPct: z.number().min(0), maxCpuPct: z.number().min(0), maxStep: z.string(), tracedPerS: z.number().min(0).optional(), tracedStep: z.string().optional() })
    .optional(),
});
export type VariantResult = z.output<typeof VariantResultSchema>;

const HostSchema = z.object({
  arch: z.string(),
  kernelRelease: z.string(),
  cpuModel: z.string(),
  cpus: z.array(z.number().int().min(0)),
  kernelCmdline: z.string(),
  /** Absent in results written before kvmlab recorded it. */
  cpuVendor: z.string().optional(),
  kvmUsable: z.boolean(),
  /** The host's CPU flags say it is itself a guest ("hypervisor"). Absent in results written before kvmlab recorded it. */
  hypervisor: z.boolean().optional(),
  /** The KVM vendor module (kvm_intel, kvm_amd, kvm_pvm, …). */
  kvmModule: z.string().optional(),
  disableExitsMask: count,
  kvmParams: z.record(z.string(), z.string()),
});
type HostPicked = 'arch' | 'kernelRelease' | 'cpuModel' | 'cpus' | 'kernelCmdline' | 'cpuVendor';
true satisfies Agree<Pick<z.output<typeof HostSchema>, HostPicked>, Pick<HostFacts, Exclude<HostPicked, 'cpuVendor'>> & Partial<Pick<HostFacts, 'cpuVendor'>>>;

export const SummarySchema = z.object({
  experiment: z.string().min(1),
  description: z.string(),
  source: Source.optional(),
  file: z.string(),
  backend: z.string(),
  accel: AccelSchema,
  simulated: z.boolean(),
  /** Absent in results written before kvmlab recorded it: those ran on this host. */
  target: RunTargetSchema.optional(),
  startedAt: z.string(),
  finishedAt: z.string(),
  interrupted: z.boolean(),
  /** run --strict: a claim not checked (a skipped or unchecked variant) fails the run. */
  strict: z.boolean().optional(),
  /** run --shard I/N: this run is the I-th of N parts of one (kvmlab merge makes the whole); the cells it ran. */
  shard: z.object({ index: z.number().int().min(1), count: z.number().int().min(1), repetitions: z.number().int().min(1), cells: z.array(z.object({ variant: z.string(), repetition: z.number().int().min(1) })) }).optional(),
  host: HostSchema,
  notices: z.array(z.string()),
  variants: z.array(VariantResultSchema).min(1, 'a run has at least one variant'),
});
export type Summary = z.output<typeof SummarySchema>;

export const EXIT_INTERRUPTED = 130;

/** The claims a run checked and the ones it had to apply: each variant's that apply, checked where it passed or failed. */
export function claimCounts(summary: Summary): { checked: number; written: number } {
  let checked = 0;
  let written = 0;
  for (const v of summary.variants) {
    const applying = v.claims ?? v.expectations.length;
    written += applying;
    if (v.status === 'passed' || v.status === 'failed') checked += v.expectations.length;
  }
  return { checked, written };
}

/**
 * 130 interrupted (whatever had finished), else 1 some claim failed, 3 could not run (errors, or no
 * variant runnable here), 1 with --strict when a claim was not checked or a variant checked nothing,
 * else 0: every claim that was checked held.
 */
export function exitCodeOf(summary: Summary): number {
  const vs = summary.variants;
  if (summary.interrupted) return EXIT_INTERRUPTED;
  if (vs.some((v) => v.status === 'failed')) return 1;
  if (vs.some((v) => v.status === 'error')) return 3;
  if (vs.every((v) => v.status === 'skipped')) return 3;
  if (summary.strict) {
    const { checked, written } = claimCounts(summary);
    if (checked < written || vs.some((v) => v.status === 'unchecked')) return 1;
  }
  return 0;
}
