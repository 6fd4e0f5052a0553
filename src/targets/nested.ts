// `--on nested`: a disposable KVM host emulated under TCG (L1), in which kvmlab runs the experiment
// with the real QEMU backend and `--accel kvm` — the same code a lab box runs. The KVM code in L1 is
// real (exit handling, emulation, halt polling, stats, tracepoints, the scheduling of vCPU threads);
// the hardware under it is QEMU's emulation, so counts and CPU attribution are KVM's own while
// timings are not hardware timings.
//
// L1 boots kvmlab's nested-host image (guest-scripts/nested-host-init.sh) and sees, over 9p, this
// host's / read-only (so the very node, kvmlab, QEMU, images and helpers run there), the results
// directory writable at the same path, and a control directory holding the job, the stop request
// and the job's exit status. The L1 QEMU process is journaled like every QEMU kvmlab starts, and is
// killed if this process exits any other way: nothing is left running at any level.
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createWriteStream, rmSync } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { ImageManifestSchema, imagesDir, type ImageManifest } from '../backend/qemu/image.js';
import { cacheDir } from '../util/cache-dir.js';
import { findExecutable, qemuInfo } from '../backend/probe.js';
import { localHost } from '../backend/select.js';
import { shellQuote } from '../util/shell.js';
import { HostError, InputError, errorMessage } from '../errors.js';
import { HOST_SCRIPTS_DIR } from '../host/kvm-probe.js';
import { type HostJournal, processStartTicks, vmName } from '../host/journal.js';
import { HEARTBEAT_ENV, parseBeat } from './heartbeat.js';
import { L1Watch, type Wedge } from './l1-watch.js';
import { l1Postmortem } from './l1-postmortem.js';
import { optValue } from '../backend/qemu/argv.js';
import type { HostFacts } from '../model/host-facts.js';
import { KNOWN_EXITS_MASK } from '../model/exits.js';
import type { Progress } from '../model/progress.js';
import { RunTargetSchema, type RunTarget } from '../results/summary.js';
import { HOST_AXIS, type Experiment } from '../spec/schema.js';
import type { Variant } from '../spec/matrix.js';

export const NESTED_IMAGE = 'nested-host';
const L0_BINARY = 'qemu-system-x86_64';
/** L1 boots in seconds of its own time; under a loaded TCG it can take minutes. */
const BOOT_TIMEOUT_MS = 300_000;
/** After a stop request, the run in L1 tears its guests down; then L1 powers off. */
const STOP_GRACE_MS = 120_000;
/** How long a wedged L1 is given to print the backtraces it was asked for before it is stopped. */
const SYSRQ_WAIT_MS = 10_000;
/** Where L1 mounts the control share, inside the chroot that runs the job (nested-host-init.sh). */
const L1_CTL = '/run/kvmlab-nested';
/** Run in L1 before kvmlab: holds KVM's static keys and the collectors' tracepoints in one state. */
const PIN_BINARY = join(HOST_SCRIPTS_DIR, 'build', 'nested-pin');


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

export interface InsideL1 {
  repeat?: number;
  only?: string;
  where?: string;
  qemu?: string;
  shard?: string;
  allowHostCommands?: boolean;
  json?: boolean;
  strict?: boolean;
}

/**
 * The kvmlab command run inside L1: the same file, real QEMU under L1's KVM, results into `out`,
 * with --force since `out` already holds the nested host's own files. Where that is (L0, L1) it
 * reads from $KVMLAB_TARGET_FILE (targetOfThisRun).
 */
export function insideL1Args(file: string, out: string, flags: InsideL1): string[] {
  const args = ['run', resolve(file), '--backend', 'qemu', '--accel', 'kvm', '--out', out, '--force'];
  if (flags.repeat !== undefined) args.push('--repeat', String(flags.repeat));
  if (flags.only) args.push('--only', flags.only);
  if (flags.where) args.push('--where', flags.where);
  if (flags.qemu) args.push('--qemu', flags.qemu);
  if (flags.shard) args.push('--shard', flags.shard);
  if (flags.allowHostCommands) args.push('--allow-host-commands');
  if (flags.json) args.push('--json');
  if (flags.strict) args.push('--strict');
  return args;
}

/** Names the file, written by the kvmlab that booted L1, that says where a run in L1 happens. */
export const TARGET_ENV = 'KVMLAB_TARGET_FILE';

/**
 * Where this run happens: this host, unless $KVMLAB_TARGET_FILE names a target (the run inside a
 * nested host). The file is schema-checked; a run cannot be labelled by a flag. checkTarget holds
 * it to the host the run then finds.
 */
