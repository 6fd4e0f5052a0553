// `--on nested`, what L1 is: a disposable KVM host emulated under TCG, in which kvmlab runs the
// experiment with the real QEMU backend and `--accel kvm` — the same code a lab box runs. This file
// is the pure part (no process started): L1's size and kernel, one boot per kernel and command line
// a host axis names, its image, L0's command line and its shares, what is known of L1 before it
// boots, the target a run in it records, and the kvmlab command run inside. Booting and watching
// it is targets/nested.ts.
//
// The KVM code in L1 is real (exit handling, emulation, halt polling, stats, tracepoints, the
// scheduling of vCPU threads); the hardware under it is QEMU's emulation, so counts and CPU
// attribution are KVM's own while timings are not hardware timings.
import { createHash } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ImageManifestSchema, imagesDir, type ImageManifest } from '../backend/qemu/image.js';
import { findExecutable } from '../backend/probe.js';
import { localHost } from '../backend/select.js';
import { HostError, errorMessage } from '../errors.js';
import { vmName } from '../host/journal.js';
import { optValue } from '../backend/qemu/argv.js';
import type { HostFacts } from '../model/host-facts.js';
import { KNOWN_EXITS_MASK } from '../model/exits.js';
import type { RunTarget } from '../results/summary.js';
import { delegatedRunArgs, type DelegatedRun } from './on.js';
import { HOST_AXIS, type Experiment } from '../experiment/schema.js';
import type { Variant } from '../experiment/matrix.js';

export const NESTED_IMAGE = 'nested-host';
/** The QEMU that emulates L1. */
export const L0_BINARY = 'qemu-system-x86_64';
export interface NestedShape {
  cpus: number;
  memoryMiB: number;
  cmdline: string;
  /** L1's kernel: a Debian series (debian:6.12) or a kernel of the user's own (path:/abs/bzImage); absent: the image built from the host's own suite. */
  kernel?: string;
  /** With a path: kernel, its lib/modules/RELEASE directory. */
  modules?: string;
}

/** L1's size and kernel: the experiment's `nested:` block (the kernel overridden by --host-kernel), else enough CPUs for every pinning to exist. */
export function nestedShape(exp: Experiment, hostKernel?: HostKernelChoice): NestedShape {
  const pinned = [...Object.values(exp.pinning?.vcpupin ?? {}).flat(), ...(exp.pinning?.emulatorpin ?? [])];
  const cpus = exp.nested?.cpus ?? Math.max(2, exp.guest.cpus + 1, pinned.length ? Math.max(...pinned) + 1 : 0);
  const memoryMiB = exp.nested?.memory ?? (exp.guest.memory ?? 512) + 1536;
  const choice = hostKernel ?? (exp.nested?.kernel ? { kernel: exp.nested.kernel } : undefined);
  return { cpus, memoryMiB, cmdline: exp.nested?.cmdline ?? '', ...choice };
}

/** One L1 boot of a run: the host-axis labels it stands for (none without a host axis), its shape, and the variants run in it. */
export interface L1Boot {
  hosts: string[];
  shape: NestedShape;
  variants: Variant[];
}

/**
 * The L1s a run boots, in matrix order: one for the whole run, or one per kernel and command line
 * the host axis names, each with its kernel (the label's, else nested.kernel or --host-kernel) and
 * the label's boot parameters after nested.cmdline. Labels that differ only in their QEMU share a
 * boot (the run in L1 launches each variant with its own). A kernel of the user's own is resolved
 * against the experiment file's directory.
 */
export function nestedBoots(exp: Experiment, file: string, variants: readonly Variant[], hostKernel?: HostKernelChoice): L1Boot[] {
  const base = nestedShape(exp, hostKernel);
  const boots: L1Boot[] = [];
  for (const v of variants) {
    const k = v.host?.kernel;
    const kernel = k === undefined ? {} : typeof k === 'string' ? { kernel: k } : { kernel: `path:${resolve(dirname(file), k.path)}`, ...(k.modules ? { modules: resolve(dirname(file), k.modules) } : {}) };
    const shape: NestedShape = { ...base, ...kernel, cmdline: [base.cmdline, v.host?.cmdline ?? ''].filter(Boolean).join(' ') };
    const same = boots.find((b) => b.shape.kernel === shape.kernel && b.shape.modules === shape.modules && b.shape.cmdline === shape.cmdline);
    const boot = same ?? { hosts: [], shape, variants: [] };
    if (!same) boots.push(boot);
    boot.variants.push(v);
    const label = v.labels[HOST_AXIS];
    if (label !== undefined && !boot.hosts.includes(label)) boot.hosts.push(label);
  }
  return boots;
}

/** Where a boot's run writes in the results directory: the directory itself, or hosts/<labels> with a host axis. */
export function bootOut(out: string, boot: L1Boot): string {
  return boot.hosts.length ? join(out, 'hosts', boot.hosts.join('+')) : out;
}

