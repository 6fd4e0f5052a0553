// The QEMU command line for one VM, built by a pure function from the variant: nothing here touches
// the host, so every flag is unit-tested. The launcher (qemu-backend.ts) spawns exactly this argv
// with exactly this environment, and the argv goes into the results as it ran.
import { shellQuote } from '../../util/shell.js';
import { REPETITION } from '../../results/layout.js';
import { join } from 'node:path';
import type { Placeholder } from '../../model/placeholder.js';
import type { ExitControl, VmPlan } from '../../plan/vm.js';
import type { GuestSpec } from '../../experiment/schema.js';

/** A guest's boot files as image.ts resolved them (absolute paths). */
export interface BootFiles {
  kernel?: string;
  initrd?: string;
  disk?: { path: string; format: 'raw' | 'qcow2' };
}

/** The forwarded port is a number at launch, `<port>` in a plan (model/placeholder.ts). */
export interface ArgvInput<Port extends number | Placeholder = number> {
  /** VM name (-name); shows in `ps` and, with debug-threads=on, the threads carry "CPU n/KVM" names. */
  name: string;
  guest: GuestSpec;
  /** What the variant's knobs ask of KVM and QEMU (plan/vm.ts). */
  plan: VmPlan;
  boot: BootFiles;
  /** Guest kernel command line (-append), when a kernel is given. */
  append?: string;
  /** Host TCP port on 127.0.0.1 forwarded to the guest's SSH port. */
  sshPort: Port;
  /** The guest's SSH port (22 for kvmlab's image). */
  guestSshPort: number;
  /** Private directory (0700): QMP socket, pidfile, shim record. */
  runDir: string;
  /** Results directory: console log. */
  logDir: string;
  /** host-scripts/build/libkvmlab-exits.so */
  shimPath: string;
  /** The QEMU binary; default qemu-system-<arch> on PATH. */
  qemu?: string;
}

export interface QemuCommand<Port extends number | Placeholder = number> {
  binary: string;
  args: string[];
  /** Variables to add to a clean environment (LD_PRELOAD and KVMLAB_* for the shim). */
  env: Record<string, string>;
  qmpSocket: string;
  pidfile: string;
  consoleLog: string;
  /** Host port on 127.0.0.1 forwarded to the guest's SSH port. */
  sshPort: Port;
  exitControl: ExitControl;
  /** Set when the shim runs: where it writes its JSONL record. */
  exitsRecord?: string;
  /** Set when halt_poll_ns is asked for: the per-VM value the shim applies. */
  haltPollNs?: number;
}

export function qemuBinary(arch: GuestSpec['arch']): string {
  return arch === 'x86_64' ? 'qemu-system-x86_64' : 'qemu-system-ppc64';
}

/** Default memory in MiB: what the kvmlab images were tried with (FACTS: x86 512M, pseries 1G). */
export function defaultMemoryMiB(arch: GuestSpec['arch']): number {
  return arch === 'x86_64' ? 512 : 1024;
}

/** A value inside a QEMU option string (key=value,key=value): commas are doubled. */
export function optValue(s: string): string {
  return s.replaceAll(',', ',,');
}

export function buildQemuCommand<Port extends number | Placeholder>(input: ArgvInput<Port>): QemuCommand<Port> {
  const { guest, plan, boot, runDir, logDir } = input;
  const { accel, exitControl: control } = plan;
  const x86 = guest.arch === 'x86_64';
  const qmpSocket = join(runDir, 'qmp.sock');
  const pidfile = join(runDir, 'qemu.pid');
  const consoleLog = join(logDir, REPETITION.console);
  const maxcpus = guest.maxcpus ?? guest.cpus;
  if (!boot.kernel && !boot.disk) throw new Error('nothing to boot: give a kernel or a disk image');

  const args: string[] = [];
  args.push('-name', `${optValue(input.name)},debug-threads=on`);
  args.push(...(x86 ? ['-machine', guest.machine ?? 'q35'] : ['-M', guest.machine ?? 'pseries']));
  args.push('-accel', accel === 'kvm' ? 'kvm' : x86 ? 'tcg,thread=multi' : 'tcg');
  if (control.mode !== 'none') args.push('-overcommit', 'cpu-pm=on');
  args.push('-cpu', plan.cpu);
  args.push('-smp', `${guest.cpus},maxcpus=${maxcpus}`);
  args.push('-m', `${guest.memory ?? defaultMemoryMiB(guest.arch)}M`);
  if (boot.kernel) {
    args.push('-kernel', boot.kernel);
    if (boot.initrd) args.push('-initrd', boot.initrd);
    if (input.append !== undefined) args.push('-append', input.append);
  }
  if (boot.disk) args.push('-drive', `file=${optValue(boot.disk.path)},if=virtio,format=${boot.disk.format}`);
  args.push('-display', 'none', '-nodefaults', '-no-reboot');
  // -nodefaults drops the default serial port; -serial adds it back (ttyS0 on q35, the spapr-vty
  // hvc0 on pseries), written to the results.
  args.push('-serial', `file:${consoleLog}`);
  args.push('-qmp', `unix:${optValue(qmpSocket)},server=on,wait=off`);
  args.push('-pidfile', pidfile);
  args.push('-netdev', `user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:${input.sshPort}-:${input.guestSshPort}`);
  args.push('-device', 'virtio-net-pci,netdev=n0');
  for (const d of guest.devices) args.push('-device', `vfio-pci,host=${d.vfio}`);
  if (x86) args.push('-device', 'virtio-rng-pci');

  const env: Record<string, string> = {};
  let exitsRecord: string | undefined;
  if (control.mode !== 'none' || plan.haltPollNs !== undefined) {
    exitsRecord = join(runDir, 'exits.jsonl');
    env.LD_PRELOAD = input.shimPath;
    env.KVMLAB_EXITS_RECORD = exitsRecord;
    if (control.mode === 'shim') env.KVMLAB_DISABLE_EXITS = `0x${control.mask.toString(16)}`;
    if (plan.haltPollNs !== undefined) env.KVMLAB_HALT_POLL_NS = String(plan.haltPollNs);
  }
  return {
    binary: input.qemu ?? qemuBinary(guest.arch),
    args,
    env,
    qmpSocket,
    pidfile,
    consoleLog,
    sshPort: input.sshPort,
    exitControl: control,
    ...(exitsRecord ? { exitsRecord } : {}),
    ...(plan.haltPollNs !== undefined ? { haltPollNs: plan.haltPollNs } : {}),
  };
}

/** argv as one line a person can paste into a shell (single-quoted where needed). */
export function shellLine(binary: string, args: readonly string[], env: Record<string, string> = {}): string {
  return [...Object.entries(env).map(([k, v]) => `${k}=${shellQuote(v)}`), shellQuote(binary), ...args.map(shellQuote)].join(' ');
}
