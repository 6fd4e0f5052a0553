// The CLI end to end on the mock backend: what a person types, what they get back.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;
const cli = join(root, 'dist/cli.js');
const tmp = mkdtempSync(join(tmpdir(), 'kvmlab-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const kvmlab = (...args: string[]) => execa('node', [cli, ...args], { reject: false, cwd: root, stdin: 'ignore' });
function file(name: string, content: string | Buffer): string {
  const p = join(tmp, name);
  writeFileSync(p, content);
  return p;
}
const noStack = (s: string) => expect(s).not.toMatch(/^\s+at .*\(.*:\d+:\d+\)$/m);

describe('kvmlab image list and prune', () => {
  it('lists each image with its kernel and size; prune removes what a run rebuilds (own kernels) and broken ones, --all every one', async () => {
    const cache = join(tmp, 'image-cache');
    const image = (name: string, kernel: string) => {
      const d = join(cache, 'images', name);
      mkdirSync(d, { recursive: true });
      for (const f of ['kernel', 'initrd.img']) writeFileSync(join(d, f), Buffer.alloc(1024 * 1024));
      writeFileSync(join(d, 'ssh_host_ed25519_key.pub'), 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2e3S8JkS2fOg0hOqj7Pj+6ElpPzBSAxEOGxoVd6L0n root@kvmlab\n');
      writeFileSync(join(d, 'manifest.json'), JSON.stringify({ arch: 'x86_64', kernelVersion: kernel }));
    };
    image('nested-host', '6.1.0-57-amd64');
    image('nested-host-custom-0123456789ab', '6.13.0-mine');
    mkdirSync(join(cache, 'images', 'x86_64'), { recursive: true }); // an interrupted build: no files
    const env = { ...process.env, KVMLAB_CACHE: cache };
    const run = (...args: string[]) => execa('node', [cli, 'image', ...args], { reject: false, cwd: root, stdin: 'ignore', env });
    const list = await run('list');
    expect(list.exitCode, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^nested-host-custom-0123456789ab\s+x86_64\s+6\.13\.0-mine\s+-\s+2\.0 MiB /m);
    const prune = await run('prune');
    expect(prune.exitCode, prune.stderr).toBe(0);
    expect(prune.stdout).toMatch(/^removed nested-host-custom-0123456789ab \(kernel 6\.13\.0-mine, 2\.0 MiB\)$/m);
    expect(prune.stdout).toMatch(/^removed x86_64 \(not a whole image, 0\.0 MiB\)$/m);
    expect(prune.stdout).toMatch(/freed 2\.0 MiB; 1 image kept \(--all removes them too\)/);
    expect(existsSync(join(cache, 'images', 'nested-host', 'kernel'))).toBe(true);
    expect((await run('prune', '--all')).stdout).toMatch(/^removed nested-host \(kernel 6\.1\.0-57-amd64, 2\.0 MiB\)$/m);
    expect((await run('list')).stdout).toMatch(/^no guest images in /);
  });
});

describe('kvmlab run on the mock backend', () => {
  // These need nothing from one another and run at once; the three after them share one smoke run's
  // results, in order.
  it.concurrent('run --json prints summary.json alone on stdout, the verdict on stderr', async () => {
    const out = join(tmp, 'json');
    const r = await kvmlab('run', 'experiments/smoke-cpu-hotplug.yaml', '--backend', 'mock', '--out', out, '--json');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe(readFileSync(join(out, 'summary.json'), 'utf8').trimEnd()); // execa drops the last newline
    expect(JSON.parse(r.stdout)).toMatchObject({ experiment: 'smoke-cpu-hotplug', exitCode: 0 });
    expect(r.stderr).toMatch(/SIMULATED[\s\S]*key metrics[\s\S]*plots and tables: /);
    const refused = await kvmlab('run', 'experiments/smoke-cpu-hotplug.yaml', '--backend', 'mock', '--out', out, '--json');
    expect(refused.exitCode).toBe(2);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/already holds/);
  });

  it.concurrent('a host: step under the mock runs on the simulated host, never on this machine', async () => {
    const marker = join(tmp, 'host-step-ran');
    const exp = file('host-step.yaml', `name: host-step\ndescription: a host command\nguest: { arch: x86_64, cpus: 1 }\nsteps:\n  - { name: touch, host: [touch, ${JSON.stringify(marker)}] }\n`);
    const r = await kvmlab('run', exp, '--backend', 'mock', '--allow-host-commands', '--out', join(tmp, 'host-step'));
    expect(r.exitCode, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/host command touch .* failed: exit -1: touch: not found on the simulated host/);
    expect(existsSync(marker)).toBe(false);
  });

  it.concurrent('refuses an --on that is no place, and a lab box address it cannot read, with exit 2', async () => {
    for (const on of ['ssh://root@lab box', 'ssh://lab1:99999', 'moon']) {
      const r = await kvmlab('run', 'experiments/smoke-cpu-hotplug.yaml', '--on', on);
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/--on /);
    }
  });

  it.concurrent('exits 1 when an expectation fails, and says which with the observed value', async () => {
    const exp = readFileSync(join(root, 'experiments/smoke-cpu-hotplug.yaml'), 'utf8').replace('eq: 3\n  - description: its thread', 'eq: 4\n  - description: its thread');
    const r = await kvmlab('run', file('failing.yaml', exp), '--backend', 'mock', '--out', join(tmp, 'failing'), '-q');
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/FAIL\s+median guest\.online_cpus @ online == 4/);
    expect(r.stdout).toMatch(/the hot-plugged vCPU comes online in the guest\s+3/);
  });

  it.concurrent('a variant no claim applies to is unchecked, never passed; --strict exits 1 on it', async () => {
    const exp = `name: unchecked
description: one variant claimed, one not
guest: { arch: x86_64, cpus: 1 }
matrix: { halt_poll_ns: [0, 200000] }
collect: { vcpu-cpu: { interval: 100ms } }
steps:
  - { name: idle, sample: 1s }
expect:
  - { description: the guest ran, when: { halt_poll_ns: [0] }, metric: step.duration_s, step: idle, ge: 1 }
`;
    const f = file('unchecked.yaml', exp);
    const lax = await kvmlab('run', f, '--backend', 'mock', '--out', join(tmp, 'unchecked'), '-q');
    expect(lax.exitCode, lax.stderr).toBe(0);
    expect(lax.stdout).toMatch(/1 passed, 0 failed, 0 error, 0 skipped, 1 unchecked/);
    expect(lax.stdout).toMatch(/^1 of 1 claims checked; 1 variant ran with no claim to check \(halt_poll_ns=200000\)$/m);
    expect(lax.stdout).toMatch(/halt_poll_ns=200000\s+UNCHECKED\s+no claim of the file applies to this variant/);
    const strict = await kvmlab('run', f, '--backend', 'mock', '--out', join(tmp, 'unchecked-strict'), '-q', '--strict');
    expect(strict.exitCode, strict.stderr).toBe(1);
    expect(strict.stdout).toMatch(/\(--strict: the run fails on it\)/);
    expect(JSON.parse(readFileSync(join(tmp, 'unchecked-strict', 'summary.json'), 'utf8'))).toMatchObject({ strict: true, exitCode: 1 });
  });

  it.concurrent('refuses, before anything starts, a pinning to a host CPU that does not exist (exit 3)', async () => {
    const exp = `${readFileSync(join(root, 'experiments/smoke-cpu-hotplug.yaml'), 'utf8')}pinning:\n  vcpupin: { "1": "64" }\n`;
    const out = join(tmp, 'pin');
    const r = await kvmlab('run', file('pin.yaml', exp), '--backend', 'mock', '--out', out);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/pinning\.vcpupin\.1 pins vCPU 1 to host CPU 64, but this simulated host has CPUs 0-7/);
    expect(existsSync(join(out, 'variants'))).toBe(false);
    noStack(r.stderr);
  });

  it.concurrent('pins vCPU threads and records what was pinned where', async () => {
    const exp = `${readFileSync(join(root, 'experiments/smoke-cpu-hotplug.yaml'), 'utf8')}pinning:\n  vcpupin: { "0": "2", "1": "3", "2": "4-5" }\n  emulatorpin: "0-1"\n`;
    const out = join(tmp, 'pinned');
    const r = await kvmlab('run', file('pinned.yaml', exp), '--backend', 'mock', '--out', out, '-q');
    expect(r.exitCode, r.stderr).toBe(0);
    const pinned = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')).variants[0].repetitions[0].pinned;
    expect(pinned).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ thread: 'vcpu0', requested: '2', actual: '2' }),
        expect.objectContaining({ thread: 'vcpu2', requested: '4-5', actual: '4-5' }),
        expect.objectContaining({ thread: 'emulator', actual: '0-1' }),
      ]),
    );
  });

  it('runs the smoke experiment end to end and writes the results', async () => {
    const out = join(tmp, 'smoke');
    const r = await kvmlab('run', 'experiments/smoke-cpu-hotplug.yaml', '--backend', 'mock', '--out', out);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SIMULATED/);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ experiment: 'smoke-cpu-hotplug', backend: 'mock', simulated: true, exitCode: 0 });
    expect(summary.variants).toHaveLength(1);
    expect(summary.variants[0].status).toBe('passed');
    expect(summary.variants[0].expectations.length).toBeGreaterThanOrEqual(4);
    for (const e of summary.variants[0].expectations) expect(e, e.description).toMatchObject({ passed: true });
    for (const f of ['summary.md', 'metrics.csv', 'experiment.yaml', 'experiment.expanded.json']) expect(existsSync(join(out, f)), f).toBe(true);
    const rep = join(out, 'variants/default/rep-1');
    for (const f of ['launch.json', 'qmp.jsonl', 'guest.jsonl', 'steps.jsonl', 'console.log', 'vcpu-cpu/vcpu-cpu.csv']) expect(existsSync(join(rep, f)), f).toBe(true);
    expect(readFileSync(join(out, 'metrics.csv'), 'utf8').split('\n')[0]).toBe('variant,repetition,step,entity,metric,value,unit');
    expect(readFileSync(join(out, 'summary.md'), 'utf8')).toMatch(/Simulated/);
    const steps = readFileSync(join(rep, 'steps.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(steps.map((s) => s.step)).toEqual(['kernel', 'plug', 'online', 'settle', 'offline', 'unplug', 'teardown']);
    for (const s of steps.slice(0, -1)) expect(s.end).toBeGreaterThanOrEqual(s.start);
  });

  it('never overwrites results: a non-empty --out is refused (exit 2) unless --force', async () => {
    const out = join(tmp, 'smoke');
    const before = readFileSync(join(out, 'summary.json'), 'utf8');
    const r = await kvmlab('run', 'experiments/smoke-cpu-hotplug.yaml', '--backend', 'mock', '--out', out, '-q');
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--out .*smoke already holds \d+ files .*add --force/);
    noStack(r.stderr);
    expect(readFileSync(join(out, 'summary.json'), 'utf8')).toBe(before);
    const forced = await kvmlab('run', 'experiments/smoke-cpu-hotplug.yaml', '--backend', 'mock', '--out', out, '-q', '--force');
    expect(forced.exitCode, forced.stderr).toBe(0);
  });

  it('says where every figure was measured', async () => {
    const r = await kvmlab('report', join(tmp, 'smoke'));
    expect(r.stdout + readFileSync(join(tmp, 'smoke', 'summary.md'), 'utf8') + readFileSync(join(tmp, 'smoke', 'index.html'), 'utf8')).not.toMatch(/measured on: (lab KVM|nested KVM|TCG)/);
    expect(readFileSync(join(tmp, 'smoke', 'summary.md'), 'utf8')).toMatch(/measured on: simulated/);
    expect(readFileSync(join(tmp, 'smoke', 'index.html'), 'utf8')).toMatch(/measured on: simulated/);
  });

});

