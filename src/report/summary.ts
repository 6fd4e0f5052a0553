// The verdict of a run in words: the terminal table printed at the end of `run` and by `report`,
// summary.md, and the exit status.
import { claimCounts, type Summary, type VariantResult } from '../results/summary.js';
import { observationLine } from '../run/observed-mechanism.js';
import { fmtObserved, formatTable } from './table.js';

/** A reason in one table cell: its first line, cut to a readable width (the whole text is in summary.json). */
function cell(text: string, width = 120): string {
  const line = text.split('\n')[0] ?? '';
  return line.length > width ? `${line.slice(0, width - 1)}…` : line;
}

/**
 * What each variant ran on, in words, for the cells where that differs across the run (a host axis
 * under --on nested): the kernel, the boot parameters not every variant had, and QEMU. Empty when
 * every variant ran on one host.
 */
export function ranOnLines(s: Summary): Map<string, string> {
  const ran = s.variants.filter((v) => v.ranOn);
  const lines = new Map<string, string>();
  const differ = (f: (r: NonNullable<VariantResult['ranOn']>) => string | undefined) => new Set(ran.map((v) => f(v.ranOn!))).size > 1;
  const kernel = differ((r) => r.kernel);
  const qemu = differ((r) => r.qemu);
  const cmdline = differ((r) => r.cmdline);
  if (!kernel && !qemu && !cmdline) return lines;
  // kvmlab's own parameters (kvmlab.out=…, the results share of each L1) say nothing about the host
  const words = (c: string) => new Set(c.split(/\s+/).filter((w) => w && !w.startsWith('kvmlab.')));
  const common = ran.map((v) => words(v.ranOn!.cmdline)).reduce((a, b) => new Set([...a].filter((w) => b.has(w))));
  for (const v of ran) {
    const r = v.ranOn!;
    const own = [...words(r.cmdline)].filter((w) => !common.has(w));
    lines.set(v.id, [`ran on kernel ${r.kernel}`, cmdline ? (own.length ? `booted with ${own.join(' ')}` : 'no extra boot parameters') : '', qemu ? `QEMU ${r.qemu ?? 'unknown'}` : ''].filter(Boolean).join(', '));
  }
  return lines;
}

export function verdictTable(s: Summary): string {
  const rows: string[][] = [];
  const ranOn = ranOnLines(s);
  for (const v of s.variants) {
    const verdict = v.status.toUpperCase();
    if (ranOn.has(v.id)) rows.push([v.id, verdict, ranOn.get(v.id)!, '', '']);
    const first = !ranOn.has(v.id);
    if (v.expectations.length === 0) rows.push([first ? v.id : '', first ? verdict : '', cell(v.reason ?? '(no expectations)'), '', '']);
    v.expectations.forEach((e, i) => rows.push([i === 0 && first ? v.id : '', i === 0 && first ? verdict : '', e.description, fmtObserved(e.observed), `${e.passed ? 'ok  ' : 'FAIL'} ${e.claim}`]));
    if (v.reason && v.expectations.length) rows.push(['', '', cell(`reason: ${v.reason}`), '', '']);
    for (const line of mechanismLines(v, s.simulated)) rows.push(['', '', line, '', '']);
  }
  return formatTable(['variant', 'verdict', 'expectation', 'observed', 'claim'], rows);
}

/** What each parked vCPU of the variant was seen doing, held against the plan, and what watching it cost: one line each. */
export function mechanismLines(v: VariantResult, simulated = false): string[] {
  const m = v.mechanism;
  const o = v.observer;
  const cost = o
    ? [
        `kvmlab's own CPU while watching: ${o.medianCpuPct.toFixed(1)} % of one CPU in the median measuring window, ${o.maxCpuPct.toFixed(1)} % @ ${o.maxStep} at most${simulated ? " (the mock's simulation runs in that process too)" : ''}`,
        ...(o.tracedPerS !== undefined
          ? [`kvm-exits' trigger ran ${Math.round(o.tracedPerS).toLocaleString('en-US')} times a second @ ${o.tracedStep} at most, in the kernel on the exiting vCPUs' threads (not in the CPU above; test/bench/exit-trace-cost.mjs prices one run)`]
          : []),
      ]
    : [];
  return [...(m ? m.parked.map((x) => observationLine(x, m.planned)) : []), ...cost];
}

/** What a report says under a variant besides its claims: the host it ran on where hosts differ, then mechanismLines. */
export function variantNotes(s: Summary, v: VariantResult, ranOn = ranOnLines(s)): string[] {
  const host = ranOn.get(v.id);
  return [...(host ? [host] : []), ...mechanismLines(v, s.simulated)];
}

export function headline(s: Summary): string {
  const count = (st: string) => s.variants.filter((v) => v.status === st).length;
  const sim = s.simulated ? ' — SIMULATED (mock backend: the guest and host are simulated)' : '';
  const unchecked = count('unchecked') ? `, ${count('unchecked')} unchecked` : '';
  return `${s.experiment}: ${count('passed')} passed, ${count('failed')} failed, ${count('error')} error, ${count('skipped')} skipped${unchecked} (backend ${s.backend}, accel ${s.accel})${sim}\n${claimLine(s)}`;
}