/** The --where a boot's run in L1 takes: the user's, narrowed to the boot's host labels. */
export function bootWhere(where: string | undefined, boot: L1Boot): string | undefined {
  return [where, ...boot.hosts.map((h) => `${HOST_AXIS}=${h}`)].filter(Boolean).join(',') || undefined;
}

/** --host-kernel as chosen: a Debian series, or a kernel file of the user's with its modules. */
export interface HostKernelChoice {
  kernel: string;
  modules?: string;
}

/**
 * The image directory of a nested host with this kernel: nested-host; nested-host-linux-6.12 for
 * debian:6.12; nested-host-custom-<hash of the path> for a kernel of the user's own (rebuilt when the
 * file or its modules change: build-image.sh hashes both).
 */
export function nestedImageName(kernel: string | undefined): string {
  if (!kernel) return NESTED_IMAGE;
  if (kernel.startsWith('path:')) return `${NESTED_IMAGE}-custom-${createHash('sha256').update(kernel).digest('hex').slice(0, 12)}`;
  return `${NESTED_IMAGE}-linux-${kernel.replace(/^debian:/, '')}`;
}

export interface NestedImage {
  dir: string;
  kernel: string;
  initrd: string;
  manifest: ImageManifest;
}

/** L0's QEMU and L1's image: what booting L1 takes from this host, or why this host cannot (HostError). */
export async function nestedHostFiles(kernel?: string): Promise<{ l0: string; image: NestedImage }> {
  const image = await readNestedImage(kernel);
  const l0 = await findExecutable(localHost(), L0_BINARY);
  if (!l0) throw new HostError(`--on nested: ${L0_BINARY} is not installed; install qemu-system-x86 (or run bash host-scripts/setup.sh)`);
  return { l0, image };
}

/**
 * L1's image: the one built for this kernel; for a Debian series, the default image when that is
 * the series its kernel is of (bookworm's default is 6.1: debian:6.1 needs no second image).
 */
async function readNestedImage(hostKernel: string | undefined): Promise<NestedImage> {
  if (hostKernel?.startsWith('debian:') && !(await access(join(imagesDir(), nestedImageName(hostKernel), 'kernel')).then(() => true, () => false))) {
    const series = hostKernel.slice('debian:'.length);
    const fallback = await readImageIn(join(imagesDir(), NESTED_IMAGE), '').catch(() => undefined);
    if (fallback?.manifest.kernelVersion.startsWith(`${series}.`)) return fallback;
  }
  return readImageIn(join(imagesDir(), nestedImageName(hostKernel)), imageFix(hostKernel));
}

function imageFix(hostKernel: string | undefined): string {
  return hostKernel?.startsWith('path:')
    ? `build it with \`kvmlab image build --arch nested-host --kernel ${hostKernel.slice('path:'.length)} --modules DIR\` (kvmlab run builds it itself)`
    : hostKernel
      ? `build it with \`kvmlab image build --arch nested-host --kernel ${hostKernel}\``
      : 'build it with `kvmlab image build --arch nested-host` (or `bash host-scripts/setup.sh`)';
}