// Each test reads only what it writes itself: they run at once.
describe.concurrent('kvmlab validate', () => {
  const cases: [string, string | Buffer, RegExp][] = [
    ['empty.yaml', '', /empty\.yaml: the file is empty/],
    ['notyaml.yaml', 'name: [oops\n  - : :\n', /notyaml\.yaml:\d+:\d+: not valid YAML/],
    ['binary.yaml', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]), /binary\.yaml: not a text file/],
    ['unknown.yaml', 'name: u\ndescription: d\nguest: { arch: x86_64, cpus: 1 }\nsteps: [{ wait: 1 }]\ncolour: blue\n', /unknown\.yaml:5:1: unknown field "colour"; allowed here: name, description/],
    ['negative.yaml', 'name: n\ndescription: d\nguest:\n  arch: x86_64\n  cpus: -1\nsteps: [{ wait: 1 }]\n', /negative\.yaml:5:9: guest\.cpus: Too small: expected number to be >=1/],
  ];
  for (const [name, content, message] of cases) {
    it(`refuses ${name} with exit 2 and one clear message`, async () => {
      const r = await kvmlab('validate', file(name, content));
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      noStack(r.stderr);
    });
  }

  it('accepts every shipped experiment', async () => {
    const r = await kvmlab('validate', 'experiments/smoke-cpu-hotplug.yaml');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ok \(smoke-cpu-hotplug: 1 variant/);
  });

  it('validate --json prints one document for every file; problems stay on stderr with exit 2', async () => {
    const ok = await kvmlab('validate', '--json', 'experiments/smoke-cpu-hotplug.yaml');
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stderr).toBe('');
    expect(JSON.parse(ok.stdout)).toEqual({ files: [{ file: 'experiments/smoke-cpu-hotplug.yaml', ok: true, experiment: 'smoke-cpu-hotplug', variants: 1, repetitions: 1, steps: 6 }] });
    const bad = file('json-bad.yaml', 'name: b\ndescription: d\nguest: { arch: x86_64, cpus: 1 }\nsteps: [{ wait: 1 }]\ncolour: blue\n');
    const r = await kvmlab('validate', '--json', bad, join(tmp, 'nope.yaml'));
    expect(r.exitCode).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({
      files: [
        { file: bad, ok: false, problems: [{ file: bad, line: 5, col: 1, path: '', message: expect.stringMatching(/^unknown field "colour"/) }] },
        { file: join(tmp, 'nope.yaml'), ok: false, problems: [{ file: join(tmp, 'nope.yaml'), path: '', message: expect.stringMatching(/cannot read it \(ENOENT\)/) }] },
      ],
    });
    expect(r.stderr).toMatch(/json-bad\.yaml:5:1: unknown field "colour"[\s\S]*nope\.yaml: cannot read it/);
  });

  it('reports a missing file as bad input', async () => {
    const r = await kvmlab('validate', join(tmp, 'nope.yaml'));
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/nope\.yaml: cannot read it \(ENOENT\)/);
  });
});

