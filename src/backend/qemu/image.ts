// What a guest boots from and how kvmlab reaches it over SSH: kvmlab's own image for the guest arch
// (built by guest-scripts/build-image.sh into $KVMLAB_CACHE/images/<arch>), or the user's
// kernel/initrd/disk image with the SSH details the experiment states under guest.ssh.
import { access, constants, readFile, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as z from 'zod';
import { HostError, InputError } from '../../errors.js';
import { cacheDir } from '../../util/cache-dir.js';
import type { GuestSpec } from '../../experiment/schema.js';
import { keyBlob } from '../ssh-guest.js';
import type { BootFiles } from './argv.js';

export const IMAGE_FILES = ['kernel', 'initrd.img', 'ssh_host_ed25519_key.pub', 'manifest.json'] as const;

export const ImageManifestSchema = z.looseObject({
  arch: z.string(),
  kernelPackage: z.string().optional(),
  kernelVersion: z.string(),
  packages: z.record(z.string(), z.string()).optional(),
  inputsHash: z.string().optional(),
  builtAt: z.string().optional(),
});
export type ImageManifest = z.infer<typeof ImageManifestSchema>;

export interface GuestImage {
  source: 'kvmlab' | 'user';
  /** kvmlab's image directory. */
  dir?: string;
  manifest?: ImageManifest;
  boot: BootFiles;
  ssh: {
    user: string;
    port: number;
    /** The guest's host key, one OpenSSH public key line. */
    hostKey: string;
    /** The user's private key for their own guest; kvmlab's image uses the run's fresh key. */
    privateKey?: string;
  };
  /** kvmlab's image prints this on the console once SSH listens. */
  readyMarker?: string;
}

export const READY_MARKER = 'kvmlab-guest: ready';

export function imagesDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheDir(env), 'images');
}

/** kvmlab's image architecture names: the Debian ones. */
export function imageArch(arch: GuestSpec['arch']): 'x86_64' | 'ppc64le' {
  return arch === 'x86_64' ? 'x86_64' : 'ppc64le';
}

const exists = (p: string) =>
  access(p, constants.R_OK).then(
    () => true,
    () => false,
  );

/** Reads and checks one kvmlab image directory; throws HostError naming the fix. */
export async function readKvmlabImage(dir: string, arch: 'x86_64' | 'ppc64le'): Promise<{ manifest: ImageManifest; hostKey: string }> {
  const fix = `build it with \`kvmlab image build --arch ${arch}\` (or \`bash host-scripts/setup.sh\`, which builds both)`;
  const missing: string[] = [];
  for (const f of IMAGE_FILES) if (!(await exists(join(dir, f)))) missing.push(f);
  if (missing.length) throw new HostError(`no kvmlab guest image for ${arch} in ${dir} (missing ${missing.join(', ')}); ${fix}`);
  let manifest: ImageManifest;
  try {
    manifest = ImageManifestSchema.parse(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')));
  } catch (e) {
    throw new HostError(`${join(dir, 'manifest.json')} is not a kvmlab image manifest (${(e as Error).message.split('\n')[0]}); ${fix}`);
  }
  const hostKey = (await readFile(join(dir, 'ssh_host_ed25519_key.pub'), 'utf8')).trim();
  try {
    keyBlob(hostKey);
  } catch (e) {
    throw new HostError(`${join(dir, 'ssh_host_ed25519_key.pub')}: ${(e as Error).message}; ${fix}`);
  }
  return { manifest, hostKey };
}

/** A disk image's format from its name: .qcow2 is qcow2, anything else raw. */
export function diskFormat(path: string): 'raw' | 'qcow2' {
  return /\.qcow2$/i.test(path) ? 'qcow2' : 'raw';
}

async function userFile(path: string, field: string, baseDir: string): Promise<string> {
  const p = resolve(baseDir, path);
  try {
    const s = await stat(p);
    if (!s.isFile()) throw new Error('not a regular file');
    await access(p, constants.R_OK);
  } catch (e) {
    throw new InputError(`guest.${field}: ${p} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give the path of an existing file`);
  }
  return p;
}

/** guest.ssh.host_key: an OpenSSH public key line, or the path of a file holding one. */
async function userHostKey(value: string, baseDir: string): Promise<string> {
  if (/^(ssh-|ecdsa-)\S+\s+\S+/.test(value.trim())) return value.trim();
  const p = await userFile(value, 'ssh.host_key', baseDir);
  const line = (await readFile(p, 'utf8')).trim().split('\n')[0] ?? '';
  try {
    keyBlob(line);
  } catch (e) {
    throw new InputError(`guest.ssh.host_key: ${p}: ${(e as Error).message}; give the guest's host public key (its ssh_host_*_key.pub)`);
  }
  return line;
}

export interface ResolveOptions {
  /** Where kvmlab's images live (default $KVMLAB_CACHE/images). */
  imagesDir?: string;
  /** Relative user paths resolve against this (default the current directory). */
  baseDir?: string;
}

/** The boot files and SSH details for this guest. */
export async function resolveGuestImage(guest: GuestSpec, opts: ResolveOptions = {}): Promise<GuestImage> {
  const baseDir = opts.baseDir ?? process.cwd();
  if (guest.kernel || guest.initrd || guest.image) {
    if (!guest.ssh) {
      throw new InputError(
        'guest: a guest booted from your own kernel/initrd/image needs guest.ssh (user, port, key: your private key file, host_key: the guest\'s host public key) so kvmlab can reach it and check its identity',
      );
    }
    if (guest.initrd && !guest.kernel) throw new InputError('guest.initrd: an initrd needs guest.kernel too');
    const boot: BootFiles = {};
    if (guest.kernel) boot.kernel = await userFile(guest.kernel, 'kernel', baseDir);
    if (guest.initrd) boot.initrd = await userFile(guest.initrd, 'initrd', baseDir);
    if (guest.image) {
      const path = await userFile(guest.image, 'image', baseDir);
      boot.disk = { path, format: diskFormat(path) };
    }
    const keyPath = await userFile(guest.ssh.key, 'ssh.key', baseDir);
    return {
      source: 'user',
      boot,
      ssh: { user: guest.ssh.user, port: guest.ssh.port, hostKey: await userHostKey(guest.ssh.host_key, baseDir), privateKey: await readFile(keyPath, 'utf8') },
    };
  }
  const arch = imageArch(guest.arch);
  const dir = join(opts.imagesDir ?? imagesDir(), arch);
  const { manifest, hostKey } = await readKvmlabImage(dir, arch);
  return {
    source: 'kvmlab',
    dir,
    manifest,
    boot: { kernel: join(dir, 'kernel'), initrd: join(dir, 'initrd.img') },
    ssh: { user: 'root', port: 22, hostKey },
    readyMarker: READY_MARKER,
  };
}

export interface ImageListing {
  arch: string;
  dir: string;
  kernelVersion?: string;
  builtAt?: string;
  problem?: string;
}

/** Every architecture directory under the images directory, with its manifest or what is wrong. */
export async function listImages(dir = imagesDir()): Promise<ImageListing[]> {
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  } catch {
    return [];
  }
  const out: ImageListing[] = [];
  for (const name of names) {
    const d = join(dir, name);
    try {
      const { manifest } = await readKvmlabImage(d, name === 'ppc64le' ? 'ppc64le' : 'x86_64');
      out.push({ arch: manifest.arch, dir: d, kernelVersion: manifest.kernelVersion, ...(manifest.builtAt ? { builtAt: manifest.builtAt } : {}) });
    } catch (e) {
      out.push({ arch: name, dir: d, problem: (e as Error).message });
    }
  }
  return out;
}
