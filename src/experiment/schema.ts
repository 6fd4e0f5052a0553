// What an experiment file can say. The zod schemas are the single source: the TypeScript types are
// inferred from them and the editor JSON Schema (schema/experiment.schema.json) is generated from them.
import * as z from 'zod';
import { parseCpuList } from '../model/cpulist.js';
import { EXIT_NAMES, type ExitName as ExitNameT } from '../model/exits.js';
import { COMPARATORS } from '../model/metric-desc.js';
import { AGGS } from '../model/select.js';
import { describeIssue, unknownFieldLines, unknownFieldsMessage } from './issues.js';
import { parseDuration, parseSizeMiB } from './units.js';

/** An object that refuses unknown fields, says which ones it knows, and which one a slip meant. */
function strict<T extends z.core.$ZodLooseShape>(shape: T) {
  const known = Object.keys(shape);
  return z.strictObject(shape, { error: (issue) => (issue.code === 'unrecognized_keys' ? unknownFieldsMessage(issue.keys, known) : undefined) });
}

const duration = z
  .union([z.number(), z.string()])
  .transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined || ms > 86_400_000) {
      ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration; write e.g. 500ms, 5s, 2m (at most 24h), or a number of seconds` });
      return z.NEVER;
    }
    return ms;
  });

const sizeMiB = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const mib = parseSizeMiB(v);
  if (mib === undefined || mib > 1024 * 1024) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a memory size; write e.g. 512M or 2G (at most 1T)` });
    return z.NEVER;
  }
  return mib;
});

const cpuSet = z.union([z.string(), z.number().int()]).transform((v, ctx) => {
  try {
    const cpus = parseCpuList(String(v));
    if (cpus.length === 0) throw new Error('empty CPU list');
    return cpus;
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: `${(e as Error).message}; write a host CPU list such as "2" or "2-3,6"` });
    return z.NEVER;
  }
});

const slug = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'use 1-64 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit');
const identifier = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, 'use 1-64 characters of letters, digits, "_", "." or "-", starting with a letter');
const metricName = z
  .string()
  .regex(/^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$/, 'metric names are dotted lower-case words, e.g. vcpu.cpu_pct');
const guestCpu = z.number().int().min(0).max(1023);
const shortText = z.string().min(1).max(4096);

export const ExitName = z.enum(EXIT_NAMES as [ExitNameT, ...ExitNameT[]]);

export const Source = z.union([
  shortText,
  strict({ list: shortText, date: shortText, subject: shortText, url: shortText.optional() }),
]);

export const Requires = strict({
  /** Host architectures the experiment makes sense on (uname -m). */
  arch: z.array(z.enum(['x86_64', 'ppc64le', 'aarch64'])).min(1).optional(),
  /** kvm: the host must run this guest under KVM; tcg: must run under TCG; any: either. */
  accel: z.enum(['kvm', 'tcg', 'any']).default('any'),
  /** Host CPU flags from /proc/cpuinfo, e.g. mwait, vmx. */
  cpu_flags: z.array(z.string().regex(/^[a-z0-9_]+$/, 'a /proc/cpuinfo flag such as mwait')).default([]),
  /** Host kernel command line parameters: "nohz_full" (present) or "rcutree.use_softirq=0" (exact). */
  kernel_params: z.array(shortText).default([]),
  /** Host paths that must exist, e.g. /dev/vfio/vfio. */
  devices: z.array(z.string().startsWith('/', 'an absolute path such as /dev/vfio/vfio')).default([]),
  /** Host interrupt rows that must exist in /proc/interrupts, e.g. PIW. */
  interrupts: z.array(z.string().regex(/^[A-Za-z0-9_]+$/)).default([]),
  root: z.boolean().default(false),
});

