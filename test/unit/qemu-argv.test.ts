// The QEMU command line is a pure function of the variant: every flag kvmlab relies on is pinned here.
import { describe, expect, it } from 'vitest';
import { buildQemuCommand, optValue, shellLine, type ArgvInput } from '../../src/backend/qemu/argv.js';
import type { Accel } from '../../src/model/host-facts.js';
import { planVm, type PlanHost } from '../../src/plan/vm.js';
import { checkExitRecord } from '../../src/backend/qemu/exit-record.js';
import { whyCannotBootGuest } from '../../src/backend/probe.js';
import { cmdlineFacts } from '../../src/formats/cmdline.js';
import { parseCpuInfo } from '../../src/formats/cpuinfo.js';
import { diskFormat, type GuestImage } from '../../src/backend/qemu/image.js';
import { QemuBackend } from '../../src/backend/qemu/qemu-backend.js';
import { Placeholder } from '../../src/model/placeholder.js';
import { Guest, Knobs } from '../../src/experiment/schema.js';
import type { ShimRecord } from '../../src/model/exits.js';

/** An Intel host whose KVM allows MWAIT|HLT|PAUSE|CSTATE passthrough. */
const HOST: PlanHost = { cpuVendor: 'GenuineIntel', kvm: { disableExitsMask: 0xf } };

function input(guest: Record<string, unknown>, knobs: Record<string, unknown> = {}, over: Partial<ArgvInput> & { accel?: Accel } = {}): ArgvInput {
  const { accel = 'tcg', ...rest } = over;
  const g = Guest.parse({ arch: 'x86_64', cpus: 2, maxcpus: 4, ...guest });
  return {
    name: 'kvmlab-t-1',
    guest: g,
    plan: planVm(g, Knobs.parse(knobs), accel, HOST),
    boot: { kernel: '/img/kernel', initrd: '/img/initrd.img' },
    append: 'console=ttyS0 panic=-1',
    sshPort: 40022,
    guestSshPort: 22,
    runDir: '/tmp/kvmlab-run',
    logDir: '/res/v/rep-1',
    shimPath: '/hs/libkvmlab-exits.so',
    ...rest,
  };
}

/** The value following `flag` (first occurrence). */
function after(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
}

