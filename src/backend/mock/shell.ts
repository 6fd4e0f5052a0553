// The simulated guest's shell: enough of busybox sh to run the commands kvmlab and its experiments
// send — lists with ; && || &, pipes, > redirects, quoting — over the simulated guest's sysfs, procfs
// and log. Anything else answers like busybox does: "sh: X: not found", status 127.
import { formatCpuList } from '../../model/cpulist.js';
import type { MockMachine } from './machine.js';
import { MOCK_HOST } from './profile.js';

export interface ShellResult {
  status: number;
  stdout: string;
  stderr: string;
}

type Token = { op: string } | { word: string };

export function tokenize(cmd: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < cmd.length) {
    const c = cmd[i]!;
    if (c === ' ' || c === '\t' || c === '\n') {
      i++;
      continue;
    }
    const two = cmd.slice(i, i + 2);
    if (two === '&&' || two === '||' || two === '>>' || two === '2>') {
      out.push({ op: two });
      i += 2;
      continue;
    }
    if (';|&>'.includes(c)) {
      out.push({ op: c });
      i++;
      continue;
    }
    let word = '';
    while (i < cmd.length && !' \t\n;|&>'.includes(cmd[i]!)) {
      const ch = cmd[i]!;
      if (ch === "'" || ch === '"') {
        const end = cmd.indexOf(ch, i + 1);
        if (end < 0) throw new Error('unterminated quoted string');
        word += cmd.slice(i + 1, end);
        i = end + 1;
      } else if (ch === '\\' && i + 1 < cmd.length) {
        word += cmd[i + 1];
        i += 2;
      } else {
        word += ch;
        i++;
      }
    }
    out.push({ word });
  }
  return out;
}

interface Simple {
  argv: string[];
  redirect?: { path: string; append: boolean };
  stderrToNull?: boolean;
}

export class MockShell {
  constructor(private readonly m: MockMachine) {}

  run(cmd: string): ShellResult {
    let tokens: Token[];
    try {
      tokens = tokenize(cmd);
    } catch (e) {
      return { status: 2, stdout: '', stderr: `sh: syntax error: ${(e as Error).message}\n` };
    }
    let stdout = '';
    let stderr = '';
    let status = 0;
    // Split into and-or lists separated by ; and &, each a chain of pipelines joined by && / ||.
    let i = 0;
    let skip = false;
    while (i < tokens.length) {
      const pipeline: Simple[] = [{ argv: [] }];
      for (; i < tokens.length; i++) {
        const t = tokens[i]!;
        if ('word' in t) pipeline[pipeline.length - 1]!.argv.push(t.word);
        else if (t.op === '|') pipeline.push({ argv: [] });
        else if (t.op === '>' || t.op === '>>') {
          const target = tokens[++i];
          if (!target || !('word' in target)) return { status: 2, stdout, stderr: `${stderr}sh: syntax error: missing redirect target\n` };
          pipeline[pipeline.length - 1]!.redirect = { path: target.word, append: t.op === '>>' };
        } else if (t.op === '2>') {
          i++;
          pipeline[pipeline.length - 1]!.stderrToNull = true;
        } else break;
      }
      const sep = tokens[i] as { op: string } | undefined;
      i++;
      if (!skip) {
        const r = this.pipeline(pipeline);
        stdout += r.stdout;
        stderr += r.stderr;
        status = r.status;
      }
      skip = sep?.op === '&&' ? status !== 0 : sep?.op === '||' ? status === 0 : false;
    }
    return { status, stdout, stderr };
  }

  private pipeline(cmds: Simple[]): ShellResult {
    let input = '';
    let result: ShellResult = { status: 0, stdout: '', stderr: '' };
    let stderr = '';
    for (const c of cmds) {
      if (c.argv.length === 0) continue;
      result = this.simple(c.argv, input);
      if (c.redirect) result = this.redirect(c.redirect.path, result);
      if (!c.stderrToNull) stderr += result.stderr;
      input = result.stdout;
    }
    return { status: result.status, stdout: result.stdout, stderr };
  }

