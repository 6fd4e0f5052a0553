// Choosing the backend for `run --backend auto|qemu|mock`: qemu is real QEMU and needs the
// qemu-system binary for the guest architecture; auto takes it when installed, else the mock.
import { access, constants, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { HostError, InputError } from '../errors.js';
import type { Progress } from '../model/progress.js';
import type { HostJournal } from '../host/journal.js';
import type { Backend, HostView } from './backend.js';
import { MockBackend } from './mock/mock-backend.js';
import { qemuBinary } from './qemu/argv.js';
import { findExecutable } from './probe.js';
import { RealHostView } from './qemu/host-view.js';
import { QemuBackend } from './qemu/qemu-backend.js';

/** This machine as a HostView: what kvmlab runs on (L0 under --on nested, the probe's host, QEMU's). The one place, with the backends, that makes one. */
export function localHost(journal?: HostJournal): HostView {
  return new RealHostView(journal);
}

/** The Debian package that ships the QEMU binary for this guest architecture. */
export function qemuPackage(arch: 'x86_64' | 'ppc64'): string {
  return arch === 'x86_64' ? 'qemu-system-x86' : 'qemu-system-ppc';
}

/** `--qemu PATH`: an executable QEMU of the user's (a build tree's qemu-system-x86_64), as an absolute path. */
export async function qemuBuild(path: string): Promise<string> {
  const abs = resolve(path);
  const ok = await access(abs, constants.X_OK).then(() => true, () => false);
  if (!ok || !(await stat(abs)).isFile()) throw new InputError(`--qemu ${path}: no executable file there; give a QEMU binary, e.g. build/qemu-system-x86_64 in a QEMU build tree`);
  return abs;
}

/**
 * The mock changes nothing on the host; real QEMU gets the journal its host changes go into. Without
 * one (`kvmlab plan`, which launches nothing) no journal is taken.
 */
export async function selectBackend(asked: 'auto' | 'qemu' | 'mock', arch: 'x86_64' | 'ppc64', progress: Progress, journal?: () => HostJournal, qemu?: string): Promise<Backend> {
  if (qemu !== undefined) {
    if (asked === 'mock') throw new InputError(`--qemu ${qemu}: runs a real QEMU; drop --backend mock`);
    return new QemuBackend({ arch, qemu: await qemuBuild(qemu), ...(journal ? { journal: journal() } : {}) });
  }
  if (asked === 'mock') return new MockBackend();
  const binary = qemuBinary(arch);
  const installed = (await findExecutable(localHost(), binary)) !== undefined;
  if (installed) return new QemuBackend({ arch, ...(journal ? { journal: journal() } : {}) });
  const fix = `install it with \`apt-get install ${qemuPackage(arch)}\` or run \`bash host-scripts/setup.sh\``;
  if (asked === 'qemu') throw new HostError(`--backend qemu: ${binary} is not installed (not found on PATH); ${fix}`);
  progress.notice(`${binary} is not installed: using the mock backend (results are simulated); ${fix} to run real QEMU`);
  return new MockBackend();
}
