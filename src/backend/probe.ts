// What a host is and can do, read from the host through its HostView: uname, online CPUs,
// /proc/cpuinfo, /proc/cmdline, KVM through real ioctls (host-scripts/build/kvm-probe), kvm module
// parameters, cpuidle, tracefs/debugfs/perf, the QEMU binaries. Nothing is mounted or changed. The
// real backend's view reads the real host; the mock's serves its simulated host's files and
// programs, so both are probed by this one code.
import { delimiter, join } from 'node:path';
import type { HostView } from './backend.js';
import type { HostFacts } from '../model/host-facts.js';
import { parseInterrupts } from '../formats/procfs.js';
import { cmdlineFacts } from '../formats/cmdline.js';
import { parseCpuInfo } from '../formats/cpuinfo.js';
import { parseCpuList } from '../model/cpulist.js';
import { formatMask, namesOf } from '../model/exits.js';
import { allowedDisableExits, kvmUsable, runKvmProbe, type KvmProbe } from '../host/kvm-probe.js';

/** The first executable named `name` on the host's PATH (this process's PATH), without a shell. */
export async function findExecutable(host: HostView, name: string, pathVar = process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin'): Promise<string | undefined> {
  for (const dir of pathVar.split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    if (await host.access(p, 'x')) return p;
  }
  return undefined;
}

// ---- pure parsers (unit-tested) ------------------------------------------------------------------

/** Why this KVM cannot boot a standard guest kernel, or undefined when it should. */
export function whyCannotBootGuest(kvmModules: readonly string[], cpuFlags: readonly string[], hostArch: string): string | undefined {
  if (kvmModules.includes('kvm_pvm')) return 'the host KVM is kvm_pvm, a nested page-table-based KVM under which standard guest kernels do not boot';
  if ((hostArch === 'x86_64' || hostArch === 'i686') && !cpuFlags.includes('vmx') && !cpuFlags.includes('svm')) {
    return 'the host CPU has no vmx/svm flag: this KVM is not hardware virtualization and standard guest kernels do not boot under it';
  }
  return undefined;
}

/** The CPU flags the experiments care about. */
export const FLAGS_THAT_MATTER = ['monitor', 'mwait', 'vmx', 'svm', 'arat', 'tsc_deadline_timer', 'x2apic', 'hypervisor', 'constant_tsc', 'nonstop_tsc'] as const;

// ---- the probe ---------------------------------------------------------------------------------

export interface QemuBinaryInfo {
  binary: string;
  path?: string;
  version?: string;
}

/** Everything `kvmlab probe` shows; HostFacts is what preflight and collectors need of it. */
export interface ProbeDetails {
  flagsThatMatter: Record<string, boolean>;
  kvmModules: string[];
  devKvm: { present: boolean; ok: boolean; error?: string };
  kvmApiVersion?: number;
  kvmProbe: { status: 'ok'; binary: string } | { status: 'not_built' | 'failed'; binary?: string; message: string };
  disableExits: { mask: number; text: string; bits: string[] };
  enableCapBeforeVcpu?: { mask: number; ret: number; errno: number };
  maxVcpus?: number;
  kvmParams: Record<string, string>;
  kernelCmdline: Record<string, string | null>;
  cpuidle: { driver?: string; governor?: string };
  qemu: QemuBinaryInfo[];
  tracefs: { path?: string; writable: boolean };
  debugfs: { mounted: boolean; kvmStats: boolean };
  perf: { path?: string; version?: string; error?: string };
  perfEventParanoid?: number;
  canBootGuest: boolean;
  canBootGuestReason?: string;
}

export interface ProbedHostFacts extends HostFacts {
  details: ProbeDetails;
}

async function readParams(host: HostView, dir: string, prefix: string, into: Record<string, string>): Promise<void> {
  const names = await host.readdir(dir).catch(() => [] as string[]);
  for (const n of names.sort()) {
    const v = await host.readFile(join(dir, n)).catch(() => undefined);
    if (v !== undefined) into[`${prefix}${n}`] = v.trim();
  }
}

