// kvmlab run on a lab box by the kvmlab the user started (targets/box.ts) is held on a leash: its
// stdin is the SSH channel, and when that closes — the user pressed Ctrl-C there, or the
// connection dropped — it stops as at a hang-up: the run tears its guests down, the journal puts
// the box back as it was, and what was collected stays in the run's directory on the box. Output to
// a connection that is gone goes nowhere, rather than ending the process before its teardown.

export const LEASH_ENV = 'KVMLAB_LEASH';

/** Holds the leash when this process was started on one; returns whether it was. */
export function holdLeash(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env[LEASH_ENV] !== 'stdin') return false;
  for (const out of [process.stdout, process.stderr]) out.on('error', () => undefined);
  let pulled = false;
  const pull = () => {
    if (pulled) return;
    pulled = true;
    process.kill(process.pid, 'SIGHUP');
  };
  process.stdin.on('end', pull);
  process.stdin.on('close', pull);
  process.stdin.on('error', pull);
  process.stdin.resume();
  // the leash does not keep a finished command alive
  (process.stdin as { unref?: () => void }).unref?.();
  return true;
}
