// Is the nested KVM host (L1) still running the experiment? Judged from two things L0 sees, on L0's
// clock: the heartbeat of the kvmlab in L1 (targets/heartbeat.ts) and L1's console, where the kernel
// reports a CPU stuck in the kernel (soft lockup), an RCU stall or a task blocked for minutes. Bytes
// on the console prove nothing — a wedged L1 prints lockup reports forever — so:
//   - no heartbeat for BEAT_LOST_MS: the run in L1 stopped (its event loop is blocked or stopped);
//   - the kernel reported a lockup and the run has not moved on (its `doing` unchanged) for
//     LOCKUP_GRACE_MS since: the run is stuck behind it;
//   - no heartbeat at all JOB_START_MS after L1 said it was ready: kvmlab never started in L1.
// A lockup the run moves past is not a wedge, but it is kept: the steps around it ran on a host that
// stalled. Pure: the caller feeds lines, beats and the time.
import type { Beat } from './heartbeat.js';

export const BEAT_LOST_MS = 60_000;
export const LOCKUP_GRACE_MS = 60_000;
export const JOB_START_MS = 120_000;
const RECENT_LINES = 600;

/** Kernel reports that say a CPU or task of L1 is stuck, and the short name each gets. */
const LOCKUP_REPORTS: [RegExp, (m: RegExpExecArray) => string][] = [
  [/BUG: soft lockup - CPU#(\d+) stuck for (\d+)s! \[(.+?):(\d+)\]/, (m) => `a soft lockup on L1 CPU ${m[1]} (task ${m[3]}:${m[4]}, stuck ${m[2]} s)`],
  [/rcu: INFO: (rcu_\w+) (?:self-)?detected stalls? on CPUs?/, (m) => `an RCU stall (${m[1]})`],
  [/(rcu_\w+) kthread starved for (\d+) jiffies/, (m) => `the ${m[1]} kthread starved (${m[2]} jiffies)`],
  [/INFO: task (.+?):(\d+) blocked for more than (\d+) seconds/, (m) => `task ${m[1]}:${m[2]} blocked for more than ${m[3]} s`],
];

/** A console line without its printk time stamp. */
function bare(line: string): string {
  return line.replace(/\r$/, '').replace(/^\[\s*\d+\.\d+\]\s?/, '');
}

export interface Lockup {
  what: string;
  line: string;
  at: number;
}

export interface Wedge {
  /** Why L1 is taken as wedged, in words. */
  why: string;
  /** When (the caller's clock). */
  at: number;
  /** What the run in L1 last said it was doing, and for how long (ms) it had been. */
  doing: string | undefined;
  doingForMs: number | undefined;
  /** The first lockup L1's kernel reported. */
  lockup: Lockup | undefined;
}

export class L1Watch {
  private readyAt: number | undefined;
  private last: { beat: number; at: number } | undefined;
  private doing: { text: string; since: number } | undefined;
  private readonly lockups: Lockup[] = [];
  /** The last console lines, with when they came: where the stacks are. */
  private readonly recent: { text: string; at: number }[] = [];

  ready(now: number): void {
    this.readyAt ??= now;
  }

  consoleLine(line: string, now: number): void {
    const text = bare(line);
    this.recent.push({ text, at: now });
    if (this.recent.length > RECENT_LINES) this.recent.shift();
    for (const [re, name] of LOCKUP_REPORTS) {
      const m = re.exec(text);
      if (m) {
        this.lockups.push({ what: name(m), line: text, at: now });
        return;
      }
    }
  }

  beat(b: Beat, now: number): void {
    if (this.last?.beat === b.beat) return;
    this.last = { beat: b.beat, at: now };
    if (this.doing?.text !== b.doing) this.doing = { text: b.doing, since: now };
  }

  /** Every lockup report seen, in order. */
  get reported(): readonly Lockup[] {
    return this.lockups;
  }

  /** Whether L1 is wedged now, and why; undefined while it is not (or cannot be told yet). */
  check(now: number): Wedge | undefined {
    const doing = this.doing?.text;
    const doingForMs = this.doing ? now - this.doing.since : undefined;
    const wedge = (why: string, lockup?: Lockup): Wedge => ({ why, at: now, doing, doingForMs, lockup: lockup ?? this.lockups[0] });
    if (this.readyAt === undefined) return undefined;
    if (!this.last) return now - this.readyAt > JOB_START_MS ? wedge(`kvmlab in L1 did not start within ${JOB_START_MS / 1000} s of L1 being ready`) : undefined;
    if (now - this.last.at > BEAT_LOST_MS) return wedge(`kvmlab in L1 stopped: no heartbeat for ${Math.round((now - this.last.at) / 1000)} s`);
    const stuck = this.lockups.find((l) => this.doing!.since <= l.at && now - l.at > LOCKUP_GRACE_MS);
    if (stuck) return wedge(`L1's kernel reported ${stuck.what}, and kvmlab in L1 has not moved on in the ${Math.round((now - stuck.at) / 1000)} s since`, stuck);
    return undefined;
  }

  /**
   * The stacks L1 printed about a wedge: from its first lockup report on, or else from the wedge on
   * (the backtraces it was asked for): the CPU, RIP and call-trace lines.
   */
  stack(w: Wedge): string[] {
    const since = w.lockup?.at ?? w.at;
    const out: string[] = [];
    for (const { text, at } of this.recent) {
      if (at < since) continue;
      if (/^\s*RIP: /.test(text) || /^\s+(\? )?[\w.]+\+0x[0-9a-f]+\/0x[0-9a-f]+/.test(text) || /NMI backtrace for cpu \d+|^CPU: \d+ PID: /.test(text) || /^\s*(Call Trace|<\/?(IRQ|TASK|NMI)>)/.test(text)) out.push(text.trimEnd());
      if (out.length >= 80) break;
    }
    return out;
  }
}
