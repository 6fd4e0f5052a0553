// `kvmlab image build|list`: kvmlab's guest images, built by guest-scripts/build-image.sh from
// Debian packages into $KVMLAB_CACHE/images/<arch>.
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { execa } from 'execa';
import { imagesDir, listImages } from '../backend/qemu/image.js';
import { HostError } from '../errors.js';
import { formatTable } from '../report/table.js';

/** guest-scripts/, from src/commands (vitest) and dist/commands alike. */
export const GUEST_SCRIPTS_DIR = fileURLToPath(new URL('../../guest-scripts/', import.meta.url));

export function registerImage(program: Command): void {
  const image = program.command('image').description("build or list kvmlab's guest images (kernel + initramfs with SSH, from Debian packages)");
  image
    .command('build')
    .description('build (or confirm up to date) the guest image for an architecture; needs root and Debian package access')
    .addOption(new Option('--arch <arch>', 'guest architecture, or nested-host: the KVM host for `run --on nested`').choices(['x86_64', 'ppc64le', 'nested-host', 'all']).default('all'))
    .action(async (flags: { arch: 'x86_64' | 'ppc64le' | 'nested-host' | 'all' }) => {
      const names = flags.arch === 'all' ? (['x86_64', 'ppc64le', 'nested-host'] as const) : [flags.arch];
      const script = join(GUEST_SCRIPTS_DIR, 'build-image.sh');
      for (const name of names) {
        const out = join(imagesDir(), name);
        const args = name === 'nested-host' ? ['x86_64', out, 'nested-host'] : [name, out];
        const r = await execa('bash', [script, ...args], { reject: false, stdio: 'inherit' });
        if (r.exitCode !== 0) throw new HostError(`building the ${name} image failed (${script} ${args.join(' ')} exited ${r.exitCode ?? r.signal}); see its output above`);
      }
    });
  image
    .command('list')
    .description('list the guest images: architecture, kernel version, when built, where')
    .action(async () => {
      const dir = imagesDir();
      const images = await listImages(dir);
      if (images.length === 0) {
        process.stdout.write(`no guest images in ${dir}; build them with \`kvmlab image build\`\n`);
        return;
      }
      const rows = images.map((i) => [i.arch, i.kernelVersion ?? '-', i.builtAt ?? '-', i.problem ? `${i.dir} (${i.problem})` : i.dir]);
      process.stdout.write(`${formatTable(['arch', 'kernel', 'built', 'path'], rows)}\n`);
    });
}