describe('buildQemuCommand', () => {
  it('x86_64 under TCG: q35, multi-threaded TCG, qemu64, smp, memory, kernel boot', () => {
    const c = buildQemuCommand(input({ memory: '512M' }));
    expect(c.binary).toBe('qemu-system-x86_64');
    expect(after(c.args, '-machine')).toBe('q35');
    expect(after(c.args, '-accel')).toBe('tcg,thread=multi');
    expect(after(c.args, '-cpu')).toBe('qemu64');
    expect(after(c.args, '-smp')).toBe('2,maxcpus=4');
    expect(after(c.args, '-m')).toBe('512M');
    expect(after(c.args, '-kernel')).toBe('/img/kernel');
    expect(after(c.args, '-initrd')).toBe('/img/initrd.img');
    expect(after(c.args, '-append')).toBe('console=ttyS0 panic=-1');
    expect(c.args).toContain('-nodefaults');
    expect(c.args).toContain('-no-reboot');
    expect(after(c.args, '-display')).toBe('none');
    expect(after(c.args, '-serial')).toBe('file:/res/v/rep-1/console.log');
    expect(after(c.args, '-qmp')).toBe('unix:/tmp/kvmlab-run/qmp.sock,server=on,wait=off');
    expect(after(c.args, '-pidfile')).toBe('/tmp/kvmlab-run/qemu.pid');
    expect(after(c.args, '-name')).toBe('kvmlab-t-1,debug-threads=on');
    expect(after(c.args, '-netdev')).toBe('user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22');
    const devices = c.args.filter((_, i) => c.args[i - 1] === '-device');
    expect(devices).toEqual(['virtio-net-pci,netdev=n0', 'virtio-rng-pci']);
    expect(c.env).toEqual({});
    expect(c.exitControl).toEqual({ mode: 'none' });
    expect(c.args).not.toContain('-overcommit');
    expect(c.qmpSocket).toBe('/tmp/kvmlab-run/qmp.sock');
    expect(c.consoleLog).toBe('/res/v/rep-1/console.log');
    expect(c.sshPort).toBe(40022);
  });

  it('defaults memory to 512M on x86_64 and 1G on pseries', () => {
    expect(after(buildQemuCommand(input({})).args, '-m')).toBe('512M');
    expect(after(buildQemuCommand(input({ arch: 'ppc64', cpus: 1, maxcpus: 2 })).args, '-m')).toBe('1024M');
  });

  it('ppc64: pseries, plain TCG, power9, no rng device', () => {
    const c = buildQemuCommand(input({ arch: 'ppc64', cpus: 1, maxcpus: 2 }, {}, { append: 'console=hvc0' }));
    expect(c.binary).toBe('qemu-system-ppc64');
    expect(after(c.args, '-M')).toBe('pseries');
    expect(c.args).not.toContain('-machine');
    expect(after(c.args, '-accel')).toBe('tcg');
    expect(after(c.args, '-cpu')).toBe('power9');
    expect(after(c.args, '-smp')).toBe('1,maxcpus=2');
    expect(c.args).not.toContain('virtio-rng-pci');
    expect(c.args).toContain('virtio-net-pci,netdev=n0');
  });

  it('KVM: -accel kvm and -cpu host unless the experiment names a model', () => {
    expect(after(buildQemuCommand(input({}, {}, { accel: 'kvm' })).args, '-cpu')).toBe('host');
    expect(after(buildQemuCommand(input({}, {}, { accel: 'kvm' })).args, '-accel')).toBe('kvm');
    expect(after(buildQemuCommand(input({ cpu: 'Skylake-Server' }, {}, { accel: 'kvm' })).args, '-cpu')).toBe('Skylake-Server');
    expect(after(buildQemuCommand(input({ machine: 'pc' })).args, '-machine')).toBe('pc');
  });

  it('a disk image replaces kernel boot; commas in paths are escaped inside option strings', () => {
    const c = buildQemuCommand(input({}, {}, { boot: { disk: { path: '/d/a,b.qcow2', format: 'qcow2' } }, runDir: '/tmp/r,1' }));
    expect(after(c.args, '-drive')).toBe('file=/d/a,,b.qcow2,if=virtio,format=qcow2');
    expect(c.args).not.toContain('-kernel');
    expect(c.args).not.toContain('-append');
    expect(after(c.args, '-qmp')).toBe('unix:/tmp/r,,1/qmp.sock,server=on,wait=off');
    expect(optValue('a,b,,c')).toBe('a,,b,,,,c');
  });

  it('refuses to build a VM with nothing to boot', () => {
    expect(() => buildQemuCommand(input({}, {}, { boot: {} }))).toThrow(/nothing to boot/);
  });

  it('disable_exits [hlt, pause] under KVM: cpu-pm=on and the shim with mask 0x6', () => {
    const c = buildQemuCommand(input({}, { disable_exits: ['hlt', 'pause'] }, { accel: 'kvm' }));
    expect(after(c.args, '-overcommit')).toBe('cpu-pm=on');
    expect(c.exitControl).toEqual({ mode: 'shim', mask: 0x6 });
    expect(c.env).toEqual({ LD_PRELOAD: '/hs/libkvmlab-exits.so', KVMLAB_EXITS_RECORD: '/tmp/kvmlab-run/exits.jsonl', KVMLAB_DISABLE_EXITS: '0x6' });
    expect(c.exitsRecord).toBe('/tmp/kvmlab-run/exits.jsonl');
  });

  it('disable_exits cpu-pm: QEMU\'s own mode, the shim only records', () => {
    const c = buildQemuCommand(input({}, { disable_exits: 'cpu-pm' }, { accel: 'kvm' }));
    expect(after(c.args, '-overcommit')).toBe('cpu-pm=on');
    expect(c.exitControl).toEqual({ mode: 'cpu-pm' });
    expect(c.env.KVMLAB_DISABLE_EXITS).toBeUndefined();
    expect(c.env.KVMLAB_EXITS_RECORD).toBe('/tmp/kvmlab-run/exits.jsonl');
  });

  it('expose_mwait alone asks for cpu-pm=on with an empty mask; expose_mwait false hides MONITOR', () => {
    const c = buildQemuCommand(input({}, { expose_mwait: true }, { accel: 'kvm' }));
    expect(c.exitControl).toEqual({ mode: 'shim', mask: 0 });
    expect(c.env.KVMLAB_DISABLE_EXITS).toBe('0x0');
    const k = Knobs.parse({ disable_exits: ['mwait'], expose_mwait: false });
    expect(planVm(Guest.parse({ arch: 'x86_64', cpus: 1 }), k, 'kvm', HOST).cpu).toBe('host,-monitor');
  });

  it('halt_poll_ns goes to the shim; guest_haltpoll adds kvm-hint-dedicated under KVM only', () => {
    const c = buildQemuCommand(input({}, { halt_poll_ns: 50000, guest_haltpoll: true }, { accel: 'kvm' }));
    expect(c.env).toMatchObject({ LD_PRELOAD: '/hs/libkvmlab-exits.so', KVMLAB_HALT_POLL_NS: '50000' });
    expect(c.args).not.toContain('-overcommit');
    expect(c.haltPollNs).toBe(50000);
    expect(after(c.args, '-cpu')).toBe('host,kvm-hint-dedicated=on');
    expect(after(buildQemuCommand(input({}, { guest_haltpoll: true })).args, '-cpu')).toBe('qemu64');
  });

  it('exit control under TCG or on ppc64 is refused', () => {
    expect(() => buildQemuCommand(input({}, { disable_exits: ['hlt'] }))).toThrow(/under KVM/);
    expect(() => buildQemuCommand(input({}, { halt_poll_ns: 1 }))).toThrow(/under KVM/);
    expect(() => planVm(Guest.parse({ arch: 'ppc64', cpus: 1 }), Knobs.parse({ disable_exits: 'cpu-pm' }), 'kvm', HOST)).toThrow(/x86_64/);
  });

  it('shellLine quotes what a shell would split', () => {
    expect(shellLine('qemu', ['-append', 'console=ttyS0 panic=-1', "it's"], { A: 'b c' })).toBe(`A='b c' qemu -append 'console=ttyS0 panic=-1' 'it'\\''s'`);
  });
});