export const Guest = strict({
  arch: z.enum(['x86_64', 'ppc64']),
  /** QEMU machine type; default q35 on x86_64, pseries on ppc64. */
  machine: identifier.optional(),
  /** QEMU -cpu model; default host under KVM, qemu64 / power9 under TCG. */
  cpu: z.string().regex(/^[A-Za-z0-9_.,=+-]+$/, 'a QEMU -cpu model such as host or qemu64').optional(),
  cpus: z.number().int().min(1).max(1024),
  maxcpus: z.number().int().min(1).max(1024).optional(),
  memory: sizeMiB.optional(),
  /** Kernel, initrd and disk image; when all are absent kvmlab's own image for the arch is used. */
  kernel: shortText.optional(),
  initrd: shortText.optional(),
  image: shortText.optional(),
  /** Extra guest kernel command line. */
  append: z.string().max(2048).optional(),
  /** Host PCI devices given to the guest through VFIO (QEMU's vfio-pci); kvmlab binds each to vfio-pci for the run and gives it back after. */
  devices: z.array(strict({ vfio: z.string().regex(/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/, 'a PCI address as lspci -D prints it, e.g. 0000:01:00.0') })).max(16).default([]),
  /** How to reach a user-supplied guest over SSH (kvmlab's own image needs none of this). */
  ssh: strict({
    user: identifier.default('root'),
    port: z.number().int().min(1).max(65535).default(22),
    key: shortText,
    host_key: shortText,
  }).optional(),
  ready_timeout: duration.default(300_000),
});

/** A tracefs event, SYSTEM:EVENT, the event part may be a glob: kvm:kvm_exit, sched:*. */
const tracefsEvent = z.string().regex(/^[a-z0-9_]+:[a-z0-9_*]+$/, 'a tracefs event such as kvm:kvm_exit');

/** A nested host's kernel by Debian series: debian:6.12. */
export const HostKernel = z.string().regex(/^debian:\d+\.\d+$/, 'a Debian kernel series such as debian:6.12');

const kernelCmdline = z.string().regex(/^[A-Za-z0-9_.,=:+\/ -]*$/, 'kernel parameters such as nohz_full=2-3 isolcpus=2-3').max(1024);

/** A kernel of the user's own for L1: a bzImage and, when KVM is modular, its lib/modules/RELEASE directory (both relative to the experiment file). */
export const OwnKernel = strict({ path: shortText, modules: shortText.optional() });

/** The KVM host kvmlab boots under TCG for `--on nested` (L1): its size, kernel and kernel command line. */
export const NestedHost = strict({
  /** L1 CPUs; default: enough that every pinned host CPU exists (highest pinned + 1), at least guest cpus + 1. */
  cpus: z.number().int().min(1).max(64).optional(),
  /** L1 memory; default: the guest's memory + 1.5G. */
  memory: sizeMiB.optional(),
  /** Extra L1 kernel command line, e.g. nohz_full=2-3 isolcpus=2-3 rcutree.use_softirq=0. */
  cmdline: kernelCmdline.optional(),
  /** L1's kernel: a Debian series (debian:6.12), built into its own image by `kvmlab image build --arch nested-host --kernel debian:6.12`; default the host's Debian kernel. */
  kernel: HostKernel.optional(),
  /**
   * Tracepoints the experiment's host: steps enable in L1 (a trace-cmd or a trigger of their own),
   * held still from L1's boot with the collectors' own (host-scripts/nested-pin.c says why).
   */
  tracepoints: z.array(tracefsEvent).min(1).optional(),
});

/**
 * The matrix axis that varies the host itself: each label names the KVM host a variant runs in —
 * its kernel and the boot parameters added to nested.cmdline. With --on nested kvmlab boots one L1
 * per label; elsewhere a label runs only on a host that already is what it names.
 */
export const HOST_AXIS = 'host';
export const HostValue = strict({
  /** L1's kernel for this label: a Debian series (debian:6.12) or a kernel of the user's own; absent: nested.kernel. */
  kernel: z.union([HostKernel, OwnKernel]).optional(),
  /** Boot parameters added, for this label, to nested.cmdline. */
  cmdline: kernelCmdline.optional(),
  /** The QEMU binary that runs the guest for this label (a build tree's qemu-system-x86_64, relative to the experiment file); absent: --qemu, else the host's. */
  qemu: shortText.optional(),
});
export type HostValue = z.output<typeof HostValue>;

