// kvmlab's cache on this host: guest images (images/<arch>) and compiled code (code/). Both can be
// rebuilt from what kvmlab ships, so removing the directory loses only time.

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.KVMLAB_CACHE || '/var/cache/kvmlab';
}