describe('QemuBackend.command: what launch runs, and what a plan shows', () => {
  const image: GuestImage = { source: 'kvmlab', dir: '/img', boot: { kernel: '/img/kernel', initrd: '/img/initrd.img' }, ssh: { user: 'root', port: 22, hostKey: 'ssh-ed25519 AAAA' } };
  const g = Guest.parse({ arch: 'x86_64', cpus: 2 });
  const plan = planVm(g, Knobs.parse({ disable_exits: ['hlt'] }), 'kvm', HOST);
  const backend = new QemuBackend({ shimPath: '/hs/libkvmlab-exits.so' });
  const req = { name: 'kvmlab-t-1', guest: g, plan, runDir: '/tmp/kvmlab-run', logDir: '/res/v/rep-1' };

  it('boots the image with the run\'s key in -append and the shim for the plan\'s mask', () => {
    const c = backend.command({ ...req, clientPublicKey: 'ssh-ed25519 AAAAkey', sshPort: 40022 }, image);
    expect(after(c.args, '-append')).toBe(`console=ttyS0 panic=-1 quiet kvmlab.authkey=${Buffer.from('ssh-ed25519 AAAAkey').toString('base64')}`);
    expect(after(c.args, '-netdev')).toMatch(/hostfwd=tcp:127\.0\.0\.1:40022-:22$/);
    expect(c.env).toEqual({ LD_PRELOAD: '/hs/libkvmlab-exits.so', KVMLAB_EXITS_RECORD: '/tmp/kvmlab-run/exits.jsonl', KVMLAB_DISABLE_EXITS: '0x2' });
  });

  it('takes placeholders for the port and the key, and writes them as they are', () => {
    const c = backend.command({ ...req, clientPublicKey: new Placeholder('authkey'), sshPort: new Placeholder('port') }, image);
    expect(after(c.args, '-append')).toBe('console=ttyS0 panic=-1 quiet kvmlab.authkey=<authkey>');
    expect(after(c.args, '-netdev')).toBe('user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:<port>-:22');
    expect(String(c.sshPort)).toBe('<port>');
  });
});

