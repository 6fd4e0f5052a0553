// The heartbeat of a kvmlab process that another one watches from outside: the run inside the nested
// KVM host (L1), watched by the kvmlab on L0 that booted it. A console that keeps printing says
// nothing about whether the run still moves (a wedged L1 prints soft-lockup reports forever), so the
// watched process says it itself: every HEARTBEAT_MS it rewrites one small file with a beat count
// and what it is doing (the variant, step or teardown stage its progress last showed), and at once
// whenever that changes.
//
// The beat is written from the main thread, synchronously, so it stops exactly when the event loop
// stops (blocked in the kernel, stopped by a signal, a share that no longer answers), and `doing`
// stops changing when the run waits on something that never ends. The watcher judges both on its
// own clock (the two hosts' clocks are unrelated).
import { writeFileSync } from 'node:fs';

/** The environment variable that names the heartbeat file; set by `--on nested` for the run in L1. */
export const HEARTBEAT_ENV = 'KVMLAB_HEARTBEAT';
export const HEARTBEAT_MS = 5_000;

export interface Beat {
  beat: number;
  pid: number;
  doing: string;
}

let doing = 'starting';
let beatNow: (() => void) | undefined;

/** What this process is doing now, for its heartbeat: beaten at once, so a watcher sees where a run stopped even when it stops right there. */
export function beatDoing(text: string): void {
  if (text === doing) return;
  doing = text;
  beatNow?.();
}

/** Start beating into $KVMLAB_HEARTBEAT when it is set. The timer never keeps the process alive. */
export function startHeartbeat(env: NodeJS.ProcessEnv = process.env): void {
  const file = env[HEARTBEAT_ENV];
  if (!file || beatNow) return;
  let beat = 0;
  const write = () => {
    try {
      writeFileSync(file, `${JSON.stringify({ beat: ++beat, pid: process.pid, doing } satisfies Beat)}\n`);
    } catch {
      // the watcher's share is gone: it judges the silence, nothing to do here
    }
  };
  beatNow = write;
  write();
  setInterval(write, HEARTBEAT_MS).unref();
}

/** A heartbeat file's content, or undefined while it is missing or half-written. */
export function parseBeat(text: string | undefined): Beat | undefined {
  if (!text) return undefined;
  try {
    const b = JSON.parse(text) as Partial<Beat>;
    return typeof b.beat === 'number' && typeof b.doing === 'string' && typeof b.pid === 'number' ? { beat: b.beat, pid: b.pid, doing: b.doing } : undefined;
  } catch {
    return undefined;
  }
}
