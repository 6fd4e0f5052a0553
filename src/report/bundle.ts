// The repro bundle: one plain-text file to paste into a mailing-list reply — host, QEMU version and
// exact command line, guest kernel, the results, the one command that reruns it, and last the
// experiment file. Everything before the experiment is at most 100 columns wide: long command lines
// are wrapped with shell continuations, long text is wrapped. The experiment file is never wrapped
// or cut: it runs from a marker line to the end of the bundle byte for byte, with its sha256, so it
// can be saved and rerun as it ran. The guest's SSH key on the kernel command line is elided.
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { release } from 'node:os';
import { basename, join, relative } from 'node:path';
import { expandMatrix } from '../experiment/matrix.js';
import { shellQuote } from '../util/shell.js';
import type { LoadedResults, RepetitionData } from './load.js';
import { headline, ranOnLines, variantNotes, whereMeasured } from './summary.js';
import { fmtObserved } from './table.js';

export const MAX_WIDTH = 100;

/** The line after which the experiment file follows, byte for byte, to the end of the bundle. */
export const EXPERIMENT_MARKER = '-- experiment file: from the next line to the end of the bundle, byte for byte --';
/** What finds the marker line: its start, which no line before it has. */
const MARKER_START = EXPERIMENT_MARKER.slice(0, EXPERIMENT_MARKER.indexOf(':') + 1);

/** The run's SSH public key, which kvmlab's guest image takes from its kernel command line. */
const AUTHKEY = /\bkvmlab\.authkey=\S+/g;
export const AUTHKEY_ELIDED = 'kvmlab.authkey=<elided>';

/** An argument as the bundle shows it: the guest's SSH key replaced with a placeholder. */
function elide(arg: string): string {
  return arg.replace(AUTHKEY, AUTHKEY_ELIDED);
}


/** argv in units that read together: an option with its value ("-smp 2,maxcpus=4"). */
function units(argv: readonly string[]): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (i > 0 && a.startsWith('-') && next !== undefined && !next.startsWith('-')) {
      out.push([a, next]);
      i++;
    } else out.push([a]);
  }
  return out;
}

/**
 * argv as a shell command wrapped to `width` columns: option-and-value units joined on a line while
 * they fit, then ` \` and a continuation indented by two. An argument too long for any line is
 * written in double quotes and split with backslash-newline, which the shell removes there.
 */
export function wrapCommand(argv: readonly string[], width = MAX_WIDTH): string[] {
  const lines: string[] = [];
  let cur = '';
  const indent = '  ';
  const room = width - 2; // for " \"
  const push = (piece: string) => {
    if (cur === '') cur = piece;
    else if (cur.length + 1 + piece.length <= room) cur += ` ${piece}`;
    else {
      lines.push(`${cur} \\`);
      cur = indent + piece;
    }
  };
  for (const unit of units(argv)) {
    const quoted = unit.map(shellQuote);
    if (indent.length + quoted.join(' ').length <= room) {
      push(quoted.join(' '));
      continue;
    }
    for (const arg of unit) {
      const q = shellQuote(arg);
      if (indent.length + q.length <= room) {
        push(q);
        continue;
      }
      // too long for any line: "…\<newline>…" pieces
      const dq = `"${arg.replace(/(["\\$`])/g, '\\$1')}"`;
      let rest = dq;
      let first = true;
      if (cur.length > room / 2) {
        lines.push(`${cur} \\`);
        cur = '';
      }
      const lead = cur === '' ? '' : `${cur} `;
      cur = '';
      while (rest.length) {
        const prefix = first ? (lead || indent) : '';
        let cut = Math.min(rest.length, room - prefix.length - 1);
        // never split an escape pair
        if (cut < rest.length) while (cut > 1 && rest[cut - 1] === '\\') cut--;
        const piece = rest.slice(0, cut);
        rest = rest.slice(cut);
        if (rest.length) lines.push(`${prefix}${piece}\\`);
        else cur = `${prefix}${piece}`;
        first = false;
      }
    }
  }
  if (cur !== '') lines.push(cur);
  if (lines[0]?.startsWith(indent)) lines[0] = lines[0].slice(indent.length);
  return lines;
}

