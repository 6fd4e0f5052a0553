// `kvmlab image build|list|prune`: kvmlab's guest images, built by guest-scripts/build-image.sh from
// Debian packages into $KVMLAB_CACHE/images/<arch>.
import { readdir, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { imagesDir, listImages } from '../../backend/qemu/image.js';
import { HostError, InputError } from '../../errors.js';
import { NESTED_IMAGE, nestedImageName } from '../../targets/nested-host.js';
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

/** `image list`: the images built, one row each, with the space each takes. */
export async function showImages(): Promise<void> {
  const dir = imagesDir();
  const images = await listImages(dir);
  if (images.length === 0) {
    process.stdout.write(`no guest images in ${dir}; build them with \`kvmlab image build\`\n`);
    return;
  }
  const rows = await Promise.all(images.map(async (i) => [basename(i.dir), i.arch, i.kernelVersion ?? '-', i.builtAt ?? '-', mib(await bytesIn(i.dir)), i.problem ? `${i.dir} (${i.problem})` : i.dir]));
  process.stdout.write(`${formatTable(['image', 'arch', 'kernel', 'built', 'size', 'path'], rows)}\n`);
}

/**
 * `image prune`: removes the images kvmlab rebuilds by itself when a run needs them — a kernel of
 * the user's own (nested-host-custom-*: `run --host-kernel PATH` rebuilds it) — and any that is not
 * a whole image; with `all`, every image (`kvmlab image build` or setup.sh builds them again).
 */
export async function pruneImages(all: boolean): Promise<void> {
  const images = await listImages(imagesDir());
  const gone = images.filter((i) => all || i.problem !== undefined || basename(i.dir).startsWith(`${NESTED_IMAGE}-custom-`));
  let freed = 0;
  for (const i of gone) {
    const size = await bytesIn(i.dir);
    await rm(i.dir, { recursive: true, force: true });
    freed += size;
    process.stdout.write(`removed ${basename(i.dir)} (${i.problem ? 'not a whole image' : `kernel ${i.kernelVersion ?? '-'}`}, ${mib(size)})\n`);
  }
  const kept = images.length - gone.length;
  process.stdout.write(`${gone.length ? `freed ${mib(freed)}` : 'nothing to remove'}; ${kept} image${kept === 1 ? '' : 's'} kept${kept && !all ? ' (--all removes them too)' : ''}\n`);
}

async function bytesIn(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await bytesIn(p);
    else if (e.isFile()) total += (await stat(p).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;
