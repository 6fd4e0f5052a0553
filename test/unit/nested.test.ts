// The pure parts of `--on nested`: L1's command line and shares, its size from the experiment, and
// which host paths must be shown again over L1's own tmpfs.
import { describe, expect, it } from 'vitest';
import { parseExperiment } from '../../src/experiment/load.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootOut, bootWhere, tracepointsToPin, l1Argv, nestedBoots, nestedShape, pathsToKeep } from '../../src/targets/nested-host.js';
import { checkTarget, targetOfThisRun } from '../../src/targets/on.js';
import { expandMatrix, selectVariants, variantQemu } from '../../src/experiment/matrix.js';

const exp = (extra: string) => parseExperiment(`name: t\ndescription: d\nguest: { arch: x86_64, cpus: 2, memory: 1G }\nsteps:\n  - wait: 1s\n${extra}`, 't.yaml');

describe('the nested KVM host', () => {
  it('is big enough for every pinning, or what the experiment says', () => {
    expect(nestedShape(exp(''))).toEqual({ cpus: 3, memoryMiB: 2560, cmdline: '' });
    expect(nestedShape(exp('pinning: { vcpupin: { "0": "2", "1": "3" }, emulatorpin: "0-1" }\n'))).toEqual({ cpus: 4, memoryMiB: 2560, cmdline: '' });
    expect(nestedShape(exp('nested: { cpus: 6, memory: 3G, cmdline: "nohz_full=2-3 rcutree.use_softirq=0" }\n'))).toEqual({ cpus: 6, memoryMiB: 3072, cmdline: 'nohz_full=2-3 rcutree.use_softirq=0' });
  });

  it('boots under TCG with SVM, the host root read-only and the results and control shares writable', () => {
    const argv = l1Argv({ kernel: '/k', initrd: '/i' }, { cpus: 4, memoryMiB: 2560, cmdline: 'nohz_full=2-3' }, '/r/out', '/tmp/ctl', '/tmp/mon,1/qmp.sock');
    const j = argv.join(' ');
    expect(j).toContain('-accel tcg,thread=multi');
    expect(j).toContain('-cpu max');
    expect(j).toContain('-smp 4 -m 2560M');
    expect(argv[argv.indexOf('-append') + 1]).toBe('console=ttyS0 panic=-1 quiet softlockup_all_cpu_backtrace=1 nokaslr maxcpus=1 kvmlab.out=/r/out nohz_full=2-3');
    expect(j).toContain('local,id=root,path=/,security_model=none,readonly=on,multidevs=remap');
    expect(j).toContain('local,id=out,path=/r/out,security_model=none -device virtio-9p-pci,fsdev=out,mount_tag=kvmlab-out');
    expect(j).toContain('mount_tag=kvmlab-ctl');
    expect(j).toContain('-nic none');
    // L1's monitor, for L0 to read L1's CPUs should it wedge: a socket only L0 sees, commas doubled
    expect(j).toContain('-qmp unix:/tmp/mon,,1/qmp.sock,server=on,wait=off');
  });

  it('boots one L1 per kernel and command line a host axis names; labels differing only in QEMU share one', () => {
    const e = exp('nested: { cmdline: "nohz_full=1" }\nmatrix:\n  host:\n    a: { kernel: "debian:6.12" }\n    b: { kernel: "debian:6.12", qemu: ../q/build/qemu-system-x86_64 }\n    c: { cmdline: "x=1" }\n    d: { kernel: { path: k/bzImage, modules: k/mods } }\n  halt_poll_ns: [0, 1000]\n');
    const boots = nestedBoots(e, '/exp/dir/t.yaml', expandMatrix(e));
    expect(boots.map((b) => [b.hosts, b.shape.kernel, b.shape.modules, b.shape.cmdline, b.variants.length])).toEqual([
      [['a', 'b'], 'debian:6.12', undefined, 'nohz_full=1', 4],
      [['c'], undefined, undefined, 'nohz_full=1 x=1', 2],
      [['d'], 'path:/exp/dir/k/bzImage', '/exp/dir/k/mods', 'nohz_full=1', 2],
    ]);
    expect(bootOut('/out', boots[0]!)).toBe('/out/hosts/a+b');
    expect(bootWhere('halt_poll_ns=0', boots[0]!)).toBe('halt_poll_ns=0,host=a,host=b');
    expect(selectVariants(e, undefined, 'host=a,host=b,halt_poll_ns=0').map((v) => v.id)).toEqual(['host=a,halt_poll_ns=0', 'host=b,halt_poll_ns=0']);
    expect(variantQemu(expandMatrix(e)[2]!, '/exp/dir/t.yaml')).toBe('/exp/q/build/qemu-system-x86_64');
    // without a host axis: one boot, results where they always were
    const one = nestedBoots(exp(''), 't.yaml', expandMatrix(exp('')));
    expect([one.length, one[0]!.hosts, bootOut('/out', one[0]!), bootWhere(undefined, one[0]!)]).toEqual([1, [], '/out', undefined]);
  });

  it('holds registered, for L1\'s life, the tracepoints the collectors and host: steps will register and unregister', () => {
    expect(tracepointsToPin(exp(''))).toEqual([]);
    const e = exp('collect:\n  tracefs: { events: ["sched:sched_switch", "kvm:*"] }\n  kvm-exits: {}\n  perf: { events: [kvm:kvm_exit, cycles] }\n');
    expect(tracepointsToPin(e)).toEqual(['sched:sched_switch', 'kvm:*', 'kvm:kvm_exit']);
    expect(tracepointsToPin(exp('nested: { tracepoints: [kvm:kvm_entry, "sched:sched_switch"] }\ncollect:\n  tracefs: { events: [sched:sched_switch] }\n'))).toEqual(['sched:sched_switch', 'kvm:kvm_entry']);
  });

  it('shows again the host paths under L1\'s tmpfs, outermost only', () => {
    expect(pathsToKeep(['/tmp/ci/clone', '/usr/bin', '/tmp/ci/clone/experiments', '/var/cache/kvmlab', '/run/x/', '/tmp'])).toEqual(['/run/x', '/tmp/ci/clone']);
  });
});

