// kvmlab carries itself to a lab box: what its npm package ships (package.json's `files`: the built
// bundle, guest and host scripts, experiments), the npm modules the bundle leaves out (package.json's
// bundle script's --external:, with their dependencies) and its native helpers' sources, compiled
// there. The box keeps one copy per content hash, so a second run ships nothing.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { HostError } from '../errors.js';
import { packagePath } from '../util/package-dir.js';
import type { Progress } from '../model/progress.js';
import type { BoxSession } from './ssh-session.js';

/** Built on the box, never shipped: a helper compiled here need not run there. */
const NOT_SHIPPED = ['host-scripts/build'];

interface PackageJson {
  files?: string[];
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

const readPackage = (dir: string): PackageJson => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;

/** The npm modules the bundled CLI loads at run time, with everything they depend on (those installed). */
export function runtimeModules(root: string): string[] {
  const pkg = readPackage(root);
  const external = [...(pkg.scripts?.bundle ?? '').matchAll(/--external:([^\s"']+)/g)].map((m) => m[1]!);
  const seen = new Set<string>();
  const walk = (name: string) => {
    if (seen.has(name) || !existsSync(join(root, 'node_modules', name, 'package.json'))) return;
    seen.add(name);
    const dep = readPackage(join(root, 'node_modules', name));
    for (const d of Object.keys({ ...dep.dependencies, ...dep.optionalDependencies })) walk(d);
  };
  external.forEach(walk);
  return [...seen].sort().map((n) => `node_modules/${n}`);
}

/** What goes to the box, as paths relative to kvmlab's package directory. */
export function shippedPaths(root: string): string[] {
  const files = (readPackage(root).files ?? []).filter((f) => existsSync(join(root, f)));
  return ['package.json', ...files, ...runtimeModules(root)];
}

function* walkFiles(root: string, rel: string): Generator<string> {
  if (NOT_SHIPPED.includes(rel)) return;
  const abs = join(root, rel);
  if (!statSync(abs).isDirectory()) {
    yield rel;
    return;
  }
  for (const e of readdirSync(abs).sort()) yield* walkFiles(root, join(rel, e));
}

/** The bundle's identity: kvmlab's own files by content, and its modules by the lockfile that pins them. */
export function bundleHash(root: string): string {
  const h = createHash('sha256');
  for (const rel of shippedPaths(root).filter((p) => !p.startsWith('node_modules/'))) {
    for (const f of walkFiles(root, rel)) h.update(`${f}\0`).update(readFileSync(join(root, f))).update('\0');
  }
  const lock = join(root, 'package-lock.json');
  if (existsSync(lock)) h.update(readFileSync(lock));
  return h.digest('hex').slice(0, 16);
}

/** Where a bundle lives on the box, as a shell word ($HOME expands there). */
export const boxBundleDir = (hash: string) => `"$HOME"/.cache/kvmlab/bundles/${hash}`;

/**
 * kvmlab on the box, shipped unless the box has this very bundle already; returns its directory
 * (a shell word). Its native helpers are compiled there on every call (make does nothing when they
 * are current; a box without a compiler says so in the probe, as a local host would).
 */
export async function shipKvmlab(session: BoxSession, progress: Progress): Promise<string> {
  const root = packagePath();
  const hash = bundleHash(root);
  const dir = boxBundleDir(hash);
  const have = await session.capture(`test -f ${dir}/.complete`);
  if (have.code !== 0) {
    const paths = shippedPaths(root);
    progress.notice(`${session.box.text}: shipping kvmlab ${hash} (its bundle, scripts and ${paths.filter((p) => p.startsWith('node_modules/')).length} npm modules)`);
    const t0 = Date.now();
    const part = `${dir}.part.$$`;
    const tar = execa('tar', ['czf', '-', ...NOT_SHIPPED.map((p) => `--exclude=./${p}`), '-C', root, ...paths.map((p) => `./${p}`)], { reject: false, buffer: { stdout: false } });
    const unpack = session.exec(`set -e; rm -rf ${part}; mkdir -p ${part}; tar xzf - -C ${part}; touch ${part}/.complete; mv -T ${part} ${dir} 2>/dev/null || rm -rf ${part}`, { stdin: tar.stdout });
    const [packed, unpacked] = await Promise.all([tar, unpack]);
    if (packed.exitCode !== 0) throw new HostError(`could not pack kvmlab here for ${session.box.text}: ${String(packed.stderr).trim()}`);
    if (unpacked.code !== 0) throw new HostError(`${session.box.text}: could not unpack kvmlab into ${dir} (exit ${unpacked.code ?? unpacked.signal}): is tar there, and the home directory writable?`);
    progress.notice(`${session.box.text}: kvmlab shipped in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  const make = await session.capture(`cd ${dir}/host-scripts && make -s 2>&1`);
  if (make.code !== 0) progress.notice(`${session.box.text}: kvmlab's native helpers did not build there (${make.stdout.trim().split('\n').pop() ?? `exit ${make.code}`}); install a C compiler (kvmlab setup --on ${session.box.text}) for KVM's probe and per-bit exit control`);
  return dir;
}