export const Knobs = strict({
  /** Exits KVM passes through to the guest (KVM_CAP_X86_DISABLE_EXITS bits), or "cpu-pm" for QEMU's all-allowed mode. */
  disable_exits: z.union([z.array(ExitName), z.literal('cpu-pm')]).default([]),
  /** MONITOR/MWAIT in the guest CPUID; default: when mwait is passed through or cpu-pm is asked. */
  expose_mwait: z.boolean().optional(),
  /** KVM halt polling for this VM in ns (KVM_CAP_HALT_POLL); absent: the host's default. */
  halt_poll_ns: z.number().int().min(0).max(1_000_000_000).optional(),
  /** Guest idle= parameter. */
  guest_idle: z.enum(['default', 'poll', 'halt', 'nomwait']).default('default'),
  /** Guest cpuidle-haltpoll (cpuidle_haltpoll.force=1, kvm-hint-dedicated). */
  guest_haltpoll: z.boolean().default(false),
});
export const KNOB_NAMES = Object.keys(Knobs.shape) as (keyof typeof Knobs.shape)[];

const axisLabel = z.union([z.string(), z.number(), z.boolean()]);

/** A knob value's label in variant ids and `when:` ([hlt, mwait] → hlt+mwait, [] → none, true → on). */
export function labelOf(value: unknown): string {
  if (Array.isArray(value)) return value.length === 0 ? 'none' : value.map(labelOf).join('+');
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  return String(value);
}

/** Matrix axes: a knob name with a list of values, or any other name with labelled knob presets. */
export const Matrix = z.record(identifier, z.union([z.array(z.unknown()).min(1).max(1000), z.record(slug, z.record(z.string(), z.unknown()))])).superRefine(
  (axes, ctx) => {
    // Two axes that set one knob: in a variant the later would silently undo the earlier.
    const setter = new Map<string, string>();
    for (const [axis, values] of Object.entries(axes)) {
      if (axis === HOST_AXIS) continue;
      const sets = (KNOB_NAMES as string[]).includes(axis) ? [axis] : Array.isArray(values) ? [] : [...new Set(Object.values(values).flatMap((p) => Object.keys(p)))];
      for (const knob of sets) {
        const first = setter.get(knob);
        if (first === undefined) setter.set(knob, axis);
        else ctx.addIssue({ code: 'custom', path: [axis], message: `axis "${axis}" sets ${knob}, which axis "${first}" sets too: in the variants where both do, the later would silently override the earlier; set ${knob} in one axis only` });
      }
    }
    for (const [axis, values] of Object.entries(axes)) {
      if (axis === HOST_AXIS) {
        hostAxisIssues(values, ctx);
        continue;
      }
      if ((KNOB_NAMES as string[]).includes(axis)) {
        if (!Array.isArray(values)) {
          ctx.addIssue({ code: 'custom', path: [axis], message: `knob axis "${axis}" takes a list of values` });
          continue;
        }
        const knob = Knobs.shape[axis as keyof typeof Knobs.shape];
        // Two values that ask the same of KVM (equal, or the same set in another order) would run one
        // variant twice, under one id or two: refused, naming the first (params.sameAs: its index).
        const seen = new Map<string, number>();
        values.forEach((v, i) => {
          const r = knob.safeParse(v, { reportInput: true });
          if (!r.success) for (const iss of r.error.issues) ctx.addIssue({ code: 'custom', path: [axis, i, ...iss.path], message: describeIssue(iss) });
          const key = JSON.stringify(Array.isArray(v) ? [...new Set(v.map(String))].sort() : v);
          const first = seen.get(key);
          if (first === undefined) seen.set(key, i);
          else ctx.addIssue({ code: 'custom', path: [axis, i], params: { sameAs: first }, message: `${axis} ${labelOf(v)} is the same as ${axis}[${first}] (${labelOf(values[first])}){sameAs}: the variant would run twice${labelOf(v) === labelOf(values[first]) ? ' under one id, its results overwriting each other' : ' under two ids'}; remove one` });
        });
      } else if (Array.isArray(values)) {
        ctx.addIssue({
          code: 'custom',
          path: [axis],
          message: `"${axis}" is not a knob (${KNOB_NAMES.join(', ')}); a preset axis maps labels to knob settings, e.g. ${axis}: {label: {disable_exits: [hlt]}}`,
        });
      } else if (Object.keys(values).length === 0) {
        // The matrix is the product of its axes: one with no labels leaves no variant, and every claim would check nothing.
        ctx.addIssue({ code: 'custom', path: [axis], message: `preset axis "${axis}" has no labels, which leaves the matrix no variant to run or check; give it at least one, e.g. ${axis}: {label: {halt_poll_ns: 0}}, or remove it` });
      } else {
        for (const [label, preset] of Object.entries(values)) {
          const r = Knobs.partial().safeParse(preset, { reportInput: true });
          for (const iss of r.error?.issues ?? []) {
            const at = [axis, label, ...iss.path];
            // params.key: the loader reports the problem at that key's own line (experiment/load.ts)
            if (iss.code === 'unrecognized_keys') for (const { key, message } of unknownFieldLines(iss)) ctx.addIssue({ code: 'custom', path: at, message, params: { key } });
            else ctx.addIssue({ code: 'custom', path: at, message: describeIssue(iss) });
          }
        }
      }
    }
  },
);