export async function qemuInfo(host: HostView, binary: string): Promise<QemuBinaryInfo> {
  const path = await findExecutable(host, binary);
  if (!path) return { binary };
  const r = await host.run(path, ['--version'], 10_000);
  const m = /version\s+(\S+)/.exec(r.stdout);
  return { binary, path, ...(m?.[1] ? { version: m[1] } : {}) };
}

async function perfInfo(host: HostView, path: string | undefined): Promise<ProbeDetails['perf']> {
  if (!path) return {};
  const r = await host.run(path, ['--version'], 10_000);
  if (r.exitCode === 0) return { path, version: r.stdout.trim() };
  return { path, error: (r.stderr || r.stdout || 'failed').trim().split('\n')[0] ?? 'failed' };
}

/** Where tracefs is mounted, and whether this process may write it. */
async function tracefsInfo(host: HostView): Promise<{ path: string | undefined; writable: boolean }> {
  for (const p of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']) {
    if (await host.exists(join(p, 'trace'))) return { path: p, writable: await host.access(join(p, 'tracing_on'), 'w') };
  }
  return { path: undefined, writable: false };
}

/** uid from /proc/self/status: the probing process's own. */
function uidOf(status: string | undefined): number | undefined {
  const m = /^Uid:\s+(\d+)/m.exec(status ?? '');
  return m ? Number(m[1]) : undefined;
}

export interface ProbeOptions {
  /** The guest and host behind the view are a model (the mock backend). */
  simulated: boolean;
  /** Also look up QEMU binaries, perf and their versions (kvmlab probe); preflight does not need them. */
  tools?: boolean;
}