describe('where a run says it happened', () => {
  const target = { kind: 'nested', l0: 'QEMU 7.2.22 TCG', l1: { kernel: '6.1.0-57-amd64', cpus: 3, memoryMiB: 2048, cmdline: '', image: '/i' } };

  it('is this host unless the file the nested host wrote says otherwise, schema-checked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmlab-target-'));
    try {
      expect(await targetOfThisRun({})).toEqual({ kind: 'local' });
      const good = join(dir, 'target.json');
      writeFileSync(good, JSON.stringify(target));
      expect(await targetOfThisRun({ KVMLAB_TARGET_FILE: good })).toEqual(target);
      const bad = join(dir, 'bad.json');
      writeFileSync(bad, JSON.stringify({ kind: 'nested', l0: 'x' }));
      await expect(targetOfThisRun({ KVMLAB_TARGET_FILE: bad })).rejects.toThrow(/bad\.json \(\$KVMLAB_TARGET_FILE\) does not describe where a run happens: l1: /);
      await expect(targetOfThisRun({ KVMLAB_TARGET_FILE: join(dir, 'none.json') })).rejects.toThrow(/cannot be read .* unset it/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is held to the host the run finds: a local run cannot be labelled nested', () => {
    expect(checkTarget(target as never, { kernelRelease: '6.1.0-57-amd64', cpus: [0, 1, 2] })).toBeUndefined();
    expect(checkTarget(target as never, { kernelRelease: '6.18.44-fc', cpus: [0, 1] })).toMatch(/labelled as running in a nested KVM host \(kernel 6\.1\.0-57-amd64, 3 CPUs\), but this host runs kernel 6\.18\.44-fc with 2 CPUs/);
    expect(checkTarget({ kind: 'local' }, { kernelRelease: 'x', cpus: [0] })).toBeUndefined();
  });
});