/** The host axis: labels, each naming a host (kernel, boot parameters); two labels naming one host would run one variant twice. */
function hostAxisIssues(values: unknown[] | Record<string, Record<string, unknown>>, ctx: z.core.$RefinementCtx<unknown>): void {
  const example = `${HOST_AXIS}: {before: {kernel: debian:6.1}, after: {kernel: debian:6.12, cmdline: "rcutree.nocb_patience_delay=1000"}}`;
  if (Array.isArray(values) || Object.keys(values).length === 0) {
    ctx.addIssue({ code: 'custom', path: [HOST_AXIS], message: `the host axis maps labels to the host each runs in (kernel, cmdline), e.g. ${example}` });
    return;
  }
  const seen = new Map<string, string>();
  for (const [label, value] of Object.entries(values)) {
    const r = HostValue.safeParse(value, { reportInput: true });
    if (!r.success) {
      for (const iss of r.error.issues) {
        const at = [HOST_AXIS, label, ...iss.path];
        if (iss.code === 'unrecognized_keys') for (const { key, message } of unknownFieldLines(iss)) ctx.addIssue({ code: 'custom', path: at, message, params: { key } });
        else ctx.addIssue({ code: 'custom', path: at, message: describeIssue(iss) });
      }
      continue;
    }
    const key = JSON.stringify([r.data.kernel ?? null, (r.data.cmdline ?? '').split(/\s+/).filter(Boolean).sort(), r.data.qemu ?? null]);
    const first = seen.get(key);
    if (first === undefined) seen.set(key, label);
    else ctx.addIssue({ code: 'custom', path: [HOST_AXIS, label], message: `host ${label} names the same host as host ${first} (kernel, boot parameters and QEMU): the variant would run twice under two ids; remove one, or make them differ` });
  }
}

export const Pinning = strict({
  /** vCPU index → host CPU set, as libvirt's <vcpupin vcpu= cpuset=>. */
  vcpupin: z.record(z.string().regex(/^\d+$/, 'a vCPU index such as 0'), cpuSet).default({}),
  /** Host CPU set for QEMU's non-vCPU threads, as libvirt's <emulatorpin>. */
  emulatorpin: cpuSet.optional(),
});

// ---- steps -------------------------------------------------------------------------------------

const GuestAction = z.union([
  shortText,
  strict({
    cmd: shortText,
    /** Parse the command's stdout as a number into metric guest.<record>. */
    record: z.string().regex(/^[a-z][a-z0-9_]*$/, 'a lower-case word such as refusals').optional(),
    /** Fail the step when the command exits non-zero (default true). */
    check: z.boolean().default(true),
  }),
]);
const HotplugAction = z.union([
  z.null(),
  strict({
    id: identifier.optional(),
    'socket-id': z.number().int().min(0).optional(),
    'core-id': z.number().int().min(0).optional(),
    'thread-id': z.number().int().min(0).optional(),
  }),
]);
const UnplugAction = z.union([
  identifier,
  strict({ id: identifier, expect: z.enum(['removed', 'refused', 'any']).default('any') }),
]);
const QmpAction = strict({
  execute: z.string().regex(/^[a-z][a-z0-9_-]*$/, 'a QMP command name such as query-status'),
  arguments: z.record(z.string(), z.unknown()).optional(),
  allow_error: z.boolean().default(false),
});
const WaitEventAction = strict({
  event: z.string().regex(/^[A-Z][A-Z0-9_]*$/, 'a QMP event name such as DEVICE_DELETED'),
  match: z.record(z.string(), z.unknown()).optional(),
});
// a window of no time observes nothing: every claim over it would check nothing
const sampleWindow = duration.refine((ms) => ms > 0, 'a sample of no time observes nothing; give it a duration, e.g. 5s');
const SampleAction = z.union([sampleWindow, strict({ duration: sampleWindow })]);

