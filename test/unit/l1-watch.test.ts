// The watchdog of the nested KVM host: a wedge is told from the heartbeat of the kvmlab in L1 and the
// lockups L1's kernel reports, never from console bytes; a lockup the run moves past is not a wedge.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BEAT_LOST_MS, JOB_START_MS, L1Watch, LOCKUP_GRACE_MS } from '../../src/targets/l1-watch.js';
import { parseBeat, startHeartbeat } from '../../src/targets/heartbeat.js';
import { wedgeMessage } from '../../src/targets/nested.js';

// The shape of a Debian 6.1 soft-lockup report with softlockup_all_cpu_backtrace=1, as L1's console
// prints it (printk times on).
const LOCKUP = `[  912.402116] watchdog: BUG: soft lockup - CPU#3 stuck for 868s! [node:158]
[  912.402981] Modules linked in: kvm_amd ccp kvm irqbypass 9p 9pnet_virtio
[  912.403530] CPU: 3 PID: 158 Comm: node Not tainted 6.1.0-57-amd64 #1  Debian 6.1.192-3
[  912.404120] RIP: 0010:smp_call_function_many_cond+0x12e/0x3a0
[  912.404900] Call Trace:
[  912.405011]  <TASK>
[  912.405100]  ? text_poke_memset+0x20/0x20
[  912.405300]  on_each_cpu_cond_mask+0x20/0x40
[  912.405500]  text_poke_bp_batch+0xa5/0x2a0
[  912.405700]  __jump_label_update+0x6f/0x120
[  912.405900]  static_key_disable_cpuslocked+0x58/0x90
[  912.406100]  </TASK>
[  912.406300] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:`.split('\n');

const beat = (n: number, doing: string) => ({ beat: n, pid: 158, doing });

describe('the nested host watchdog', () => {
  it('says nothing before L1 is ready, and waits a while for kvmlab to start in it', () => {
    const w = new L1Watch();
    expect(w.check(10 * JOB_START_MS)).toBeUndefined();
    w.ready(0);
    expect(w.check(JOB_START_MS - 1)).toBeUndefined();
    expect(w.check(JOB_START_MS + 1)?.why).toMatch(/did not start within 120 s/);
  });

  it('takes a heartbeat that stops as a wedge, naming what the run was doing', () => {
    const w = new L1Watch();
    w.ready(0);
    w.beat(beat(1, 'variant 1/1 x: step 5/6 parked'), 1_000);
    w.beat(beat(2, 'variant 1/1 x: step 5/6 parked'), 6_000);
    // the same beat read again is no sign of life
    w.beat(beat(2, 'variant 1/1 x: step 5/6 parked'), 40_000);
    expect(w.check(6_000 + BEAT_LOST_MS)).toBeUndefined();
    const wedge = w.check(6_001 + BEAT_LOST_MS)!;
    expect(wedge.why).toMatch(/no heartbeat for 60 s/);
    expect(wedge).toMatchObject({ doing: 'variant 1/1 x: step 5/6 parked', doingForMs: 5_001 + BEAT_LOST_MS });
  });

  it('takes a lockup the run does not move past as a wedge, with the stack L1 printed', () => {
    const w = new L1Watch();
    w.ready(0);
    w.beat(beat(1, 'variant 1/1 x: teardown: stopping collector tracefs'), 1_000);
    for (const l of LOCKUP) w.consoleLine(l, 2_000);
    // still beating (the event loop runs), but stuck where it was
    for (let t = 5_000; t < 2_000 + LOCKUP_GRACE_MS + 5_000; t += 5_000) w.beat(beat(t, 'variant 1/1 x: teardown: stopping collector tracefs'), t);
    expect(w.check(2_000 + LOCKUP_GRACE_MS)).toBeUndefined();
    const wedge = w.check(2_001 + LOCKUP_GRACE_MS)!;
    expect(wedge.why).toBe("L1's kernel reported a soft lockup on L1 CPU 3 (task node:158, stuck 868 s), and kvmlab in L1 has not moved on in the 60 s since");
    expect(wedge.stack).toEqual([
      'RIP: 0010:smp_call_function_many_cond+0x12e/0x3a0',
      'Call Trace:',
      ' <TASK>',
      ' ? text_poke_memset+0x20/0x20',
      ' on_each_cpu_cond_mask+0x20/0x40',
      ' text_poke_bp_batch+0xa5/0x2a0',
      ' __jump_label_update+0x6f/0x120',
      ' static_key_disable_cpuslocked+0x58/0x90',
      ' </TASK>',
    ]);
    const text = wedgeMessage(wedge);
    expect(text).toMatch(/^L1 wedged: L1's kernel reported a soft lockup .*; kvmlab in L1 was at "variant 1\/1 x: teardown: stopping collector tracefs" \(for 61 s\)\nL1's kernel printed:\n {2}RIP: 0010:smp_call_function_many_cond/);
    expect(w.reported.map((l) => l.what)).toEqual(['a soft lockup on L1 CPU 3 (task node:158, stuck 868 s)', 'an RCU stall (rcu_preempt)']);
  });

  it('lets a run that moves on after a lockup go on, and keeps the lockup', () => {
    const w = new L1Watch();
    w.ready(0);
    w.beat(beat(1, 'step 3/6 idle'), 1_000);
    w.consoleLine('[   50.1] watchdog: BUG: soft lockup - CPU#1 stuck for 23s! [qemu-system-x86:201]', 2_000);
    w.beat(beat(2, 'step 4/6 offline'), 30_000);
    w.beat(beat(3, 'step 4/6 offline'), 2_000 + LOCKUP_GRACE_MS + 10_000);
    expect(w.check(2_000 + LOCKUP_GRACE_MS + 10_001)).toBeUndefined();
    expect(w.reported).toHaveLength(1);
  });

  it('recognises hung tasks and starved RCU kthreads', () => {
    const w = new L1Watch();
    w.consoleLine('[  250.0] INFO: task node:158 blocked for more than 120 seconds.', 0);
    w.consoleLine('[  251.0] rcu: rcu_preempt kthread starved for 21004 jiffies! g1234 f0x0 RCU_GP_WAIT_FQS(5) ->state=0x0 ->cpu=0', 0);
    expect(w.reported.map((l) => l.what)).toEqual(['task node:158 blocked for more than 120 s', 'the rcu_preempt kthread starved (21004 jiffies)']);
  });
});

describe('the heartbeat', () => {
  it('is written at once, parsed back, and a half-written file is no beat', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmlab-beat-'));
    try {
      const file = join(dir, 'heartbeat');
      startHeartbeat({ KVMLAB_HEARTBEAT: file });
      expect(parseBeat(readFileSync(file, 'utf8'))).toEqual({ beat: 1, pid: process.pid, doing: 'starting' });
      expect(parseBeat('{"beat": 3, "pid"')).toBeUndefined();
      expect(parseBeat(undefined)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