// Each test reads only what it writes itself: they run at once.
describe.concurrent('start-up', () => {
  // Every module node resolves, printed by a resolve hook: what a command loads before it does anything.
  // A chunk of the bundled CLI stands for the sources esbuild put in it (dist/bundle.json, its metafile).
  const hook = `export async function resolve(s, c, next) { const r = await next(s, c); process.stderr.write('loaded ' + r.url + '\\n'); return r; }`;
  const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
  const bundle = JSON.parse(readFileSync(join(root, 'dist/bundle.json'), 'utf8')) as { outputs: Record<string, { inputs: Record<string, unknown> }> };
  const loaded = async (...args: string[]) => {
    const r = await execa('node', ['--import', `data:text/javascript,${encodeURIComponent(register)}`, cli, ...args], { reject: false, cwd: root, stdin: 'ignore' });
    expect(r.exitCode, r.stderr).toBe(0);
    const urls = [...r.stderr.matchAll(/^loaded (.*)$/gm)].map((m) => m[1]!);
    expect(urls).toContain(`file://${cli}`);
    return urls.flatMap((url) => {
      const chunk = bundle.outputs[url.replace(`file://${root}`, '')];
      return chunk ? Object.keys(chunk.inputs) : [url];
    });
  };
  const heavy = /node_modules\/(vega|vega-lite|ssh2|execa|pidusage)\/|^src\/(backend|collect\/(?!metrics\.ts)|report\/(plots|report)|run\/runner)\b/;

  for (const args of [['--help'], ['--version'], ['validate', 'experiments/smoke-cpu-hotplug.yaml'], ['list'], ['schema'], ['run', '--help'], ['plan', '--help']]) {
    it(`kvmlab ${args.join(' ')} loads no plotting, SSH, process, collector or backend code`, async () => {
      expect((await loaded(...args)).filter((url) => heavy.test(url))).toEqual([]);
    });
  }

  it('shows every command\'s whole help without loading what the command does', async () => {
    for (const args of [['--help'], ['report', '--help'], ['help', 'compare'], ['plan', '--help']]) expect((await loaded(...args)).filter((url) => /^src\/(report|commands\/actions)\//.test(url)), args.join(' ')).toEqual([]);
    const r = await kvmlab('report', '--help');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/Usage: kvmlab report \[options\] <dir>[\s\S]*--no-write/);
    expect((await kvmlab('help', 'compare')).stdout).toMatch(/--metric <metric>/);
  });
});

// Each test reads only what it writes itself: they run at once.
describe.concurrent('the rest of the CLI', () => {
  it('lists experiments with descriptions and requirements', async () => {
    const r = await kvmlab('list', 'experiments');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^experiments\/smoke-cpu-hotplug\.yaml\s+Boot a 2-vCPU x86_64 guest/m);
  });

  it('list --json prints one document: each experiment with its requirements, or its problems', async () => {
    const r = await kvmlab('list', '--json');
    expect(r.exitCode, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.dir).toBe(join(root, 'experiments'));
    expect(doc.experiments).toContainEqual({ file: 'experiments/smoke-cpu-hotplug.yaml', name: 'smoke-cpu-hotplug', description: expect.stringMatching(/^Boot a 2-vCPU/), requires: expect.objectContaining({ accel: 'any', root: false }) });
  });

  it('lists the shipped experiments from any directory, each as a path run takes', async () => {
    const r = await execa('node', [cli, 'list'], { reject: false, cwd: tmp, stdin: 'ignore' });
    expect(r.exitCode, r.stderr).toBe(0);
    const smoke = join(root, 'experiments', 'smoke-cpu-hotplug.yaml');
    expect(r.stdout.split('\n').some((line) => line.startsWith(`${smoke} `) && line.includes('Boot a 2-vCPU x86_64 guest'))).toBe(true);
    const given = await execa('node', [cli, 'list', join(root, 'test/tcg')], { reject: false, cwd: tmp, stdin: 'ignore' });
    expect(given.stdout).toMatch(/ppc64-uname\.yaml\s+/);
    expect((await kvmlab('list', join(tmp, 'no-such-dir'))).exitCode).toBe(2);
  });

  it('has --help on every command and exit 2 on usage errors', async () => {
    const top = await kvmlab('--help');
    expect(top.exitCode).toBe(0);
    const names = [...top.stdout.matchAll(/^ {2}([a-z-]+)\b/gm)].map((m) => m[1]!).filter((n) => n !== 'help');
    expect(names).toEqual(expect.arrayContaining(['run', 'validate', 'list', 'schema']));
    const helps = await Promise.all(names.map((n) => kvmlab(n, '--help')));
    for (const [i, n] of names.entries()) expect(helps[i]!.exitCode, n).toBe(0);
    const bad = await kvmlab('run', 'experiments/smoke-cpu-hotplug.yaml', '--backend', 'vmware');
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/Allowed choices are auto, qemu, mock/);
    expect((await kvmlab('frobnicate')).exitCode).toBe(2);
  });

  it('follows the exit table: a missing command is usage (2), help and the version asked for are 0', async () => {
    const usage = [[], ['image']];
    const asked = [['help'], ['help', 'image'], ['--version'], ['image', '--help']];
    const results = await Promise.all([...usage, ...asked].map((args) => kvmlab(...args)));
    for (const [i, args] of usage.entries()) {
      expect(results[i]!.exitCode, args.join(' ')).toBe(2);
      expect(results[i]!.stderr).toMatch(/^Usage: kvmlab/);
    }
    for (const [i, args] of asked.entries()) expect(results[usage.length + i]!.exitCode, args.join(' ')).toBe(0);
  });

  it('list exits 2 when a file in the directory is invalid, after listing every file', async () => {
    const dir = join(tmp, 'mixed');
    mkdirSync(dir);
    writeFileSync(join(dir, 'good.yaml'), readFileSync(join(root, 'experiments/smoke-cpu-hotplug.yaml')));
    writeFileSync(join(dir, 'broken.yaml'), 'name: b\ndescription: d\nguest: { arch: x86_64, cpus: 1 }\nsteps: [{ wait: 1 }]\ncolour: blue\n');
    const r = await kvmlab('list', dir);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toMatch(/broken\.yaml\s+INVALID: unknown field "colour"/);
    expect(r.stdout).toMatch(/good\.yaml\s+Boot a 2-vCPU/);
    expect(r.stderr).toMatch(/broken\.yaml:5:1: unknown field "colour"/);
  });

  it('cleanup exits 3 when a change could not be undone, 0 when nothing is left', async () => {
    const state = join(tmp, 'state');
    mkdirSync(state);
    const gone = join(tmp, 'no-such-dir', 'halt_poll_ns');
    writeFileSync(join(state, 'journal.jsonl'), `${JSON.stringify({ id: 1, entry: { kind: 'file', path: gone, old: '200000\n' } })}\n`);
    const r = await kvmlab('cleanup', '--state-dir', state);
    expect(r.exitCode).toBe(3);
    expect(r.stdout).toMatch(/cleanup: could not undo .*halt_poll_ns.*ENOENT/);
    expect(r.stderr).toMatch(/1 of 1 host changes could not be undone \(why is above\); undo it by hand/);
    noStack(r.stderr);
    const again = await kvmlab('cleanup', '--state-dir', state);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toBe('cleanup: nothing to undo');
  });

  it('chooses a host kernel only for the host it boots, by Debian series', async () => {
    const local = await kvmlab('run', 'experiments/smoke-cpu-hotplug.yaml', '--backend', 'mock', '--host-kernel', 'debian:6.12');
    expect(local.exitCode).toBe(2);
    expect(local.stderr).toMatch(/--host-kernel debian:6\.12: kvmlab chooses the host's kernel only for the host it boots; add --on nested/);
    const bad = await kvmlab('plan', 'experiments/offline-vcpu-idle.yaml', '--on', 'nested', '--host-kernel', '6.12');
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/give a Debian kernel series such as debian:6\.12/);
    const missing = await kvmlab('plan', 'experiments/offline-vcpu-idle.yaml', '--on', 'nested', '--host-kernel', join(tmp, 'no-such-bzImage'));
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/no such file; give a Debian kernel series such as debian:6\.12, or the path of a bzImage/);
    const kernel = file('bzImage', 'not really a kernel');
    const noModules = await kvmlab('plan', 'experiments/offline-vcpu-idle.yaml', '--on', 'nested', '--host-kernel', kernel);
    expect(noModules.exitCode).toBe(2);
    expect(noModules.stderr).toMatch(/add --host-modules DIR, the kernel's lib\/modules\/RELEASE directory/);
    const stray = await kvmlab('plan', 'experiments/offline-vcpu-idle.yaml', '--on', 'nested', '--host-modules', tmp);
    expect(stray.exitCode).toBe(2);
    expect(stray.stderr).toMatch(/--host-modules .*: goes with --host-kernel PATH/);
    const image = await kvmlab('image', 'build', '--arch', 'x86_64', '--kernel', 'debian:6.12');
    expect(image.exitCode).toBe(2);
    expect(image.stderr).toMatch(/the kernel of the nested host only; add --arch nested-host/);
  });

  it('ships a JSON Schema that matches the zod schemas', async () => {
    const r = await kvmlab('schema');
    expect(JSON.parse(r.stdout)).toEqual(JSON.parse(readFileSync(join(root, 'experiments/experiment.schema.json'), 'utf8')));
  });
});