const ACTIONS = {
  guest: GuestAction,
  offline: guestCpu,
  online: guestCpu,
  hotplug: HotplugAction,
  unplug: UnplugAction,
  qmp: QmpAction,
  wait_event: WaitEventAction,
  wait: duration,
  sample: SampleAction,
  host: z.array(shortText).min(1).max(256),
} as const;
export type StepKind = keyof typeof ACTIONS;
export const STEP_KINDS = Object.keys(ACTIONS) as StepKind[];

/** Steps the runner itself writes under: `boot` (the guest.ready_s row) and `teardown` (its log line). */
export const RUNNER_STEPS = { boot: 'boot', teardown: 'teardown' } as const;

const RawStep = strict({
  name: slug.optional(),
  timeout: duration.optional(),
  guest: GuestAction.optional(),
  offline: guestCpu.optional(),
  online: guestCpu.optional(),
  hotplug: HotplugAction.optional(),
  unplug: UnplugAction.optional(),
  qmp: QmpAction.optional(),
  wait_event: WaitEventAction.optional(),
  wait: duration.optional(),
  sample: SampleAction.optional(),
  host: ACTIONS.host.optional(),
});

type Common = { name: string; timeoutMs: number | undefined };
export type Step = Common &
  (
    | { kind: 'guest'; cmd: string; record: string | undefined; check: boolean }
    | { kind: 'offline' | 'online'; cpu: number }
    | { kind: 'hotplug'; id: string | undefined; props: Record<string, number> }
    | { kind: 'unplug'; id: string; expect: 'removed' | 'refused' | 'any' }
    | { kind: 'qmp'; execute: string; arguments: Record<string, unknown> | undefined; allowError: boolean }
    | { kind: 'wait_event'; event: string; match: Record<string, unknown> | undefined }
    | { kind: 'wait'; durationMs: number }
    | { kind: 'sample'; durationMs: number }
    | { kind: 'host'; argv: string[] }
  );

/** A window in which the guest is left alone to be measured: a sample or wait step. */
export function isMeasuringWindow(step: Step): step is Step & { kind: 'sample' | 'wait'; durationMs: number } {
  return step.kind === 'sample' || step.kind === 'wait';
}

/** The names of an experiment's measuring windows, in order. */
export function measuringWindows(steps: readonly Step[]): string[] {
  return steps.filter(isMeasuringWindow).map((s) => s.name);
}

export const StepSchema = RawStep.transform((raw, ctx): Step => {
  const present = STEP_KINDS.filter((k) => k in raw);
  if (present.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      message:
        present.length === 0
          ? `a step needs one action: ${STEP_KINDS.join(', ')}`
          : `a step has exactly one action, this one has ${present.join(' and ')}; split it into ${present.length} steps`,
    });
    return z.NEVER;
  }
  const kind = present[0]!;
  const common = { name: raw.name ?? '', timeoutMs: raw.timeout };
  switch (kind) {
    case 'guest': {
      const g = raw.guest!;
      return typeof g === 'string' ? { ...common, kind, cmd: g, record: undefined, check: true } : { ...common, kind, cmd: g.cmd, record: g.record, check: g.check };
    }
    case 'offline':
    case 'online':
      return { ...common, kind, cpu: raw[kind]! };
    case 'hotplug': {
      const h = raw.hotplug ?? {};
      const { id, ...props } = h;
      return { ...common, kind, id, props: props as Record<string, number> };
    }
    case 'unplug': {
      const u = raw.unplug!;
      return typeof u === 'string' ? { ...common, kind, id: u, expect: 'any' } : { ...common, kind, id: u.id, expect: u.expect };
    }
    case 'qmp':
      return { ...common, kind, execute: raw.qmp!.execute, arguments: raw.qmp!.arguments, allowError: raw.qmp!.allow_error };
    case 'wait_event':
      return { ...common, kind, event: raw.wait_event!.event, match: raw.wait_event!.match };
    case 'wait':
      return { ...common, kind, durationMs: raw.wait! };
    case 'sample': {
      const s = raw.sample!;
      return { ...common, kind, durationMs: typeof s === 'number' ? s : s.duration };
    }
    case 'host':
      return { ...common, kind, argv: raw.host! };
  }
});

