// `kvmlab image build|list`: kvmlab's guest images, built by guest-scripts/build-image.sh from
// Debian packages into $KVMLAB_CACHE/images/<arch>.
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { imagesDir, listImages } from '../../backend/qemu/image.js';
import { HostError, InputError } from '../../errors.js';
import { nestedImageName } from '../../targets/nested.js';
import { parseKernelChoice } from './run-options.js';
import { formatTable } from '../../report/table.js';
import { packagePath } from '../../util/package-dir.js';

const GUEST_SCRIPTS_DIR = packagePath('guest-scripts');

export type ImageName = 'x86_64' | 'ppc64le' | 'nested-host';

const SCRIPT = join(GUEST_SCRIPTS_DIR, 'build-image.sh');

/** `image build`: run build-image.sh for each image asked, stopping at the first that fails. */
export async function buildImages(arch: ImageName | 'all', kernel?: string, modules?: string): Promise<void> {
  if (kernel !== undefined || modules !== undefined) {
    if (arch !== 'nested-host') throw new InputError(`--kernel${modules !== undefined ? '/--modules' : ''}: kvmlab chooses the kernel of the nested host only; add --arch nested-host`);
    const choice = parseKernelChoice(kernel, modules, { kernel: '--kernel', modules: '--modules' })!;
    return buildNestedHostImage(choice.kernel, choice.modules, 'inherit');
  }
  const names = arch === 'all' ? (['x86_64', 'ppc64le', 'nested-host'] as const) : [arch];
  for (const name of names) {
    if (name === 'nested-host') await buildNestedHostImage(undefined, undefined, 'inherit');
    else await buildWith([name, join(imagesDir(), name)], {}, 'inherit');
  }
}

/** The nested host's image for this kernel (build-image.sh: cached, rebuilt when an input changed). */
export async function buildNestedHostImage(kernel: string | undefined, modules: string | undefined, stdio: 'inherit' | 'pipe'): Promise<void> {
  const env = { ...(kernel ? { KVMLAB_KERNEL: kernel } : {}), ...(modules ? { KVMLAB_MODULES: modules } : {}) };
  await buildWith(['x86_64', join(imagesDir(), nestedImageName(kernel)), 'nested-host'], env, stdio);
}

async function buildWith(args: string[], env: Record<string, string>, stdio: 'inherit' | 'pipe'): Promise<void> {
  const r = await execa('bash', [SCRIPT, ...args], { reject: false, stdio, env, all: stdio === 'pipe' });
  if (r.exitCode === 0) return;
  const said = stdio === 'pipe' ? `:\n${String(r.all ?? '').trim().split('\n').slice(-5).join('\n')}` : '; see its output above';
  throw new HostError(`building the image ${args[1]} failed (${SCRIPT} ${args.join(' ')} exited ${r.exitCode ?? r.signal})${said}`);
}

/** `image list`: the images built, one row each. */
export async function showImages(): Promise<void> {
  const dir = imagesDir();
  const images = await listImages(dir);
  if (images.length === 0) {
    process.stdout.write(`no guest images in ${dir}; build them with \`kvmlab image build\`\n`);
    return;
  }
  const rows = images.map((i) => [basename(i.dir), i.arch, i.kernelVersion ?? '-', i.builtAt ?? '-', i.problem ? `${i.dir} (${i.problem})` : i.dir]);
  process.stdout.write(`${formatTable(['image', 'arch', 'kernel', 'built', 'path'], rows)}\n`);
}