export async function probeHost(host: HostView, opts: ProbeOptions): Promise<ProbedHostFacts> {
  const read = (path: string) => host.readFile(path).catch(() => undefined);
  const arch = ((await read('/proc/sys/kernel/arch')) ?? (await host.run('uname', ['-m'], 5000)).stdout).trim();
  const cpus = parseCpuList((await read('/sys/devices/system/cpu/online'))?.trim() || '0');
  const cpu = parseCpuInfo((await read('/proc/cpuinfo')) ?? '');
  const kernelCmdline = ((await read('/proc/cmdline')) ?? '').trim();
  const modules = await host.readdir('/sys/module').catch(() => [] as string[]);
  const kvmModules = modules.filter((m) => m === 'kvm' || m.startsWith('kvm_')).sort();

  const params: Record<string, string> = {};
  await readParams(host, '/sys/module/kvm/parameters', '', params);
  for (const m of ['kvm_intel', 'kvm_amd', 'kvm_pvm']) await readParams(host, `/sys/module/${m}/parameters`, `${m}.`, params);

  const devKvmPresent = await host.exists('/dev/kvm');
  let probe: KvmProbe | undefined;
  let kvmProbe: ProbeDetails['kvmProbe'];
  try {
    const r = await runKvmProbe(host);
    if (r.status === 'ok') {
      probe = r.probe;
      kvmProbe = { status: 'ok', binary: r.binary };
    } else kvmProbe = { status: 'not_built', binary: r.binary, message: r.message };
  } catch (e) {
    kvmProbe = { status: 'failed', message: (e as Error).message };
  }

  let usable = false;
  let reason: string | undefined;
  if (!devKvmPresent) reason = '/dev/kvm does not exist (no KVM module loaded, or not exposed to this machine)';
  else if (!probe) reason = `the KVM probe did not run: ${kvmProbe.status === 'ok' ? '' : kvmProbe.message}`;
  else if (!probe.dev_kvm.ok) reason = `/dev/kvm cannot be opened: ${probe.dev_kvm.error}`;
  else if (!kvmUsable(probe)) reason = `KVM_CREATE_VM failed: ${probe.vm && !probe.vm.ok ? probe.vm.error : 'unknown'}`;
  else usable = true;

  const bootProblem = whyCannotBootGuest(kvmModules, cpu.flags, arch);
  const canBootGuest = usable && bootProblem === undefined;
  if (usable && bootProblem) reason = bootProblem;

  const mask = (probe && allowedDisableExits(probe)) ?? 0;
  const haltPoll = probe?.caps?.halt_poll;
  const haltPollCap = typeof haltPoll === 'number' && haltPoll > 0;
  const nrMax = probe?.caps?.max_vcpus;

  const interruptsText = await read('/proc/interrupts');
  let interruptRows: string[] = [];
  try {
    interruptRows = interruptsText ? parseInterrupts(interruptsText).rows.map((r) => r.irq) : [];
  } catch {
    interruptRows = [];
  }

  const tracefs = await tracefsInfo(host);
  const perfPath = await findExecutable(host, 'perf');
  const paranoid = await read('/proc/sys/kernel/perf_event_paranoid');
  const enable = probe?.enable_disable_exits;
  const details: ProbeDetails = {
    flagsThatMatter: Object.fromEntries(FLAGS_THAT_MATTER.map((f) => [f, cpu.flags.includes(f)])),
    kvmModules,
    devKvm: probe ? (probe.dev_kvm.ok ? { present: devKvmPresent, ok: true } : { present: devKvmPresent, ok: false, error: probe.dev_kvm.error }) : { present: devKvmPresent, ok: false, ...(reason ? { error: reason } : {}) },
    ...(typeof probe?.api_version === 'number' ? { kvmApiVersion: probe.api_version } : {}),
    kvmProbe,
    disableExits: { mask, text: formatMask(mask), bits: namesOf(mask) },
    ...(enable ? { enableCapBeforeVcpu: { mask: enable.mask, ret: enable.ret, errno: enable.errno } } : {}),
    ...(typeof nrMax === 'number' ? { maxVcpus: nrMax } : {}),
    kvmParams: params,
    kernelCmdline: cmdlineFacts(kernelCmdline),
    cpuidle: {
      ...optional('driver', (await read('/sys/devices/system/cpu/cpuidle/current_driver'))?.trim()),
      ...optional('governor', ((await read('/sys/devices/system/cpu/cpuidle/current_governor')) ?? (await read('/sys/devices/system/cpu/cpuidle/current_governor_ro')))?.trim()),
    },
    qemu: opts.tools ? await Promise.all(['qemu-system-x86_64', 'qemu-system-ppc64'].map((b) => qemuInfo(host, b))) : [],
    tracefs: { ...(tracefs.path ? { path: tracefs.path } : {}), writable: tracefs.writable },
    debugfs: { mounted: (await host.readdir('/sys/kernel/debug').catch(() => [] as string[])).length > 0, kvmStats: await host.exists('/sys/kernel/debug/kvm') },
    perf: opts.tools ? await perfInfo(host, perfPath) : {},
    ...(paranoid !== undefined && /^-?\d+$/.test(paranoid.trim()) ? { perfEventParanoid: Number(paranoid.trim()) } : {}),
    canBootGuest,
    ...(canBootGuest ? {} : { canBootGuestReason: reason ?? 'KVM is not usable' }),
  };

  return {
    simulated: opts.simulated,
    arch,
    kernelRelease: ((await read('/proc/sys/kernel/osrelease')) ?? '').trim(),
    cpus,
    cpuVendor: cpu.vendor,
    ...(probe?.cpuid_leaf5 ? { mwaitC1Substates: (probe.cpuid_leaf5.edx >> 4) & 0xf } : {}),
    cpuModel: cpu.model,
    cpuFlags: cpu.flags,
    kernelCmdline,
    kvm: { usable, ...(reason ? { reason } : {}), canBootGuest, disableExitsMask: mask, haltPollCap, params, ...optional('module', kvmModules.find((m) => m !== 'kvm')) },
    tracefs,
    perf: { ...optional('path', perfPath), ...(details.perfEventParanoid !== undefined ? { paranoid: details.perfEventParanoid } : {}) },
    root: uidOf(await read('/proc/self/status')) === 0,
    interruptRows,
    pathExists: (path) => host.exists(path),
    details,
  };
}

function optional<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value ? ({ [key]: value } as Record<K, string>) : {};
}