  private redirect(path: string, r: ShellResult): ShellResult {
    const m = /^\/sys\/devices\/system\/cpu\/cpu(\d+)\/online$/.exec(path);
    if (m) {
      const value = r.stdout.trim();
      const cpu = Number(m[1]);
      if (value !== '0' && value !== '1') return { status: 1, stdout: '', stderr: `sh: write error: Invalid argument\n` };
      const err = this.m.setOnline(cpu, value === '1');
      if (err === 'ENOENT') return { status: 1, stdout: '', stderr: `sh: can't create ${path}: ${this.m.vcpus[cpu] ? 'Permission denied' : 'nonexistent directory'}\n` };
      if (err === 'EBUSY') return { status: 1, stdout: '', stderr: `sh: write error: Device or resource busy\n` };
      return { status: r.status, stdout: '', stderr: r.stderr };
    }
    if (path === '/dev/null' || path.startsWith('/tmp/')) return { ...r, stdout: '' };
    return { status: 1, stdout: '', stderr: `sh: can't create ${path}: Read-only file system\n` };
  }

  private simple(argv: string[], input: string): ShellResult {
    const [cmd, ...args] = argv as [string, ...string[]];
    const ok = (stdout: string): ShellResult => ({ status: 0, stdout, stderr: '' });
    const fail = (stderr: string, status = 1): ShellResult => ({ status, stdout: '', stderr });
    switch (cmd) {
      case 'true':
      case ':':
        return ok('');
      case 'false':
        return fail('');
      case 'echo':
        return ok(`${args.join(' ')}\n`);
      case 'sleep':
        return ok(''); // the guest does not block the mock; sleeping is the runner's `wait` step
      case 'uname':
        return ok(`${args.includes('-r') ? this.m.kernelRelease : `Linux kvmlab-guest ${this.m.kernelRelease} #1 SMP ${this.m.config.arch === 'ppc64' ? 'ppc64le' : 'x86_64'} GNU/Linux`}\n`);
      case 'nproc':
        return ok(`${this.m.onlineCpus().length}\n`);
      case 'dmesg':
        return ok(this.m.dmesg());
      case 'cat': {
        if (args.length === 0) return ok(input);
        let out = '';
        for (const path of args) {
          const content = this.readFile(path);
          if (content === undefined) return { status: 1, stdout: out, stderr: `cat: can't open '${path}': No such file or directory\n` };
          out += content;
        }
        return ok(out);
      }
      case 'ls':
        return this.ls(args);
      case 'grep':
        return this.grep(args, input);
      case 'wc':
        return args[0] === '-l' ? ok(`${input.split('\n').filter((l, i, a) => i < a.length - 1 || l !== '').length}\n`) : fail('wc: only -l is simulated\n');
      case 'tail': {
        const n = args[0] === '-n' ? Number(args[1]) : 10;
        const lines = input.replace(/\n$/, '').split('\n');
        return ok(`${lines.slice(-n).join('\n')}\n`);
      }
      case 'kvmlab-load':
        return this.load(args);
      default:
        return fail(`sh: ${cmd}: not found\n`, 127);
    }
  }

  private readFile(path: string): string | undefined {
    const m = this.m;
    const cpuDir = /^\/sys\/devices\/system\/cpu\/cpu(\d+)\/online$/.exec(path);
    if (cpuDir) {
      const cpu = Number(cpuDir[1]);
      if (!m.hasOnlineFile(cpu)) return undefined;
      return `${m.onlineCpus().includes(cpu) ? 1 : 0}\n`;
    }
    const list = (cpus: number[]) => `${formatCpuList(cpus)}\n`;
    switch (path) {
      case '/sys/devices/system/cpu/online':
        return list(m.onlineCpus());
      case '/sys/devices/system/cpu/present':
        return list(m.presentCpus());
      case '/sys/devices/system/cpu/possible':
        return list(m.vcpus.map((v) => v.index));
      case '/sys/devices/system/cpu/offline':
        return list(m.vcpus.map((v) => v.index).filter((c) => !m.onlineCpus().includes(c)));
      case '/sys/devices/system/cpu/cpuidle/current_driver':
        return `${m.policy.guestHaltpoll ? 'haltpoll' : m.policy.arch === 'ppc64' ? 'pseries_idle' : m.policy.mwaitInCpuid && m.policy.guestIdle === 'default' ? 'intel_idle' : 'none'}\n`;
      case '/sys/devices/system/cpu/cpuidle/current_governor_ro':
        return `${m.policy.guestHaltpoll ? 'haltpoll' : 'menu'}\n`;
      case '/proc/cmdline':
        return `${m.config.cmdline}\n`;
      case '/proc/version':
        return `Linux version ${m.kernelRelease} (simulated by kvmlab's mock backend)\n`;
      case '/proc/cpuinfo':
        return m
          .onlineCpus()
          .map((c) =>
            m.config.arch === 'x86_64'
              ? `processor\t: ${c}\nvendor_id\t: ${m.config.plan.guestVendor ?? MOCK_HOST.cpuVendor}\nmodel name\t: ${/^(host|max)$/.test(m.cpuModelName) ? MOCK_HOST.cpuModel : m.cpuModelName}\nflags\t\t: fpu tsc msr pae apic sep cmov pat clflush mmx fxsr sse sse2 syscall nx lm${m.policy.mwaitInCpuid ? ' monitor' : ''} hypervisor\n\n`
              : `processor\t: ${c}\ncpu\t\t: POWER9 (architected), altivec supported\n\n`,
          )
          .join('');
      default:
        return undefined;
    }
  }

  private ls(args: string[]): ShellResult {
    const dir = args.find((a) => !a.startsWith('-'));
    if (dir === '/sys/devices/system/cpu' || dir === '/sys/devices/system/cpu/') {
      const names = [...this.m.presentCpus().map((c) => `cpu${c}`), 'cpuidle', 'offline', 'online', 'possible', 'present'];
      return { status: 0, stdout: `${names.join('\n')}\n`, stderr: '' };
    }
    return { status: 1, stdout: '', stderr: `ls: ${dir ?? '.'}: No such file or directory\n` };
  }

  private grep(args: string[], input: string): ShellResult {
    const count = args.includes('-c');
    const rest = args.filter((a) => !a.startsWith('-'));
    const pattern = rest[0];
    if (pattern === undefined) return { status: 2, stdout: '', stderr: 'grep: no pattern\n' };
    let text = input;
    if (rest[1] !== undefined) {
      const content = this.readFile(rest[1]);
      if (content === undefined) return { status: 2, stdout: '', stderr: `grep: ${rest[1]}: No such file or directory\n` };
      text = content;
    }
    const lines = text.split('\n').filter((l) => l.includes(pattern));
    return { status: lines.length > 0 ? 0 : 1, stdout: count ? `${lines.length}\n` : lines.map((l) => `${l}\n`).join(''), stderr: '' };
  }

  private load(args: string[]): ShellResult {
    if (args[0] === 'stop') {
      this.m.stopLoads();
      return { status: 0, stdout: '', stderr: '' };
    }
    if (args[0] === 'busy' && args.length === 3) {
      const cpu = Number(args[1]);
      const seconds = Number(args[2]);
      if (!Number.isInteger(cpu) || !(seconds > 0)) return { status: 2, stdout: '', stderr: 'usage: kvmlab-load busy CPU SECONDS\n' };
      if (!this.m.busy(cpu, seconds)) return { status: 1, stdout: '', stderr: `taskset: failed to set pid's affinity: Invalid argument\n` };
      return { status: 0, stdout: `${this.m.pid + 1000 + cpu}\n`, stderr: '' };
    }
    return { status: 2, stdout: '', stderr: 'usage: kvmlab-load busy CPU SECONDS | kvmlab-load stop\n' };
  }
}
