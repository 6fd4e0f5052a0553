// The watchdog of the nested KVM host: a wedge is told from the heartbeat of the kvmlab in L1 and the
// lockups L1's kernel reports, never from console bytes; a lockup the run moves past is not a wedge.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BEAT_LOST_MS, JOB_START_MS, L1Watch, LOCKUP_GRACE_MS } from '../../src/targets/l1-watch.js';
import { beatDoing, parseBeat, startHeartbeat } from '../../src/targets/heartbeat.js';
import { wedgeMessage } from '../../src/targets/nested.js';
import { describeCpus, parseInfoRegisters, parseKallsyms, parseMemoryWords, symbolize } from '../../src/targets/l1-postmortem.js';

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
    expect(w.stack(wedge)).toEqual([
      'CPU: 3 PID: 158 Comm: node Not tainted 6.1.0-57-amd64 #1  Debian 6.1.192-3',
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
    const text = wedgeMessage(wedge, w.stack(wedge), ['L1 CPU 0: halted, RIP ffffffff81a4b7ee default_idle+0x1e']);
    expect(text).toMatch(/^L1 wedged: L1's kernel reported a soft lockup .*; kvmlab in L1 was at "variant 1\/1 x: teardown: stopping collector tracefs" \(for 61 s\)\nSeen from L0:\n {2}L1 CPU 0: halted, RIP ffffffff81a4b7ee default_idle\+0x1e\nL1's kernel printed:\n {2}CPU: 3 PID: 158 Comm: node .*\n {2}RIP: 0010:smp_call_function_many_cond/);
    expect(w.reported.map((l) => l.what)).toEqual(['a soft lockup on L1 CPU 3 (task node:158, stuck 868 s)', 'an RCU stall (rcu_preempt)']);
    // the last progress line is said too where it is further on than the heartbeat's stage, not where it repeats it
    expect(wedgeMessage(wedge, [], [], '[ 61.2s] variant 1/1 x: teardown: stopping collector tracefs')).not.toMatch(/last progress line/);
    expect(wedgeMessage(wedge, [], [], '[ 62.0s] variant 1/1 x: teardown: stopping the guest')).toMatch(/was at "variant 1\/1 x: teardown: stopping collector tracefs" \(for 61 s\); its last progress line: "\[ 62.0s\] variant 1\/1 x: teardown: stopping the guest"/);
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
      expect(parseBeat(readFileSync(file, 'utf8'))).toEqual({ beat: 1, pid: process.pid, doing: expect.any(String) });
      beatDoing('step 1/1 freeze');
      expect(parseBeat(readFileSync(file, 'utf8'))).toEqual({ beat: 2, pid: process.pid, doing: 'step 1/1 freeze' });
      expect(parseBeat('{"beat": 3, "pid"')).toBeUndefined();
      expect(parseBeat(undefined)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a wedged L1 seen from L0', () => {
  // QEMU 7.2's `info registers -a` for x86 (the TCG -cpu max L1), cut to the lines the parser reads.
  // CPU 2 runs an L2 guest: its EFER (the guest's) has no SVME.
  const REGS = `CPU#0
RAX=0000000000000000 RBX=0000000000000000 RCX=0000000000000001 RDX=0000000000000000
RIP=ffffffff81a4b7ee RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1
EFER=0000000000001d01
CPU#1
RAX=0000000000000000 RBX=ffff888100a3c000 RCX=0000000000000000 RDX=0000000000000000
RIP=ffffffffc0a1f10a RFL=00000202 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0
EFER=0000000000001d01
CPU#2
RIP=ffffffff9a2b1f10 RFL=00000286 [--S--P-] CPL=0 II=0 A20=1 SMM=0 HLT=0
EFER=0000000000000d01
CPU#3
RIP=00007f3a1c2d9b7c RFL=00000246 [---Z-P-] CPL=3 II=0 A20=1 SMM=0 HLT=0
EFER=0000000000001d01
`;
  // /proc/kallsyms as L1 writes it (text symbols; a module's carry its name).
  const SYMS = parseKallsyms(`ffffffff81000000 T _stext
ffffffff81a4b7d0 T default_idle
ffffffff81a4b800 T default_idle_call
ffffffffc0a1f000 t svm_vcpu_run	[kvm_amd]
ffffffffc0a1f400 t svm_handle_exit	[kvm_amd]
`);

  it("names each L1 CPU's function from L1's kallsyms, and says which run an L2 guest", () => {
    const cpus = parseInfoRegisters(REGS);
    expect(cpus.map((c) => ({ cpu: c.cpu, cpl: c.cpl, halted: c.halted, svme: c.svme }))).toEqual([
      { cpu: 0, cpl: 0, halted: true, svme: true },
      { cpu: 1, cpl: 0, halted: false, svme: true },
      { cpu: 2, cpl: 0, halted: false, svme: false },
      { cpu: 3, cpl: 3, halted: false, svme: true },
    ]);
    expect(describeCpus(cpus, SYMS)).toEqual([
      'L1 CPU 0: halted, RIP ffffffff81a4b7ee default_idle+0x1e',
      'L1 CPU 1: RIP ffffffffc0a1f10a svm_vcpu_run [kvm_amd]+0x10a',
      'L1 CPU 2: RIP ffffffff9a2b1f10 in guest mode, running an L2 guest',
      "L1 CPU 3: RIP 00007f3a1c2d9b7c in L1's user space",
    ]);
    // past any function's length from the nearest symbol: no name, rather than a wrong one
    expect(symbolize(SYMS, 0xffffffff82000010n)).toBeUndefined();
    expect(describeCpus(cpus, undefined)[0]).toBe("L1 CPU 0: halted, RIP ffffffff81a4b7ee in L1's kernel (L1's symbols were not read)");
  });

  it('lists the kernel text addresses on a stuck CPU\'s stack, as `x /Ngx` prints it', () => {
    const words = parseMemoryWords(`ffffc90000113e40: 0x0000000000000000 0xffffffffc0a1f40c
ffffc90000113e50: 0xffff888100a3c000 0xffffffff81a4b7d0
ffffc90000113e60: 0xffffffff81a4b812 0x0000000000000246
`);
    expect(words).toHaveLength(6);
    const cpus = parseInfoRegisters(REGS);
    // a word equal to a symbol's start is no return address: left out
    expect(describeCpus(cpus, SYMS, new Map([[1, words]]))[1]).toBe('L1 CPU 1: RIP ffffffffc0a1f10a svm_vcpu_run [kvm_amd]+0x10a; on its stack: ? svm_handle_exit [kvm_amd]+0xc ? default_idle_call+0x12');
  });
});