/** Hard-wrap a line of prose to the width, continuation lines indented. */
export function wrapText(line: string, width = MAX_WIDTH, indent = '    '): string[] {
  if (line.length <= width) return [line];
  const out: string[] = [];
  let rest = line;
  let first = true;
  while (rest.length > (first ? width : width - indent.length)) {
    const w = first ? width : width - indent.length;
    let cut = rest.lastIndexOf(' ', w);
    if (cut < w / 2) cut = w;
    out.push((first ? '' : indent) + rest.slice(0, cut).trimEnd());
    rest = rest.slice(cut).trimStart();
    first = false;
  }
  if (rest) out.push((first ? '' : indent) + rest);
  return out;
}

async function liveKvmParams(): Promise<string[]> {
  const out: string[] = [];
  for (const [mod, prefix] of [['kvm', ''], ['kvm_intel', 'kvm_intel.'], ['kvm_amd', 'kvm_amd.']] as const) {
    const dir = `/sys/module/${mod}/parameters`;
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names.sort()) {
      if (!/^(halt_poll_ns|halt_poll_ns_grow|halt_poll_ns_shrink|tdp_mmu|nx_huge_pages|enable_apicv|avic|nested|ept|npt|enable_ipiv|kvmclock_periodic_sync|pi_inject_timer|ple_gap|ple_window|mmio_caching|force_emulation_prefix|vmentry_l1d_flush)$/.test(n)) continue;
      const v = (await readFile(join(dir, n), 'utf8').catch(() => '')).trim();
      if (v) out.push(`${prefix}${n}=${v}`);
    }
  }
  return out;
}

function guestKernel(reps: readonly RepetitionData[]): string | undefined {
  for (const rep of reps) {
    const g = rep.guest.find((c) => /^\s*uname\s+-r\s*$/.test(c.cmd) && c.status === 0 && c.stdout?.trim());
    if (g) return g.stdout!.trim();
  }
  for (const rep of reps) {
    const image = rep.launch?.image as { kernelVersion?: string } | undefined;
    if (image?.kernelVersion) return `${image.kernelVersion} (from the guest image manifest)`;
  }
  return undefined;
}

function pickRep(r: LoadedResults, variant: string): RepetitionData | undefined {
  const mine = r.reps.filter((x) => x.variant === variant && x.launch);
  return mine.find((x) => x.status === 'completed') ?? mine[0];
}

/** The command that reruns the experiment as it ran: the same file, backend, accelerator, place and repetitions. */
function rerunCommand(r: LoadedResults, file: string): { argv: string[]; note?: string } {
  const s = r.summary;
  const reps = Math.max(1, ...s.variants.map((v) => v.repetitions.length));
  const argv = ['kvmlab', 'run', file, ...(s.target?.kind === 'nested' ? ['--on', 'nested'] : s.target?.kind === 'ssh' ? ['--on', s.target.box] : []), '--backend', s.backend, '--accel', s.accel, '--repeat', String(reps)];
  let note: string | undefined;
  if (r.experiment) {
    if (r.experiment.steps.some((st) => st.kind === 'host')) argv.push('--allow-host-commands');
    try {
      const all = expandMatrix(r.experiment);
      const ran = s.variants.map((v) => v.id);
      if (ran.length < all.length) {
        if (ran.length === 1) argv.push('--only', ran[0]!);
        else note = `this run covered ${ran.length} of the ${all.length} variants (${ran.join(' | ')})`;
      }
    } catch {
      // an experiment this kvmlab can no longer expand: rerun it whole
    }
  }
  return { argv, note };
}

export interface BundleOptions {
  cwd?: string;
  /** Where the bundle is written, for the command that saves its experiment file. */
  output?: string;
}

