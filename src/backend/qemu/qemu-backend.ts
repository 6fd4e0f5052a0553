// The real backend: the host probed, QEMU's command built from the plan (argv.ts) and launched — a
// free port for the guest's SSH, the disable-exits shim checked, a port taken meanwhile tried again
// — into a QemuVm (qemu-vm.ts) that holds the process for its life.
import { access } from 'node:fs/promises';
import { createServer } from 'node:net';
import { errorMessage, HostError } from '../../errors.js';
import type { HostJournal } from '../../host/journal.js';
import { EXITS_SHIM_PATH } from '../../host/kvm-probe.js';
import { realClock } from '../clock.js';
import type { Backend, LaunchDescription, LaunchRequest, PlannedLaunch, Vm } from '../backend.js';
import type { HostFacts } from '../../model/host-facts.js';
import type { Placeholder } from '../../model/placeholder.js';
import { guestCmdline } from '../guest-cmdline.js';
import { buildQemuCommand, shellLine, type QemuCommand } from './argv.js';
import { RealHostView } from './host-view.js';
import { resolveGuestImage, type GuestImage } from './image.js';
import { probeHost, type ProbedHostFacts } from '../probe.js';
import { QemuLaunchError, QemuVm, readTail } from './qemu-vm.js';
import type { GuestSpec } from '../../experiment/schema.js';

export interface QemuBackendOptions {
  /** The guest architecture this backend will run (decides whether KVM can apply at all). */
  arch?: GuestSpec['arch'];
  /** kvmlab's images directory (default $KVMLAB_CACHE/images). */
  imagesDir?: string;
  /** The disable-exits shim (default host-scripts/build/libkvmlab-exits.so). */
  shimPath?: string;
  /** How long QEMU may take to open its QMP socket and answer. */
  qmpTimeoutMs?: number;
  /** Where host changes are recorded before they are made (QEMU processes, tracefs instances, files). */
  journal?: HostJournal;
  /** `--qemu PATH`: the QEMU binary every launch runs unless its request names one; default qemu-system-<arch> on PATH. */
  qemu?: string;
}

/** A launch request as its QEMU command needs it: the run's public key and the forwarded port, or their placeholders. */
export interface CommandRequest<Port extends number | Placeholder = number> extends Pick<LaunchRequest, 'name' | 'guest' | 'plan' | 'runDir' | 'logDir' | 'qemu'> {
  clientPublicKey: string | Placeholder;
  sshPort: Port;
}

/** A free TCP port on 127.0.0.1 (the kernel's pick; QEMU binds it moments later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

const PORT_TAKEN = /Could not set up host forwarding rule/;

/** Why a launch with this environment stops before QEMU starts: the disable-exits shim it preloads is not built. */
export async function unbuiltShim(env: Record<string, string>): Promise<string | undefined> {
  const shim = env.LD_PRELOAD;
  if (!shim || (await access(shim).then(() => true, () => false))) return undefined;
  return `${shim} is not built; run \`make -C host-scripts\` (or bash host-scripts/setup.sh)`;
}

export class QemuBackend implements Backend {
  readonly name = 'qemu';
  readonly simulated = false;
  readonly host: RealHostView;
  readonly clock = realClock;
  private facts: Promise<ProbedHostFacts> | undefined;
  private readonly images = new Map<GuestSpec, Promise<GuestImage>>();

  constructor(private readonly opts: QemuBackendOptions = {}) {
    this.host = new RealHostView(opts.journal);
  }

  probe(): Promise<HostFacts> {
    this.facts ??= probeHost(this.host, { simulated: false });
    return this.facts;
  }

  /** What launch boots: kvmlab's image for the guest's architecture, or the experiment's own files. */
  guestImage(guest: GuestSpec): Promise<GuestImage> {
    // looked up once per experiment: plan describes every variant's launch, a run launches each repetition
    let image = this.images.get(guest);
    if (!image) this.images.set(guest, (image = resolveGuestImage(guest, this.opts.imagesDir ? { imagesDir: this.opts.imagesDir } : {})));
    return image;
  }

  /** The QEMU command launch runs for this request and image. Pure: `kvmlab plan` calls it with placeholders for what only a launch chooses. */
  command<Port extends number | Placeholder>(req: CommandRequest<Port>, image: GuestImage): QemuCommand<Port> {
    return buildQemuCommand({
      name: req.name,
      guest: req.guest,
      plan: req.plan,
      boot: image.boot,
      ...(image.boot.kernel ? { append: guestCmdline(req.guest, req.plan, req.clientPublicKey) } : {}),
      sshPort: req.sshPort,
      guestSshPort: image.ssh.port,
      runDir: req.runDir,
      logDir: req.logDir,
      shimPath: this.opts.shimPath ?? EXITS_SHIM_PATH,
      ...((req.qemu ?? this.opts.qemu) ? { qemu: (req.qemu ?? this.opts.qemu)! } : {}),
    });
  }

  /** QEMU's command as launch builds it, with the request's placeholders; for a launched variant, also why the launch would stop. The guest image is looked up as launch looks it up. */
  async describeLaunch(req: PlannedLaunch): Promise<LaunchDescription> {
    const cmd = this.command(req, await this.guestImage(req.guest));
    const launchProblem = req.launched ? await unbuiltShim(cmd.env) : undefined;
    return { argv: [cmd.binary, ...cmd.args], env: cmd.env, commandLine: shellLine(cmd.binary, cmd.args, cmd.env), ...(launchProblem ? { launchProblem } : {}) };
  }

  async launch(req: LaunchRequest): Promise<Vm> {
    const image = await this.guestImage(req.guest);
    for (let attempt = 1; ; attempt++) {
      const cmd = this.command({ ...req, clientPublicKey: req.clientKey.publicKey, sshPort: await freePort() }, image);
      const unbuilt = await unbuiltShim(cmd.env);
      if (unbuilt) throw new HostError(unbuilt);
      const vm = new QemuVm(cmd, req, image, attempt, this.opts.journal);
      try {
        await vm.start(this.opts.qmpTimeoutMs ?? 60_000);
        return vm;
      } catch (e) {
        await vm.shutdown().catch(() => undefined);
        // Another process took the forwarded port between our check and QEMU's bind: try another.
        if (attempt < 3 && PORT_TAKEN.test(vm.output())) continue;
        if (e instanceof QemuLaunchError || e instanceof HostError) throw e;
        throw new QemuLaunchError(errorMessage(e), vm.commandLine, vm.output(), await readTail(cmd.consoleLog, 2048));
      }
    }
  }
}
