// `kvmlab image build|list`: kvmlab's guest images, built by guest-scripts/build-image.sh from
// Debian packages into $KVMLAB_CACHE/images/<arch>.
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { imagesDir, listImages } from '../../backend/qemu/image.js';
import { HostError, InputError } from '../../errors.js';
import { HostKernel } from '../../spec/schema.js';
import { nestedImageName } from '../../targets/nested.js';
import { formatTable } from '../../report/table.js';
import { packagePath } from '../../util/package-dir.js';

const GUEST_SCRIPTS_DIR = packagePath('guest-scripts');

export type ImageName = 'x86_64' | 'ppc64le' | 'nested-host';

/** `image build`: run build-image.sh for each image asked, stopping at the first that fails. */
export async function buildImages(arch: ImageName | 'all', kernel?: string): Promise<void> {
  if (kernel !== undefined) {
    if (arch !== 'nested-host') throw new InputError(`--kernel ${kernel}: kvmlab chooses the kernel of the nested host only; add --arch nested-host`);
    if (!HostKernel.safeParse(kernel).success) throw new InputError(`--kernel ${kernel}: give a Debian kernel series such as debian:6.12`);
  }
  const names = arch === 'all' ? (['x86_64', 'ppc64le', 'nested-host'] as const) : [arch];
  const script = join(GUEST_SCRIPTS_DIR, 'build-image.sh');
  for (const name of names) {
    const out = join(imagesDir(), name === 'nested-host' ? nestedImageName(kernel) : name);
    const args = name === 'nested-host' ? ['x86_64', out, 'nested-host'] : [name, out];
    const r = await execa('bash', [script, ...args], { reject: false, stdio: 'inherit', env: kernel ? { KVMLAB_KERNEL: kernel } : {} });
    if (r.exitCode !== 0) throw new HostError(`building the ${name} image failed (${script} ${args.join(' ')} exited ${r.exitCode ?? r.signal}); see its output above`);
  }
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
