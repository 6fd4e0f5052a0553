// The mock backend: a simulated host and guest behind a real QMP socket and a real SSH server, so
// the runner, QMP client, SSH client, collectors and reports run unchanged without hardware.
import { REPETITION } from '../../results/layout.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateClientKey, SshGuest } from '../ssh-guest.js';
import { QmpClient } from '../qmp-client.js';
import { guestCmdline } from '../guest-cmdline.js';
import type { Backend, LaunchDescription, LaunchRequest, PlannedLaunch, Vm } from '../backend.js';
import type { HostFacts } from '../../model/host-facts.js';
import { MockMachine } from './machine.js';
import { MockHostView } from './host-view.js';
import { MockQmpServer } from './qmp-server.js';
import { MockShell } from './shell.js';
import { MockSshServer } from './ssh-server.js';
import { MOCK_HOST } from './profile.js';
import { probeHost } from '../probe.js';
import { formatMask } from '../../model/exits.js';
import { settlesWithin, VirtualClock } from '../clock.js';

/** Simulated time from launch until the guest's SSH server listens. */
const BOOT_MS = 300;

/** Faults the simulated host and guest can be told to commit, to test how kvmlab copes. */
export interface MockFaults {
  /** The guest never gets SSH up: connections are dropped before the handshake. */
  neverReady?: boolean;
  /** The simulated QEMU process dies this many ms after launch. */
  dieAfterMs?: number;
  /** QEMU closes its QMP monitor this many ms after launch; the process lives on. */
  closeQmpAfterMs?: number;
  /** The SSH connection drops while a guest command containing this text runs. */
  dropSshOn?: string;
  /** The guest never answers device_del. */
  ignoreUnplug?: boolean;
  /** Host file reads (procfs, tracefs) fail with EIO this many ms after launch. */
  hostReadsFailAfterMs?: number;
}

export class MockBackend implements Backend {
  readonly name = 'mock';
  readonly simulated = true;
  /** Virtual time: the simulated host and guest live in it, and so does the run on them. */
  readonly clock = new VirtualClock();
  readonly host = new MockHostView(this.clock);

  constructor(private readonly faults: MockFaults = {}) {}

  /** The simulated host, probed like any other: the probe reads the files its HostView serves. */
  probe(): Promise<HostFacts> {
    return probeHost(this.host, { simulated: true });
  }

  /** What the mock simulates in place of QEMU, from the same plan and guest command line its launch uses. */
  async describeLaunch(req: PlannedLaunch): Promise<LaunchDescription> {
    const { cpus, maxcpus } = req.guest;
    return { argv: null, env: {}, commandLine: null, simulated: { cpus, ...(maxcpus !== undefined ? { maxcpus } : {}), cmdline: guestCmdline(req.guest, req.plan, req.clientPublicKey) } };
  }

  async launch(req: LaunchRequest): Promise<Vm> {
    const g = req.guest;
    const cmdline = guestCmdline(g, req.plan, req.clientKey.publicKey);
    // The simulated KVM refuses a mask it does not allow, as KVM_ENABLE_CAP does (EINVAL).
    const refused = req.plan.disableExitsMask & ~MOCK_HOST.disableExitsMask;
    if (refused) throw new Error(`exit control did not take effect as asked: KVM_ENABLE_CAP(KVM_CAP_X86_DISABLE_EXITS, ${formatMask(req.plan.disableExitsMask)}) failed: Invalid argument (the simulated host allows ${formatMask(MOCK_HOST.disableExitsMask)})`);
    // QEMU's vfio-pci opens the device's group: only a function bound to vfio-pci can be given
    const unbound = g.devices.find((d) => !this.host.pci.assignable(d.vfio));
    if (unbound) throw new Error(`-device vfio-pci,host=${unbound.vfio}: vfio ${unbound.vfio}: group is not viable: the device is not bound to vfio-pci (simulated QEMU)`);
    const machine = new MockMachine({
      name: req.name,
      arch: g.arch,
      cpus: g.cpus,
      maxcpus: g.maxcpus ?? g.cpus,
      cmdline,
      plan: req.plan,
      clock: this.clock,
      ignoreUnplug: this.faults.ignoreUnplug,
      assignedDevices: g.devices.length,
    });
    const hostKey = generateClientKey(); // the simulated image's host key, known to kvmlab in advance
    const qmpPath = join(req.runDir, 'qmp.sock');
    const consoleLog = join(req.logDir, REPETITION.console);
    let qmpServer: MockQmpServer | undefined;
    let sshServer: MockSshServer | undefined;
    const stop = (reason: string) => {
      if (machine.deadReason) return;
      machine.kill(reason);
      sshServer?.close();
      qmpServer?.close();
      this.host.detach(machine);
      try {
        writeFileSync(consoleLog, machine.dmesg());
      } catch {
        // an unwritable results directory is reported by the runner
      }
    };
    qmpServer = new MockQmpServer(machine, () => stop('quit over QMP'));
    await qmpServer.listen(qmpPath);
    this.host.attach(machine);
    sshServer = new MockSshServer(hostKey.privateKey, req.clientKey.publicKey, new MockShell(machine), () => !machine.deadReason, this.faults);
    const { dieAfterMs, closeQmpAfterMs } = this.faults;
    if (dieAfterMs !== undefined) machine.after(dieAfterMs, () => stop('killed by signal 11 (simulated QEMU crash)'));
    if (this.faults.hostReadsFailAfterMs !== undefined) this.host.failReadsFrom = this.clock.now() + this.faults.hostReadsFailAfterMs;
    if (closeQmpAfterMs !== undefined) machine.after(closeQmpAfterMs, () => qmpServer?.close());
    await this.clock.sleep(BOOT_MS);
    const port = await sshServer.listen();

    const qmp = await QmpClient.connect(qmpPath, { transcript: join(req.logDir, REPETITION.qmp), clock: this.clock });
    const guest = new SshGuest({ host: '127.0.0.1', port, user: 'root', privateKey: req.clientKey.privateKey, hostKey: hostKey.publicKey, transcript: join(req.logDir, REPETITION.guest), clock: this.clock });
    const mask = machine.policy.disableMask;
    return {
      pid: machine.pid,
      qmp,
      guest,
      consoleLog,
      effective: {
        accel: req.plan.accel,
        simulated: true,
        argv: ['(simulated by the mock backend; no QEMU process)', `-smp ${g.cpus},maxcpus=${g.maxcpus ?? g.cpus}`, ...g.devices.map((d) => `-device vfio-pci,host=${d.vfio}`), `-append ${cmdline}`],
        disableExitsMask: mask,
        mwaitInGuestCpuid: machine.policy.mwaitInCpuid,
        haltPollNs: machine.policy.haltPollNs,
      },
      exitReason: () => machine.deadReason,
      waitReady: async (deadline) => {
        await guest.waitReady(deadline, () => machine.deadReason);
      },
      shutdown: async () => {
        guest.disconnect();
        if (machine.deadReason) return `already gone: ${machine.deadReason}`;
        try {
          await qmp.execute('quit', undefined, 5000);
          await settlesWithin(this.clock, qmp.closed, 5000);
        } catch {
          // fall through to the hard stop
        }
        stop('stopped by kvmlab');
        qmp.close();
        return 'quit';
      },
    };
  }
}
