// `kvmlab image build|list|prune`: what the commands take; what they do is in actions/image.ts.
import { Option, type Command } from 'commander';
import type { ImageName } from './actions/image.js';

export function registerImage(program: Command): void {
  const image = program.command('image').description("build or list kvmlab's guest images (kernel + initramfs with SSH, from Debian packages)");
  image
    .command('build')
    .description('build (or confirm up to date) the guest image for an architecture; needs root and Debian package access')
    .addOption(new Option('--arch <arch>', 'guest architecture, or nested-host: the KVM host for `run --on nested`').choices(['x86_64', 'ppc64le', 'nested-host', 'all']).default('all'))
    .option('--kernel <debian:SERIES|PATH>', "with --arch nested-host: the nested host's kernel, from the Debian suite that carries that series (debian:6.12: trixie, fetched through a private apt state under the cache), or a bzImage of your own (with --modules); default the host's own")
    .option('--modules <dir>', "with --kernel PATH: that kernel's lib/modules/RELEASE directory (make modules_install INSTALL_MOD_PATH=DIR)")
    .action(async (flags: { arch: ImageName | 'all'; kernel?: string; modules?: string }) => (await import('./actions/image.js')).buildImages(flags.arch, flags.kernel, flags.modules));
  image
    .command('list')
    .description('list the guest images: architecture, kernel version, when built, size, where')
    .action(async () => (await import('./actions/image.js')).showImages());
  image
    .command('prune')
    .description("remove the images kvmlab rebuilds when a run needs them (nested hosts on a kernel of your own) and broken ones; --all: every image")
    .option('--all', 'remove every image (kvmlab image build, or setup.sh, builds them again)')
    .action(async (flags: { all?: boolean }) => (await import('./actions/image.js')).pruneImages(flags.all ?? false));
}