describe('checkExitRecord', () => {
  const rec = (over: Partial<{ requested: number; applied: number; ret: number; errno: number }>): ShimRecord => ({ event: 'disable_exits', pid: 10, vm_fd: 11, requested: 0xe, applied: 0x2, ret: 0, errno: 0, ...over });

  it('accepts the mask the variant asked for', () => {
    expect(checkExitRecord({ mode: 'shim', mask: 0x2 }, undefined, [rec({})])).toEqual({ disableExitsMask: 0x2, problems: [] });
  });

  it('fails on a different applied mask, a KVM error, or no record', () => {
    expect(checkExitRecord({ mode: 'shim', mask: 0x6 }, undefined, [rec({})]).problems.join()).toMatch(/asked for disabled exits 0x6/);
    const refused = checkExitRecord({ mode: 'shim', mask: 0x2 }, undefined, [rec({ ret: -1, errno: 22 })]);
    expect(refused.disableExitsMask).toBe(0);
    expect(refused.problems.join()).toMatch(/errno 22/);
    expect(checkExitRecord({ mode: 'shim', mask: 0x2 }, undefined, []).problems.join()).toMatch(/no record/);
    expect(checkExitRecord({ mode: 'shim', mask: 0x2 }, undefined, [{ event: 'disable_exits_not_requested', pid: 1, vm_fd: 3, wanted: 2 }]).problems.join()).toMatch(/never asked/);
  });

  it('cpu-pm mode records what QEMU asked for; halt poll is checked', () => {
    expect(checkExitRecord({ mode: 'cpu-pm' }, undefined, [rec({ applied: 0xe })])).toEqual({ disableExitsMask: 0xe, problems: [] });
    const hp: ShimRecord = { event: 'halt_poll', pid: 1, vm_fd: 3, ns: 500, ret: 0, errno: 0 };
    expect(checkExitRecord({ mode: 'none' }, 500, [hp])).toEqual({ haltPollNs: 500, problems: [] });
    expect(checkExitRecord({ mode: 'none' }, 400, [hp]).problems.join()).toMatch(/halt_poll_ns 400/);
    expect(checkExitRecord({ mode: 'none' }, undefined, [{ event: 'config_error', pid: 1, variable: 'KVMLAB_DISABLE_EXITS', reason: 'bad' }]).problems).toHaveLength(1);
  });
});

describe('host probe parsers', () => {
  it('reads vendor, model and flags from x86 and pseries /proc/cpuinfo', () => {
    expect(parseCpuInfo('processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu vme svm\n')).toEqual({ vendor: 'AuthenticAMD', model: 'AMD EPYC', flags: ['fpu', 'vme', 'svm'] });
    expect(parseCpuInfo('processor\t: 0\ncpu\t\t: POWER9 (architected), altivec supported\n')).toMatchObject({ vendor: 'IBM', model: 'POWER9 (architected), altivec supported', flags: [] });
  });

  it('kernel command line facts stop at "--"', () => {
    const f = cmdlineFacts('quiet nohz_full=2-3 isolcpus=2,3 idle=poll rcutree.use_softirq=0 -- isolcpus=9');
    expect(f).toMatchObject({ nohz_full: '2-3', isolcpus: '2,3', idle: 'poll', 'rcutree.use_softirq': '0', rcu_nocbs: null });
  });

  it('a nested page-table KVM or a CPU without vmx/svm cannot boot guests', () => {
    expect(whyCannotBootGuest(['kvm', 'kvm_pvm'], ['svm'], 'x86_64')).toMatch(/kvm_pvm/);
    expect(whyCannotBootGuest(['kvm'], ['fpu'], 'x86_64')).toMatch(/vmx\/svm/);
    expect(whyCannotBootGuest(['kvm', 'kvm_intel'], ['vmx'], 'x86_64')).toBeUndefined();
  });

  it('disk format from the file name', () => {
    expect(diskFormat('/a/b.qcow2')).toBe('qcow2');
    expect(diskFormat('/a/b.img')).toBe('raw');
  });
});
