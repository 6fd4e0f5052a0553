// The seam between the harness and the machine. Everything above it — runner, pinning, collectors,
// reports — runs the same code for real QEMU and for the mock; only what is behind these interfaces
// knows whether the guest and host are real.
import type { Clock } from './clock.js';
import type { HostFacts } from '../model/host-facts.js';
import type { Effective } from '../results/summary.js';
import type { VmPlan } from '../plan/vm.js';
import type { GuestSpec } from '../experiment/schema.js';
import type { QmpClient } from './qmp-client.js';
import type { KeyPair, SshGuest } from './ssh-guest.js';
import type { Placeholder } from '../model/placeholder.js';

/** A host file held open for cheap repeated reads (procfs files re-read at offset 0). */
export interface OpenFile {
  /**
   * The file's whole current content, as bytes into `into` from its start: how many. No string is
   * made (a sampler reads 1,280 of these a second). Throws like read(2) when the file is gone (ESRCH,
   * ENOENT), and when the content does not fit.
   */
  read(into: Uint8Array): number;
  close(): void;
}

export interface ProgramResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A program started on the host (perf stat): its stderr as it comes, its end, and signals to it. */
export interface HostProcess {
  readonly stderr: string[];
  /** Its exit status; null when a signal ended it; -1 when it could not start. */
  readonly exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
}

/** The host as collectors and pinning touch it: files, thread affinity, process usage. */
export interface HostView {
  readFile(path: string): Promise<string>;
  /** Open a file to read it again and again; samplers use this for procfs. */
  openFile(path: string): OpenFile;
  readdir(path: string): Promise<string[]>;
  writeFile(path: string, data: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  exists(path: string): Promise<boolean>;
  /** sched_setaffinity for one thread. */
  setAffinity(tid: number, cpus: readonly number[]): Promise<void>;
  /** CPU % (of one CPU) and RSS of a whole process since the previous call. */
  processUsage(pid: number): Promise<{ cpuPct: number; rssBytes: number }>;
  /** May this process write ('w') or execute ('x') the host path? */
  access(path: string, mode: 'w' | 'x'): Promise<boolean>;
  /** Run a program on the host to its end (argv, no shell); exitCode -1 when it could not start, timed out or was cancelled by `signal`. */
  run(file: string, args: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<ProgramResult>;
  /** Start a program on the host (argv, no shell), stdin and stdout closed. */
  spawn(file: string, args: readonly string[]): HostProcess;
}

export interface LaunchRequest {
  /** VM name (appears in thread names and -name). */
  name: string;
  guest: GuestSpec;
  /** What the variant's knobs ask of KVM and QEMU: the backend carries it out, never re-derives it. */
  plan: VmPlan;
  /** Private directory (mode 0700) for the QMP socket and pidfile. */
  runDir: string;
  /** Results directory for this variant: console log, transcripts, launch command. */
  logDir: string;
  clientKey: KeyPair;
  /** The QEMU binary to run (a build of the user's, say); absent: the backend's own (qemu-system-<arch> on PATH). */
  qemu?: string;
}

/** A launch as `kvmlab plan` shows it: what launch would be asked, with placeholders for what only a launch chooses (the SSH port, the private directory, the client key). */
export interface PlannedLaunch extends Pick<LaunchRequest, 'name' | 'guest' | 'plan' | 'runDir' | 'logDir' | 'qemu'> {
  clientPublicKey: string | Placeholder;
  sshPort: Placeholder;
  /** Preflight lets it through: say also why the launch itself would stop. */
  launched: boolean;
}

/** What a backend would launch for a PlannedLaunch: QEMU's argv and environment, or what the mock simulates in their place. */
export interface LaunchDescription {
  argv: string[] | null;
  env: Record<string, string>;
  commandLine: string | null;
  /** Why the launch would stop before QEMU starts, though preflight passes the variant. */
  launchProblem?: string;
  /** On the mock: the guest it simulates in place of a QEMU process. */
  simulated?: { cpus: number; maxcpus?: number; cmdline: string };
}

export interface Vm {
  readonly pid: number;
  readonly qmp: QmpClient;
  readonly guest: SshGuest;
  readonly effective: Effective;
  /** Path of the guest console log. */
  readonly consoleLog: string;
  /** Why the VM process is gone, or undefined while it runs. */
  exitReason(): string | undefined;
  /** Wait until the guest answers commands. */
  waitReady(deadline: number): Promise<void>;
  /** QMP quit, then SIGTERM, then SIGKILL, each with a deadline. Safe to call twice. */
  shutdown(): Promise<string>;
}

export interface Backend {
  readonly name: 'qemu' | 'mock';
  /** The guest and host are a model: every result says so. */
  readonly simulated: boolean;
  readonly host: HostView;
  /** The clock every wait, window and stamp of a run on this backend goes by (clock.ts). */
  readonly clock: Clock;
  probe(): Promise<HostFacts>;
  /** What launch would start for this request, started nothing (`kvmlab plan`). */
  describeLaunch(req: PlannedLaunch): Promise<LaunchDescription>;
  launch(req: LaunchRequest): Promise<Vm>;
}