export async function targetOfThisRun(env: NodeJS.ProcessEnv = process.env): Promise<RunTarget> {
  const file = env[TARGET_ENV];
  if (!file) return { kind: 'local' };
  const text = await readFile(file, 'utf8').catch((e: unknown) => {
    throw new InputError(`$${TARGET_ENV} names ${file}, which cannot be read (${errorMessage(e)}); it is set only by \`kvmlab run --on nested\` for the run inside L1: unset it`, [], { cause: e });
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${file} ($${TARGET_ENV}) is not JSON: ${errorMessage(e)}`, [], { cause: e });
  }
  const r = RunTargetSchema.safeParse(parsed);
  if (!r.success) throw new InputError(`${file} ($${TARGET_ENV}) does not describe where a run happens: ${r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** Why the host a run found is not the one its target says it runs on, or undefined. */
export function checkTarget(target: RunTarget, facts: Pick<HostFacts, 'kernelRelease' | 'cpus'>): string | undefined {
  if (target.kind !== 'nested') return undefined;
  const { kernel, cpus } = target.l1;
  if (facts.kernelRelease !== kernel || facts.cpus.length !== cpus) return `this run is labelled as running in a nested KVM host (kernel ${kernel}, ${cpus} CPUs), but this host runs kernel ${facts.kernelRelease} with ${facts.cpus.length} CPUs: $${TARGET_ENV} is set only by \`kvmlab run --on nested\` for the run inside L1; unset it`;
  return undefined;
}

/** Directories L1 gives tmpfs of its own (nested-host-init.sh); host paths under them are bound back. */
const L1_TMPFS = ['/tmp', '/run', '/var/tmp', '/var/lock'];

/** The host paths the command in L1 reads that L1's tmpfs would hide, outermost first. Pure. */
export function pathsToKeep(paths: readonly string[]): string[] {
  const under = [...new Set(paths.map((p) => resolve(p)))].filter((p) => L1_TMPFS.some((t) => p.startsWith(`${t}/`)));
  return under.sort().filter((p, i, all) => !all.slice(0, i).some((q) => p.startsWith(`${q}/`)));
}

export interface NestedRunRequest {
  /** The kvmlab command line to run inside L1 (e.g. run FILE --out … ). */
  argv: string[];
  /** Shared writable with L1 at the same path: the results directory of a run. */
  out: string;
  /** Further host paths the command reads (the experiment file's directory). */
  reads?: string[];
  shape: NestedShape;
  /** Tracepoints (SYSTEM:EVENT, globs allowed) the command's collectors will use: held registered for L1's life. */
  tracepoints: string[];
  progress: Progress;
  signal: AbortSignal;
  journal: HostJournal;
}

/**
 * The tracepoints an experiment's collectors register and unregister as they start and stop: the
 * tracefs collector's events, kvm-exits' kvm:kvm_exit, perf's tracepoint events. Pure.
 */
export function collectedTracepoints(exp: Experiment): string[] {
  const c = exp.collect;
  const all = [...(c.tracefs?.events ?? []), ...(c['kvm-exits'] ? ['kvm:kvm_exit'] : []), ...(c.perf?.events ?? []).filter((e) => /^[\w-]+:[\w*-]+$/.test(e))];
  return [...new Set(all)];
}

/** What bootAndWait needs besides the request: L1's monitor socket on L0. */
interface BootContext extends NestedRunRequest {
  monitor: string;
}

/** What the command in L1 printed on stdout, and its exit status. */
export interface NestedRunResult {
  exitCode: number;
  stdout: string;
}

/** Boots L1, runs the kvmlab command in it, and returns when L1 is gone. */
export async function runNested(req: NestedRunRequest): Promise<NestedRunResult> {
  const { l0, image } = await nestedHostFiles(req.shape.kernel);
  const target = nestedTarget((await qemuInfo(localHost(), L0_BINARY)).version, image, req.shape);
  await mkdir(req.out, { recursive: true });
  const ctl = await mkdtemp(join(tmpdir(), 'kvmlab-nested-'));
  const mon = await mkdtemp(join(tmpdir(), 'kvmlab-l1mon-'));
  try {
    await writeFile(join(ctl, 'target.json'), `${JSON.stringify(target)}\n`);
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', KVMLAB_CACHE: process.env.KVMLAB_CACHE ?? '', [HEARTBEAT_ENV]: `${L1_CTL}/heartbeat`, [TARGET_ENV]: `${L1_CTL}/target.json` };
    const cli = process.argv[1]!;
    const reads = [dirname(dirname(cli)), dirname(process.execPath), process.cwd(), cacheDir(), ...(req.reads ?? [])];
    await writeFile(join(ctl, 'keep'), pathsToKeep(reads).map((p) => `${p}\n`).join(''));
    await writeFile(
      join(ctl, 'job.sh'),
      [
        '#!/bin/sh',
        '# Written by kvmlab run --on nested; runs in L1, chrooted into this host\'s / (read-only).',
        ...Object.entries(env).filter(([, v]) => v).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
        `cd ${shellQuote(process.cwd())} || exit 3`,
        // stderr (progress) to a file L0 follows: on L1's console it would be a terminal and redraw.
        `exec ${[process.execPath, cli, ...req.argv].map(shellQuote).join(' ')} >${L1_CTL}/stdout 2>${L1_CTL}/stderr`,
        '',
      ].join('\n'),
    );
    // Run by L1's init on its one CPU, before the others come online: host-scripts/nested-pin.c says why.
    await writeFile(join(ctl, 'pin.sh'), ['#!/bin/sh', `exec ${[PIN_BINARY, ...req.tracepoints].map(shellQuote).join(' ')}`, ''].join('\n'));
    const monitor = join(mon, 'qmp.sock');
    const argv = l1Argv(image, req.shape, req.out, ctl, monitor);
    const hostFile = join(req.out, 'nested-host.json');
    const described = { ...target, argv: [l0, ...argv] };
    await writeFile(hostFile, `${JSON.stringify(described, null, 2)}\n`);
    const timings: L1Timings = {};
    try {
      return await bootAndWait(l0, argv, ctl, { ...req, monitor }, timings);
    } finally {
      await writeFile(hostFile, `${JSON.stringify({ ...described, timings }, null, 2)}\n`);
    }
  } finally {
    await rm(ctl, { recursive: true, force: true });
    await rm(mon, { recursive: true, force: true });
  }
}

/** Seconds from L1's launch on L0's clock (nested-host.json): when it was ready, when kvmlab's first heartbeat came from it, when it was gone. */
interface L1Timings {
  readyS?: number;
  jobStartedS?: number;
  exitedS?: number;
}

async function bootAndWait(l0: string, argv: string[], ctl: string, req: BootContext, timings: L1Timings): Promise<NestedRunResult> {
  const { progress, signal, journal } = req;
  // With setpriv's parent-death signal, L1 dies with this process however it ends (SIGKILL too):
  // no emulated host, and nothing in it, outlives the kvmlab that booted it.
  const setpriv = await findExecutable(localHost(), 'setpriv');
  const child = setpriv ? spawn(setpriv, ['--pdeathsig', 'KILL', l0, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(l0, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new HostError(`--on nested: could not start ${l0}`);
  const startTicks = processStartTicks(pid);
  const entry = startTicks === undefined ? undefined : journal.record({ kind: 'process', pid, startTicks, comm: 'qemu-system-x86' });
  // A second Ctrl-C exits this process at once: L1, and everything in it, goes with it.
  const killOnExit = () => {
    child.kill('SIGKILL');
    if (entry !== undefined) journal.resolve(entry);
    rmSync(ctl, { recursive: true, force: true });
  };
  process.on('exit', killOnExit);

  const consoleLog = createWriteStream(join(req.out, 'nested-console.log'));
  const tail: string[] = [];
  const watch = new L1Watch();
  let ready = false;
  let fatal: string | undefined;
  const t0 = Date.now();
  const since = () => Math.round(Date.now() - t0) / 1000;
  const onLine = (line: string) => {
    consoleLog.write(`${line}\n`);
    tail.push(line);
    if (tail.length > 30) tail.shift();
    watch.consoleLine(line, Date.now());
    const m = /kvmlab-nested: (.*)$/.exec(line);
    if (m) {
      if (m[1]!.startsWith('FATAL ')) fatal = m[1]!.slice(6);
      if (m[1]!.startsWith('ready')) {
        ready = true;
        watch.ready(Date.now());
        timings.readyS = since();
      }
      progress.notice(`nested host: ${m[1]} (${since().toFixed(1)} s)`);
    } else if (ready && line.trim()) progress.notice(`  L1 console| ${line.replace(/\r$/, '')}`);
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  const follower = followFile(join(ctl, 'stderr'), (line) => progress.notice(`  L1| ${line}`));
  // Whether the run in L1 still moves: its heartbeat, and the lockups L1's kernel reports.
  let wedge: Wedge | undefined;
  let seenFromL0: string[] = [];
  const watchTimer = setInterval(() => {
    void readFile(join(ctl, 'heartbeat'), 'utf8').then(
      (text) => {
        const b = parseBeat(text);
        if (!b) return;
        timings.jobStartedS ??= since();
        watch.beat(b, Date.now());
      },
      () => undefined,
    );
    if (wedge || fatal) return;
    wedge = watch.check(Date.now());
    if (!wedge) return;
    // Look at L1 from L0 as it was found (L0's QEMU threads, L1's CPUs through its monitor); then ask
    // L1's kernel for every CPU's backtrace and the blocked tasks (sysrq l, w), give the console a
    // moment to print them, and stop L1.
    progress.notice(`nested host: L1 is wedged (${wedge.why}); looking at it from L0, asking it for backtraces, then stopping it`);
    void l1Postmortem(pid, req.monitor, join(ctl, 'kallsyms')).then((lines) => {
      seenFromL0 = lines;
      writeFile(join(ctl, 'sysrq'), 'l w\n').catch(() => undefined);
      setTimeout(() => child.kill('SIGKILL'), SYSRQ_WAIT_MS);
    });
  }, 1_000);
  createInterface({ input: child.stderr }).on('line', (l) => onLine(`qemu: ${l}`));

  const exited = new Promise<{ code: number | null; sig: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, sig) => resolve({ code, sig })));
  const bootTimer = setTimeout(() => {
    if (!ready) {
      fatal = `L1 did not become ready within ${BOOT_TIMEOUT_MS / 1000} s`;
      child.kill('SIGKILL');
    }
  }, BOOT_TIMEOUT_MS);
  let graceTimer: NodeJS.Timeout | undefined;
  const onAbort = () => {
    progress.notice('nested host: stopping the run in L1 (it tears its guests down), then L1');
    writeFile(join(ctl, 'stop'), '').catch(() => child.kill('SIGKILL'));
    graceTimer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  const how = await exited;
  timings.exitedS = since();
  await follower.stop();
  clearTimeout(bootTimer);
  clearInterval(watchTimer);
  clearTimeout(graceTimer);
  signal.removeEventListener('abort', onAbort);
  process.off('exit', killOnExit);
  if (entry !== undefined) journal.resolve(entry);
  const wedged = wedge && wedgeMessage(wedge, watch.stack(wedge), seenFromL0);
  if (wedged) consoleLog.write(`kvmlab (L0): ${wedged}\n`);
  await new Promise<void>((resolve) => consoleLog.end(resolve));

  const status = await readFile(join(ctl, 'status'), 'utf8').catch(() => undefined);
  const stdout = await readFile(join(ctl, 'stdout'), 'utf8').catch(() => '');
  const consoleFile = join(req.out, 'nested-console.log');
  if (wedged && !signal.aborted) throw new HostError(`--on nested: ${wedged}\nThe results L1 wrote before are kept in ${req.out}; its console is in ${consoleFile}.`);
  if (status === undefined || fatal) {
    const panicked = tail.some((l) => /Kernel panic/.test(l));
    const byItself = how.code === 0 && !how.sig ? `: L1 ${panicked ? 'panicked' : 'reset or powered off by itself, with no panic on its console (under TCG a triple fault does this)'}, and -no-reboot ends its QEMU then` : '';
    const why = fatal ?? `L1 exited (${how.sig ?? `status ${how.code}`}) before the run in it finished${byItself}`;
    if (signal.aborted) return { exitCode: 130, stdout };
    throw new HostError(`--on nested: ${why}. Console tail (all of it in ${consoleFile}):\n${tail.join('\n')}`);
  }
  for (const l of watch.reported) progress.notice(`nested host: warning: L1's kernel reported ${l.what} during the run, which then moved on; the step it hit ran on a stalled host (${consoleFile})`);
  return { exitCode: Number(status.trim()), stdout };
}

/** A wedged L1 in words: why, what the run in it was doing, what L0 saw of it, and the stacks its kernel printed. */
export function wedgeMessage(w: Wedge, stack: string[], seenFromL0: string[]): string {
  const doing = w.doing ? `; kvmlab in L1 was at "${w.doing}"${w.doingForMs === undefined ? '' : ` (for ${Math.round(w.doingForMs / 1000)} s)`}` : '';
  const lockup = w.lockup && !w.why.includes(w.lockup.what) ? `; L1's kernel reported ${w.lockup.what}` : '';
  const l0 = seenFromL0.length ? `\nSeen from L0:\n${seenFromL0.map((l) => `  ${l}`).join('\n')}` : '';
  const printed = stack.length ? `\nL1's kernel printed:\n${stack.map((l) => `  ${l}`).join('\n')}` : "\nL1's kernel printed no stack (every L1 CPU may be stuck)";
  return `L1 wedged: ${w.why}${doing}${lockup}${l0}${printed}`;
}

/** Calls `onLine` for each line appended to `path` (a file on the 9p share L1 writes), until stopped. */
function followFile(path: string, onLine: (line: string) => void): { stop(): Promise<void> } {
  let offset = 0;
  let partial = '';
  const poll = async () => {
    const buf = await readFile(path).catch(() => undefined);
    if (!buf || buf.length <= offset) return;
    const text = partial + buf.subarray(offset).toString('utf8');
    offset = buf.length;
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) if (l.trim()) onLine(l);
  };
  let busy = Promise.resolve();
  const timer = setInterval(() => {
    busy = busy.then(poll);
  }, 500);
  return {
    async stop() {
      clearInterval(timer);
      await busy.then(poll);
      if (partial.trim()) onLine(partial);
    },
  };
}