async function readImageIn(dir: string, fix: string): Promise<NestedImage> {
  const kernel = join(dir, 'kernel');
  const initrd = join(dir, 'initrd.img');
  for (const f of [kernel, initrd]) {
    if (!(await access(f).then(() => true, () => false))) throw new HostError(`no nested KVM host image in ${dir} (missing ${f}); ${fix}`);
  }
  try {
    const manifest = ImageManifestSchema.parse(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')));
    return { dir, kernel, initrd, manifest };
  } catch (e) {
    throw new HostError(`${join(dir, 'manifest.json')} is not a kvmlab image manifest (${errorMessage(e).split('\n')[0]}); ${fix}`, { cause: e });
  }
}


/**
 * L1's kernel command line: the results directory it mounts, and the experiment's `nested.cmdline`.
 * The boot is quiet (nested-host-init.sh turns the console up to KERN_INFO once L1 is ready, so
 * lockup, stall and hung-task reports reach nested-console.log with their stacks), a soft lockup
 * makes every CPU print its backtrace, so the report says what the other CPUs were doing, and
 * without KASLR the RIPs L0 reads from L1's CPUs are named from the symbols L1 writes at boot.
 * L1 boots on one CPU and onlines the others once nested-pin has flipped, alone, what would
 * otherwise patch kernel text under running CPUs (nested-host-init.sh).
 */
function l1KernelCmdline(shape: NestedShape, out: string): string {
  return ['console=ttyS0', 'panic=-1', 'quiet', 'softlockup_all_cpu_backtrace=1', 'nokaslr', 'maxcpus=1', `kvmlab.out=${out}`, shape.cmdline].filter(Boolean).join(' ');
}

/** The L0 QEMU command line that boots L1 with its three shares, and its QMP monitor on `monitor` (a socket only L0 sees). Pure. */
export function l1Argv(image: { kernel: string; initrd: string }, shape: NestedShape, out: string, ctl: string, monitor: string): string[] {
  const share = (id: string, path: string, extra: string) => ['-fsdev', `local,id=${id},path=${path},security_model=none${extra}`, '-device', `virtio-9p-pci,fsdev=${id},mount_tag=kvmlab-${id}`];
  return [
    '-name', `${vmName(NESTED_IMAGE, 1)},debug-threads=on`,
    '-accel', 'tcg,thread=multi',
    '-machine', 'q35',
    // TCG's max CPU model has SVM with nested paging: kvm-amd loads in L1.
    '-cpu', 'max',
    '-smp', String(shape.cpus),
    '-m', `${shape.memoryMiB}M`,
    '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot', '-nic', 'none',
    '-qmp', `unix:${optValue(monitor)},server=on,wait=off`,
    '-kernel', image.kernel, '-initrd', image.initrd,
    '-append', l1KernelCmdline(shape, out),
    ...share('root', '/', ',readonly=on,multidevs=remap'),
    ...share('out', out, ''),
    ...share('ctl', ctl, ''),
  ];
}

/** L1's CPU vendor: TCG's `-cpu max`, which l1Argv gives it, is an AMD CPU with SVM. */
const L1_CPU_VENDOR = 'AuthenticAMD';

/**
 * L1 as preflight can know it before it boots: what l1Argv gives it — an x86_64 machine with
 * `shape.cpus` CPUs of TCG's `-cpu max` (AMD vendor), its kernel and kernel command line — and the
 * run there as root. What only L1's kernel can say — KVM's allowed exits and halt-poll capability,
 * kvm parameters, CPU flags, devices, interrupt rows — is taken as whatever the experiment asks, so
 * preflight on these facts skips only what no L1 could run; the rest is decided inside L1. The
 * collectors' needs (tracefs, perf) are not judged on them.
 */
export function l1KnownFacts(exp: Experiment, shape: NestedShape, image: NestedImage, out: string): HostFacts {
  return {
    simulated: false,
    arch: 'x86_64',
    kernelRelease: image.manifest.kernelVersion,
    cpus: Array.from({ length: shape.cpus }, (_, i) => i),
    cpuVendor: L1_CPU_VENDOR,
    cpuModel: 'QEMU TCG -cpu max',
    cpuFlags: [...exp.requires.cpu_flags],
    kernelCmdline: l1KernelCmdline(shape, out),
    kvm: { usable: true, canBootGuest: true, disableExitsMask: KNOWN_EXITS_MASK, haltPollCap: true, params: {} },
    tracefs: { path: undefined, writable: false },
    perf: {},
    root: true,
    interruptRows: [...exp.requires.interrupts],
    pathExists: async () => true,
  };
}

/** Where a run in L1 happens, for its results: L0's QEMU (its version when known) and L1. */
export function nestedTarget(l0Version: string | undefined, image: NestedImage, shape: NestedShape): RunTarget {
  return {
    kind: 'nested',
    l0: `QEMU ${l0Version ?? 'unknown version'} TCG, -cpu max (SVM, NPT)`,
    l1: { kernel: image.manifest.kernelVersion, cpus: shape.cpus, memoryMiB: shape.memoryMiB, cmdline: shape.cmdline, image: image.dir },
  };
}

/**
 * The kvmlab command run inside L1: the same file, real QEMU under L1's KVM, results into `out`,
 * with --force since `out` already holds the nested host's own files. Where that is (L0, L1) it
 * reads from $KVMLAB_TARGET_FILE (targetOfThisRun).
 */
export function insideL1Args(file: string, out: string, flags: DelegatedRun): string[] {
  return ['run', resolve(file), '--backend', 'qemu', '--accel', 'kvm', '--out', out, '--force', ...delegatedRunArgs(flags)];
}

/** Directories L1 gives tmpfs of its own (nested-host-init.sh); host paths under them are bound back. */
const L1_TMPFS = ['/tmp', '/run', '/var/tmp', '/var/lock'];

/** The host paths the command in L1 reads that L1's tmpfs would hide, outermost first. Pure. */
export function pathsToKeep(paths: readonly string[]): string[] {
  const under = [...new Set(paths.map((p) => resolve(p)))].filter((p) => L1_TMPFS.some((t) => p.startsWith(`${t}/`)));
  return under.sort().filter((p, i, all) => !all.slice(0, i).some((q) => p.startsWith(`${q}/`)));
}

/**
 * The tracepoints L1 holds still for an experiment, those registered and unregistered while it runs:
 * the tracefs collector's events, kvm-exits' kvm:kvm_exit, perf's tracepoint events, and the ones
 * its host: steps enable (`nested.tracepoints`). Pure.
 */
export function tracepointsToPin(exp: Experiment): string[] {
  const c = exp.collect;
  const all = [...(c.tracefs?.events ?? []), ...(c['kvm-exits'] ? ['kvm:kvm_exit'] : []), ...(c.perf?.events ?? []).filter((e) => /^[\w-]+:[\w*-]+$/.test(e)), ...(exp.nested?.tracepoints ?? [])];
  return [...new Set(all)];
}