/** "6 of 8 claims checked; 2 not: <why>" — what the verdict rests on, and what it does not. */
export function claimLine(s: Summary): string {
  const { checked, written } = claimCounts(s);
  const why = new Map<string, number>();
  for (const v of s.variants) {
    const missed = v.status === 'passed' || v.status === 'failed' ? 0 : (v.claims ?? v.expectations.length);
    if (missed) why.set(cell(v.reason ?? v.status, 100), (why.get(cell(v.reason ?? v.status, 100)) ?? 0) + missed);
  }
  const not = written - checked;
  const strict = s.strict ? ' (--strict: the run fails on it)' : '';
  const unchecked = s.variants.filter((v) => v.status === 'unchecked').map((v) => v.id);
  const none = unchecked.length ? `; ${unchecked.length} variant${unchecked.length > 1 ? 's' : ''} ran with no claim to check (${unchecked.join(', ')})${strict}` : '';
  return `${checked} of ${written} claims checked${not ? `; ${not} not: ${[...why].map(([r, n]) => `${n} ${r}`).join('; ')}${strict}` : ''}${none}`;
}

/**
 * Where the figures come from, in one line: simulated, TCG, nested KVM (in a host QEMU emulates),
 * KVM in a VM (the host's CPU says it is a guest itself: what its hypervisor does is in every figure),
 * or lab KVM on bare metal — only where the host shows no hypervisor.
 */
export function whereMeasured(s: Summary): string {

  if (s.target?.kind === 'nested') {
    const t = s.target;
    const kernels = [...new Set(s.variants.flatMap((v) => (v.ranOn ? [v.ranOn.kernel] : [])))];
    const kernel = kernels.length > 1 ? `kernels ${kernels.join(' and ')}, one L1 per host label` : `kernel ${t.l1.kernel}`;
    return `nested KVM: the real KVM of an L1 host (${kernel}, ${t.l1.cpus} CPUs, ${s.host.cpuVendor ?? 'vendor unknown'}) emulated by ${t.l0}; counts, exits and CPU attribution are KVM's own, timings, latencies and halt-poll figures are not hardware figures`;
  }
  const box = s.target?.kind === 'ssh' ? `; on lab box ${s.target.box}, run over SSH` : '';
  if (s.simulated) return `simulated: kvmlab's mock backend models the guest and host (${s.host.cpuModel}, ${s.host.cpuVendor ?? 'vendor unknown'})${box}`;
  if (s.accel === 'tcg') return `TCG: QEMU emulates the guest CPU, no KVM involved${box}`;
  const h = s.host;
  const kvm = `/dev/kvm${h.kvmModule ? ` (${h.kvmModule})` : ''}`;
  const its = box ? "the box's" : "this host's";
  if (h.hypervisor === false) return `lab KVM (bare metal): ${its} ${kvm}, ${h.cpuModel}, kernel ${h.kernelRelease}${box}`;
  if (h.hypervisor) return `KVM in a VM: ${its} ${kvm}, on a machine that is itself a guest (its CPU flags say hypervisor), ${h.cpuModel}, kernel ${h.kernelRelease}; the outer hypervisor's work is in every figure${box}`;
  return `KVM on ${box ? 'the box' : 'this host'}: ${kvm}, ${h.cpuModel}, kernel ${h.kernelRelease} (whether it is bare metal was not recorded)${box}`;
}

export function summaryMarkdown(s: Summary): string {
  const lines = [`# ${s.experiment}${s.simulated ? ' (simulated)' : ''}`, '', s.description.trim(), ''];
  if (s.simulated) lines.push('> **Simulated.** These results come from kvmlab\'s mock backend: the guest and host are a model, not hardware.', '');
  if (s.source) lines.push(`Source: ${typeof s.source === 'string' ? s.source : `${s.source.list}, ${s.source.date}: "${s.source.subject}"${s.source.url ? ` <${s.source.url}>` : ''}`}`, '');
  lines.push(
    `- measured on: ${whereMeasured(s)}`,
    `- backend: ${s.backend}, accel: ${s.accel}${s.simulated ? ', simulated' : ''}`,
    `- host: ${s.host.cpuModel}, ${s.host.arch}, kernel ${s.host.kernelRelease}, ${s.host.cpus.length} CPUs`,
    `- started ${s.startedAt}, finished ${s.finishedAt}${s.interrupted ? ' (interrupted)' : ''}`,
    ...s.notices.map((n) => `- note: ${n}`),
    '',
    headline(s),
    '',
    '```',
    verdictTable(s),
    '```',
    '',
  );
  const skipped = s.variants.filter((v) => v.status === 'skipped');
  if (skipped.length) lines.push('## Skipped', '', ...skipped.map((v) => `- \`${v.id}\`: ${v.reason}`), '');
  const caveats = s.variants.flatMap((v) => v.repetitions.flatMap((r) => Object.entries(r.collectors).filter(([, st]) => st !== 'collected').map(([c, st]) => `- \`${v.id}\` repetition ${r.repetition}: ${c}: ${st}`)));
  if (caveats.length) lines.push('## Collectors', '', ...caveats, '');
  return `${lines.join('\n')}\n`;
}
