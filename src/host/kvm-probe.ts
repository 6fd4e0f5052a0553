// Runs host-scripts/build/kvm-probe (see host-scripts/kvm-probe.c) and types its JSON: what the
// host's KVM answers for disable-exits, halt polling, vCPU limits, and whether enabling the
// disable-exits capability and creating a vCPU work.

import * as z from 'zod';
import { packagePath } from '../util/package-dir.js';

export const HOST_SCRIPTS_DIR = packagePath('host-scripts');
export const KVM_PROBE_PATH = packagePath('host-scripts', 'build', 'kvm-probe');
export const EXITS_SHIM_PATH = packagePath('host-scripts', 'build', 'libkvmlab-exits.so');
export const BUILD_HINT = 'make -C host-scripts';

const ErrSchema = z.object({ ok: z.literal(false), errno: z.number().int(), error: z.string() });
export type ProbeError = z.infer<typeof ErrSchema>;

/** A KVM_CHECK_EXTENSION answer; null when there was no VM fd to ask. */
const CapSchema = z.union([z.number().int(), ErrSchema, z.null()]);

const EnableSchema = z.object({
  mask: z.number().int().nonnegative(),
  ret: z.number().int(),
  errno: z.number().int().nonnegative(),
  error: z.string().optional(),
  /** Set when the attempt failed before KVM_ENABLE_CAP (creating its VM or vCPU). */
  stage: z.enum(['create_vm', 'create_vcpu']).optional(),
});
export type EnableCapResult = z.infer<typeof EnableSchema>;

export const KvmProbeSchema = z.object({
  probe_version: z.literal(1),
  host: z.object({ sysname: z.string(), release: z.string(), machine: z.string() }).nullable(),
  kvm_params: z.object({
    halt_poll_ns: z.number().int().nullable(),
    mitigate_smt_rsb: z.boolean().nullable(),
  }),
  /** CPUID leaf 5 (MONITOR/MWAIT) of the CPU the probe ran on; null where there is none. */
  cpuid_leaf5: z.object({ eax: z.number().int(), ebx: z.number().int(), ecx: z.number().int(), edx: z.number().int() }).nullable(),
  dev_kvm: z.union([z.object({ ok: z.literal(true) }), ErrSchema]),
  api_version: z.union([z.number().int(), ErrSchema, z.null()]),
  vm: z.union([z.object({ ok: z.literal(true), type: z.number().int() }), ErrSchema, z.null()]),
  caps: z
    .object({
      x86_disable_exits: z.object({ vm: CapSchema, system: z.union([z.number().int(), ErrSchema]) }),
      halt_poll: CapSchema,
      irqchip: CapSchema,
      binary_stats_fd: CapSchema,
      nr_vcpus: CapSchema,
      max_vcpus: CapSchema,
    })
    .nullable(),
  /** KVM_ENABLE_CAP(DISABLE_EXITS, allowed mask) on a fresh VM, before any vCPU. */
  enable_disable_exits: EnableSchema.nullable(),
  /** The same with the known bits (0x1f) the host does not allow; null when it allows them all. */
  enable_disable_exits_unsupported: EnableSchema.nullable(),
  vcpu: z.union([z.object({ ok: z.literal(true) }), ErrSchema, z.null()]),
  /** KVM_ENABLE_CAP(DISABLE_EXITS, allowed mask) on a fresh VM after creating vCPU 0. */
  enable_disable_exits_after_vcpu: EnableSchema.nullable(),
});
export type KvmProbe = z.infer<typeof KvmProbeSchema>;

export type KvmProbeResult =
  | { status: 'ok'; binary: string; probe: KvmProbe }
  | { status: 'not_built'; binary: string; message: string };

/** Parses kvm-probe's stdout; throws with the zod issues when it does not match. */
export function parseKvmProbeOutput(stdout: string): KvmProbe {
  let value: unknown;
  try {
    value = JSON.parse(stdout);
  } catch (e) {
    throw new Error(`kvm-probe printed something that is not JSON (${e instanceof Error ? e.message : String(e)}): ${stdout.slice(0, 200)}`);
  }
  const parsed = KvmProbeSchema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new Error(`kvm-probe output does not match the expected shape: ${issues}`);
  }
  return parsed.data;
}

/** Where the probe runs: the host's HostView (this shape, so host/ needs nothing from backend/). */
export interface ProgramHost {
  access(path: string, mode: 'x'): Promise<boolean>;
  run(file: string, args: readonly string[], timeoutMs: number): Promise<{ exitCode: number; stdout: string; stderr: string }>;
}

/**
 * Runs the probe on `host`. A missing binary is a normal result naming the build command; a binary
 * that fails (non-zero exit, bad output) throws, since kvm-probe reports KVM problems in its JSON.
 */
export async function runKvmProbe(host: ProgramHost, opts: { binary?: string; timeoutMs?: number } = {}): Promise<KvmProbeResult> {
  const binary = opts.binary ?? KVM_PROBE_PATH;
  if (!(await host.access(binary, 'x'))) return { status: 'not_built', binary, message: `${binary} is not built; run \`${BUILD_HINT}\`` };
  const r = await host.run(binary, [], opts.timeoutMs ?? 30_000);
  if (r.exitCode !== 0) throw new Error(`${binary} failed (exit ${r.exitCode}): ${r.stderr.trim() || '(no stderr)'}`);
  return { status: 'ok', binary, probe: parseKvmProbeOutput(r.stdout) };
}

/** The DISABLE_EXITS mask the host allows (system fd, which is what QEMU asks), or null if unknown. */
export function allowedDisableExits(probe: KvmProbe): number | null {
  const sys = probe.caps?.x86_disable_exits.system;
  return typeof sys === 'number' ? sys : null;
}

/** True when /dev/kvm opened and a VM could be created: the ioctl path is usable. */
export function kvmUsable(probe: KvmProbe): boolean {
  return probe.dev_kvm.ok && probe.vm !== null && probe.vm.ok;
}