export async function buildBundle(r: LoadedResults, opts: BundleOptions = {}): Promise<string> {
  const s = r.summary;
  const sim = s.simulated;
  const head: string[] = [];
  const add = (...lines: string[]) => head.push(...lines.flatMap((l) => wrapText(l)));
  add(`kvmlab repro bundle: ${s.experiment}${sim ? ' — SIMULATED (mock backend; not a real host or guest)' : ''}`);
  const rel = relative(opts.cwd ?? process.cwd(), r.dir) || '.';
  add(`results: ${rel.startsWith('..') ? r.dir : rel}, run ${s.startedAt} to ${s.finishedAt}${s.interrupted ? ' (interrupted)' : ''}`);
  add(headline(s));
  add(`measured on: ${whereMeasured(s)}`);
  if (s.source) add(`source: ${typeof s.source === 'string' ? s.source : `${s.source.list}, ${s.source.date}: "${s.source.subject}"${s.source.url ? ` <${s.source.url}>` : ''}`}`);

  // host
  add('', '== host ==');
  add(`cpu: ${s.host.cpuModel} (${s.host.arch}, ${s.host.cpus.length} CPUs)`);
  add(`kernel: ${s.host.kernelRelease}`);
  add(`kvm: ${s.host.kvmUsable ? 'usable' : 'not usable'}, KVM_CAP_X86_DISABLE_EXITS mask 0x${s.host.disableExitsMask.toString(16)}; accel used: ${s.accel}`);
  const first = r.summary.variants.map((v) => pickRep(r, v.id)).find((x) => x !== undefined);
  const recorded = (first?.launch?.kvmParams as Record<string, string> | undefined) ?? s.host.kvmParams;
  if (Object.keys(recorded).length) add(`kvm params: ${Object.entries(recorded).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  else if (!sim && s.host.kernelRelease === release()) {
    const live = await liveKvmParams();
    add(`kvm params (read now; same host kernel as the run): ${live.length ? live.join(' ') : 'kvm module not loaded'}`);
  } else add(`kvm params: not recorded in the results${sim ? ' (simulated host)' : ''}`);
  const qemuVersion = r.reps.find((x) => x.qemuVersion)?.qemuVersion;
  add(`qemu: ${qemuVersion ?? 'unknown (no QMP greeting recorded)'}`);

  // QEMU command line
  if (first?.launch && Array.isArray(first.launch.argv)) {
    add('', `== QEMU command line (variant ${first.variant}, repetition ${first.repetition}) ==`);
    const env = Object.entries((first.launch.env ?? {}) as Record<string, string>).map(([k, v]) => `${k}=${v}`);
    const argv = [...env, ...(first.launch.argv as string[])];
    head.push(...wrapCommand(argv.map(elide)));
    if (argv.some((a) => elide(a) !== a)) add(`(${AUTHKEY_ELIDED}: the run's SSH public key for the guest, made anew for every run)`);
    if (typeof first.launch.exitControl === 'string' && first.launch.exitControl !== 'none') add(`(exit control: ${first.launch.exitControl})`);
    const others = s.variants.filter((v) => v.id !== first.variant && pickRep(r, v.id));
    if (others.length) {
      add(`(the other ${others.length === 1 ? 'variant differs' : `${others.length} variants differ`} by the knobs in its id; full command lines in variants/<id>/rep-N/launch.json)`);
    }
  } else add('', '== QEMU command line ==', 'not recorded (no repetition got as far as launching QEMU)');

  add('', '== guest kernel ==', guestKernel(r.reps) ?? 'unknown (no `uname -r` in the guest transcript)');

  // results
  add('', '== results ==');
  const ranOn = ranOnLines(s);
  for (const v of s.variants) {
    add(`${v.status.toUpperCase()}  ${v.id}  (${v.repetitions.length} repetition${v.repetitions.length === 1 ? '' : 's'})`);
    for (const e of v.expectations) add(`  ${e.passed ? 'ok  ' : 'FAIL'} ${fmtObserved(e.observed).padStart(8)}  ${e.claim}`);
    if (v.reason) add(`  reason: ${v.reason}`);
    for (const line of variantNotes(s, v, ranOn)) add(`  ${line}`);
  }

  const text = r.experimentText;
  const saveAs = basename(s.file);
  add('', '== rerun ==');
  if (text !== undefined) {
    add('save the experiment file at the end of this bundle (sha256 given there), then run it:');
    head.push(`  sed '1,/^${MARKER_START}/d' ${shellQuote(opts.output ? basename(opts.output) : 'BUNDLE')} > ${shellQuote(saveAs)} && sha256sum ${shellQuote(saveAs)}`);
  }
  const rerun = rerunCommand(r, text === undefined ? s.file : saveAs);
  head.push(...wrapCommand(rerun.argv));
  if (rerun.note) add(`(${rerun.note})`);

  add('', '== experiment file ==');
  if (text === undefined) {
    add(`(experiment.yaml is missing from the results directory; the run read ${s.file})`);
    return `${head.join('\n')}\n`;
  }
  const bytes = Buffer.from(text, 'utf8');
  add(`${saveAs} (the run read ${s.file}), ${bytes.length} bytes`, `sha256 ${createHash('sha256').update(bytes).digest('hex')}`, EXPERIMENT_MARKER);
  return `${head.join('\n')}\n${text}`;
}