// ---- collectors --------------------------------------------------------------------------------

export const CollectorOptions = {
  'vcpu-cpu': strict({ interval: duration.default(100) }),
  tracefs: strict({
    events: z.array(tracefsEvent).min(1).default(['sched:sched_switch', 'sched:sched_wakeup']),
    buffer_kb: z.number().int().min(64).max(1_048_576).default(8192),
  }),
  'kvm-stats': strict({}),
  /** Read the counts with the VM paused (QMP stop … cont) so the in-kernel count and KVM's own are taken at one instant. */
  'kvm-exits': strict({ pause: z.boolean().default(false) }),
  perf: strict({ events: z.array(z.string().regex(/^[a-zA-Z0-9_:.*-]+$/)).default(['kvm:kvm_exit', 'kvm:kvm_entry']) }),
  interrupts: strict({}),
} as const;
export type CollectorName = keyof typeof CollectorOptions;
export const COLLECTOR_NAMES = Object.keys(CollectorOptions) as CollectorName[];

export const Collect = strict({
  'vcpu-cpu': z.union([z.null(), CollectorOptions['vcpu-cpu']]).optional(),
  tracefs: z.union([z.null(), CollectorOptions.tracefs]).optional(),
  'kvm-stats': z.union([z.null(), CollectorOptions['kvm-stats']]).optional(),
  'kvm-exits': z.union([z.null(), CollectorOptions['kvm-exits']]).optional(),
  perf: z.union([z.null(), CollectorOptions.perf]).optional(),
  interrupts: z.union([z.null(), CollectorOptions.interrupts]).optional(),
});

// ---- expectations ------------------------------------------------------------------------------

const oneOrMany = <T extends z.ZodType>(t: T) => z.union([t, z.array(t).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]) as z.output<T>[]);

const RawExpectation = strict({
  description: shortText,
  metric: metricName,
  /** Step name(s) whose rows count; absent: every step. */
  step: oneOrMany(slug).optional(),
  /** Entity or entities (vcpu1, pcpu3, qemu, guest, …); absent: every entity. */
  entity: oneOrMany(z.string().min(1)).optional(),
  /** How the matching rows (over steps, entities and repetitions) become one observed value. */
  agg: z.enum(AGGS).default('median'),
  /** Restrict to variants: matrix axis → label or labels. */
  when: z.record(identifier, oneOrMany(axisLabel)).optional(),
  eq: z.number().optional(),
  ne: z.number().optional(),
  lt: z.number().optional(),
  le: z.number().optional(),
  gt: z.number().optional(),
  ge: z.number().optional(),
  between: z.tuple([z.number(), z.number()]).optional(),
});
export const ExpectationSchema = RawExpectation.transform((raw, ctx) => {
  const ops = COMPARATORS.filter((c) => raw[c] !== undefined);
  if (ops.length !== 1) {
    ctx.addIssue({ code: 'custom', message: `an expectation needs exactly one comparison of ${COMPARATORS.join(', ')}; this one has ${ops.length || 'none'}` });
    return z.NEVER;
  }
  const op = ops[0]!;
  const { eq, ne, lt, le, gt, ge, between, ...rest } = raw;
  void eq, ne, lt, le, gt, ge, between;
  return { ...rest, op, value: raw[op] as number | [number, number] };
});
export type Expectation = z.output<typeof ExpectationSchema>;

// ---- the experiment ----------------------------------------------------------------------------

