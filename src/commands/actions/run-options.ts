// What `run` and `plan` read the same way from their flags: the repetitions, and what `--on nested`
// refuses.
import { InputError } from '../../errors.js';
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { HostKernel } from '../../experiment/schema.js';
import type { HostKernelChoice } from '../../targets/nested-host.js';
import type { On } from '../../targets/on.js';

/** The flags `run` and `plan` both take: where, with what, how often, which variants. */
export interface RunChoices {
  on: string;
  backend: 'auto' | 'qemu' | 'mock';
  accel: 'auto' | 'kvm' | 'tcg';
  repeat?: string;
  only?: string;
  where?: string;
  json?: boolean;
  hostKernel?: string;
  hostModules?: string;
  /** --qemu PATH: the QEMU binary that runs the guests (a build tree's), here or in the nested host. */
  qemu?: string;
  /** --mock-host PROFILE: which host the mock simulates (set before the mock loads: commands/options.ts). */
  mockHost?: string;
  /** With --on ssh://…: the key that logs in, and the box's host key fingerprint (else known_hosts). */
  sshKey?: string;
  hostKey?: string;
}

/** --mock-host is the mock's: refused with any other backend. */
export function refuseMockHost(mockHost: string | undefined, backend: string, on: On): void {
  if (mockHost !== undefined && (backend !== 'mock' || on !== 'local')) throw new InputError(`--mock-host ${mockHost}: chooses the host the mock backend simulates; add --backend mock (on this host), or drop it`);
}

/** --host-kernel debian:SERIES, or --host-kernel PATH with --host-modules DIR: only with --on nested, where kvmlab boots the host. */
export function parseHostKernel(flag: string | undefined, modules: string | undefined, on: On): HostKernelChoice | undefined {
  if (flag !== undefined && on !== 'nested') throw new InputError(`--host-kernel ${flag}: kvmlab chooses the host's kernel only for the host it boots; add --on nested (on this host, boot the kernel you want and run here)`);
  return parseKernelChoice(flag, modules, { kernel: '--host-kernel', modules: '--host-modules' });
}

/**
 * A nested host's kernel as a command names it (run's --host-kernel/--host-modules, image build's
 * --kernel/--modules): a Debian series, or a bzImage with its lib/modules/RELEASE directory.
 */
export function parseKernelChoice(flag: string | undefined, modules: string | undefined, names: { kernel: string; modules: string }): HostKernelChoice | undefined {
  if (flag === undefined) {
    if (modules !== undefined) throw new InputError(`${names.modules} ${modules}: goes with ${names.kernel} PATH, the kernel those modules are for`);
    return undefined;
  }
  if (HostKernel.safeParse(flag).success) {
    if (modules !== undefined) throw new InputError(`${names.modules} ${modules}: a Debian kernel brings its own modules; drop it, or give ${names.kernel} a kernel file`);
    return { kernel: flag };
  }
  if (/^[a-z]+:/.test(flag)) throw new InputError(`${names.kernel} ${flag}: give a Debian kernel series such as debian:6.12, or the path of a bzImage`);
  const path = resolve(flag);
  if (!existsSync(path) || !statSync(path).isFile()) throw new InputError(`${names.kernel} ${flag}: no such file; give a Debian kernel series such as debian:6.12, or the path of a bzImage (arch/x86/boot/bzImage)`);
  if (modules === undefined) throw new InputError(`${names.kernel} ${flag}: add ${names.modules} DIR, the kernel's lib/modules/RELEASE directory (\`make modules_install INSTALL_MOD_PATH=DIR\`): kvmlab loads virtio, 9p and kvm-amd from it, or checks they are built in`);
  const dir = resolve(modules);
  if (!existsSync(join(dir, 'modules.builtin'))) throw new InputError(`${names.modules} ${modules}: no modules.builtin there; give the kernel's lib/modules/RELEASE directory as \`make modules_install INSTALL_MOD_PATH=DIR\` leaves it`);
  return { kernel: `path:${path}`, modules: dir };
}

/** --repeat N: repetitions per variant, overriding the file. */
export function parseRepeat(flag: string | undefined): number | undefined {
  if (flag === undefined) return undefined;
  const repeat = Number(flag);
  if (!(Number.isInteger(repeat) && repeat >= 1 && repeat <= 1000)) throw new InputError(`--repeat ${flag}: give a whole number from 1 to 1000`);
  return repeat;
}

/** --on nested runs real QEMU under KVM inside L1: the mock and TCG are refused there. */
export function refuseOnNested(backend: string, accel: string): void {
  if (backend === 'mock') throw new InputError('--on nested runs real QEMU under the nested host\'s KVM; drop --backend mock (or run the mock with --on local)');
  if (accel === 'tcg') throw new InputError('--on nested exists to run guests under KVM; drop --accel tcg (or run TCG with --on local)');
}
