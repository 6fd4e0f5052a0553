// `--on nested`, booting and watching L1 (what L1 is: targets/nested-host.ts). L1 boots kvmlab's
// nested-host image (guest-scripts/nested-host-init.sh) and sees, over 9p, this host's / read-only
// (so the very node, kvmlab, QEMU, images and helpers run there), the results directory writable
// at the same path, and a control directory holding the job, the stop request and the job's exit
// status. The L1 QEMU process is journaled like every QEMU kvmlab starts, and is killed if this
// process exits any other way: nothing is left running at any level.
import { spawn } from 'node:child_process';
import { createWriteStream, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { cacheDir } from '../util/cache-dir.js';
import { findExecutable, qemuInfo } from '../backend/probe.js';
import { localHost } from '../backend/select.js';
import { shellQuote } from '../util/shell.js';
import { HostError } from '../errors.js';
import { HOST_SCRIPTS_DIR } from '../host/kvm-probe.js';
import { type HostJournal, processStartTicks } from '../host/journal.js';
import { HEARTBEAT_ENV, parseBeat } from './heartbeat.js';
import { L1Watch, type Wedge } from './l1-watch.js';
import { l1Postmortem } from './l1-postmortem.js';
import type { Progress } from '../model/progress.js';
import { L0_BINARY, l1Argv, nestedHostFiles, nestedTarget, pathsToKeep, type NestedShape } from './nested-host.js';
import { TARGET_ENV } from './on.js';

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
  // The last progress line the run in L1 printed: said with a wedge beside its heartbeat's last stage,
  // which once lagged it (a step's beat not seen before the run stopped, 2026-12-05).
  let lastProgress: string | undefined;
  const follower = followFile(join(ctl, 'stderr'), (line) => {
    if (line.trim()) lastProgress = line.trim();
    progress.notice(`  L1| ${line}`);
  });
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
  const wedged = wedge && wedgeMessage(wedge, watch.stack(wedge), seenFromL0, lastProgress);
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

/** A wedged L1 in words: why, what the run in it was doing (its heartbeat's stage, and its last progress line where that says more), what L0 saw of it, and the stacks its kernel printed. */
export function wedgeMessage(w: Wedge, stack: string[], seenFromL0: string[], lastProgress?: string): string {
  const beat = w.doing ? `; kvmlab in L1 was at "${w.doing}"${w.doingForMs === undefined ? '' : ` (for ${Math.round(w.doingForMs / 1000)} s)`}` : '';
  const doing = lastProgress && !(w.doing && lastProgress.endsWith(w.doing)) ? `${beat}; its last progress line: "${lastProgress}"` : beat;
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