export const ExperimentSchema = strict({
  name: slug,
  description: shortText,
  /** The list thread or bug this reproduces. */
  source: Source.optional(),
  requires: Requires.default(Requires.parse({})),
  guest: Guest,
  /** Used only by `--on nested`: the emulated KVM host the experiment runs in. */
  nested: NestedHost.optional(),
  knobs: Knobs.default(Knobs.parse({})),
  matrix: Matrix.optional(),
  repetitions: z.number().int().min(1).max(1000).default(1),
  pinning: Pinning.optional(),
  steps: z
    .array(StepSchema)
    .min(1)
    .max(10_000)
    .transform((steps) => steps.map((s, i) => ({ ...s, name: s.name || `${String(i + 1).padStart(2, '0')}-${s.kind.replace('_', '-')}` }))),
  collect: Collect.default({}),
  expect: z.array(ExpectationSchema).max(10_000).default([]),
}).superRefine((exp, ctx) => {
  if (exp.guest.maxcpus !== undefined && exp.guest.maxcpus < exp.guest.cpus) {
    ctx.addIssue({ code: 'custom', path: ['guest', 'maxcpus'], message: `maxcpus (${exp.guest.maxcpus}) is below cpus (${exp.guest.cpus}); set maxcpus ≥ cpus` });
  }
  const maxcpus = exp.guest.maxcpus ?? exp.guest.cpus;
  for (const vcpu of Object.keys(exp.pinning?.vcpupin ?? {})) {
    if (Number(vcpu) >= maxcpus) ctx.addIssue({ code: 'custom', path: ['pinning', 'vcpupin', vcpu], message: `vCPU ${vcpu} does not exist: the guest has maxcpus ${maxcpus} (vCPUs 0-${maxcpus - 1})` });
  }
  const names = new Set<string>();
  exp.steps.forEach((step, i) => {
    if (names.has(step.name)) ctx.addIssue({ code: 'custom', path: ['steps', i, 'name'], message: `step name "${step.name}" is used twice; names must be unique` });
    if ((Object.values(RUNNER_STEPS) as string[]).includes(step.name)) ctx.addIssue({ code: 'custom', path: ['steps', i, 'name'], message: `step name "${step.name}" is the runner's own (${step.name === RUNNER_STEPS.boot ? 'its guest.ready_s row' : 'its teardown log line'} goes by it); give the step another name` });
    names.add(step.name);
    if ((step.kind === 'offline' || step.kind === 'online') && step.cpu >= maxcpus) {
      ctx.addIssue({ code: 'custom', path: ['steps', i, step.kind], message: `guest CPU ${step.cpu} does not exist (maxcpus ${maxcpus})` });
    }
  });
  const axes = Object.keys(exp.matrix ?? {});
  exp.expect.forEach((e, i) => {
    for (const s of e.step ?? []) {
      if (!names.has(s) && s !== RUNNER_STEPS.boot) ctx.addIssue({ code: 'custom', path: ['expect', i, 'step'], message: `no step is named "${s}"; steps are: ${[...names, RUNNER_STEPS.boot].join(', ')}` });
    }
    for (const [axis, wanted] of Object.entries(e.when ?? {})) {
      if (!axes.includes(axis)) {
        ctx.addIssue({ code: 'custom', path: ['expect', i, 'when', axis], message: `"${axis}" is not a matrix axis${axes.length ? ` (axes: ${axes.join(', ')})` : ' (the experiment has no matrix)'}` });
        continue;
      }
      // A label no variant has would make the claim select nothing, and a claim that checks nothing passes.
      const values = exp.matrix![axis]!;
      const labels = Array.isArray(values) ? values.map(labelOf) : Object.keys(values);
      wanted.forEach((w, j) => {
        if (!labels.includes(labelOf(w))) {
          ctx.addIssue({ code: 'custom', path: ['expect', i, 'when', axis, ...(wanted.length > 1 ? [j] : [])], message: `no variant has ${axis}=${labelOf(w)}, so this expectation would check nothing; ${axis} labels are: ${labels.join(', ')}` });
        }
      });
    }
  });
});

export type Experiment = z.output<typeof ExperimentSchema>;
export type Knobs = z.output<typeof Knobs>;
export type GuestSpec = z.output<typeof Guest>;
export type Requires = z.output<typeof Requires>;
export type Pinning = z.output<typeof Pinning>;
export type Collect = z.output<typeof Collect>;
