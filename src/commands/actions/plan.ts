// `kvmlab plan FILE`: what `run` would do, shown and not done (run/dry-run.ts) — as text a person can
// read and paste from, or with --json as one JSON document on stdout.
import { shellLine } from '../../backend/qemu/argv.js';
import { qemuBuild, selectBackend } from '../../backend/select.js';
import { refuseOverriddenFlag } from '../../experiment/matrix.js';
import { formatMask } from '../../model/exits.js';
import type { VmPlan } from '../../plan/vm.js';
import { describeMechanism } from '../../plan/mechanism.js';
import { loadChecked } from '../../run/claims.js';
import { planRun, type PlannedVariant, type RunPlan } from '../../run/dry-run.js';
import { noticesOnly } from '../../run/progress.js';
import { formatDuration } from '../../experiment/units.js';
import { delegatedRunArgs, parseOn, targetOfThisRun } from '../../targets/on.js';
import { onBox } from '../../targets/box.js';
import { parseHostKernel, parseRepeat, refuseMockHost, refuseOnNested, type RunChoices } from './run-options.js';

export async function plan(file: string, flags: RunChoices): Promise<void> {
  const repeat = parseRepeat(flags.repeat);
  const on = parseOn(flags.on);
  refuseMockHost(flags.mockHost, flags.backend, on);
  const hostKernel = parseHostKernel(flags.hostKernel, flags.hostModules, on);
  if (on === 'nested') refuseOnNested(flags.backend, flags.accel);
  const loaded = await loadChecked(file);
  if (typeof on === 'object') {
    // the box's plan: its facts, its QEMU, its images
    const delegated = delegatedRunArgs({ repeat, only: flags.only, where: flags.where, qemu: flags.qemu, json: flags.json });
    const there = (t: { file: string }) => ['plan', t.file, '--backend', flags.backend, '--accel', flags.accel, ...delegated];
    process.exitCode = await onBox({ box: on, access: { sshKey: flags.sshKey, hostKey: flags.hostKey }, progress: noticesOnly(process.stderr), file, stdout: process.stdout, argv: there });
    return;
  }
  if (hostKernel) refuseOverriddenFlag(loaded.experiment, '--host-kernel', 'kernel');
  if (flags.qemu !== undefined) refuseOverriddenFlag(loaded.experiment, '--qemu', 'qemu');
  const qemu = flags.qemu === undefined ? undefined : await qemuBuild(flags.qemu);
  // Inside L1 the run is real QEMU whatever was asked here (the mock is refused above).
  const backend = await selectBackend(on === 'nested' ? 'qemu' : flags.backend, loaded.experiment.guest.arch, noticesOnly(process.stderr), undefined, qemu);
  const doc = await planRun({ loaded, backend, accel: flags.accel, on, ...(repeat !== undefined ? { repeat } : {}), ...(flags.only ? { only: flags.only } : {}), ...(flags.where ? { where: flags.where } : {}), ...(hostKernel ? { hostKernel } : {}), ...(qemu ? { qemu } : {}) });
  // run on a lab box by a kvmlab elsewhere (--on ssh://…), this host is that box
  const target = await targetOfThisRun();
  process.stdout.write(flags.json ? `${JSON.stringify(doc, null, 2)}\n` : planText(doc, target.kind === 'ssh' ? `on lab box ${target.box}` : 'on this host'));
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const seconds = (s: number) => formatDuration(s * 1000);

function exitsText(plan: VmPlan): string {
  const c = plan.exitControl;
  if (c.mode === 'none') return 'no exit control (KVM intercepts every exit)';
  if (c.mode === 'cpu-pm') return `disabled exits: QEMU's own -overcommit cpu-pm=on, all this host allows of MWAIT|HLT|PAUSE|CSTATE (${formatMask(plan.disableExitsMask)})`;
  return `disabled exits ${formatMask(c.mask)}: -overcommit cpu-pm=on and the shim setting exactly this mask`;
}

function planLine(plan: VmPlan): string {
  return [
    `-cpu ${plan.cpu}`,
    exitsText(plan),
    `MWAIT in guest CPUID: ${plan.mwaitInCpuid ? 'yes' : 'no'}`,
    `guest vendor: ${plan.guestVendor ?? 'as the CPU model says'}`,
    ...(plan.haltPollNs !== undefined ? [`halt_poll_ns ${plan.haltPollNs} (per VM)`] : []),
    ...(plan.guestKernelArgs.length ? [`guest kernel adds ${plan.guestKernelArgs.join(' ')}`] : []),
  ].join('; ');
}

function timeLine(p: RunPlan, v: PlannedVariant): string {
  const e = v.estimate;
  if (v.verdict === 'skipped') return 'none (skipped)';
  const each = p.simulated ? `windows ${seconds(e.windowsSeconds)}` : `boot about ${seconds(e.bootSeconds)} + windows ${seconds(e.windowsSeconds)}`;
  return `${p.simulated ? `${seconds(e.seconds)} of virtual time` : `about ${seconds(e.seconds)}`}: ${plural(e.runs, 'run')} × (${each})`;
}

function variantBlock(p: RunPlan, v: PlannedVariant, i: number): string[] {
  const lines = [`variant ${i + 1}/${p.variants.length} ${v.id}`];
  const field = (name: string, text: string) => lines.push(`  ${name.padEnd(9)} ${text}`);
  field('verdict', v.verdict === 'decided inside L1' ? 'decided inside L1 (nothing here skips it)' : v.verdict);
  for (const r of v.reasons) lines.push(`            ${r}`);
  field('plan', v.plan ? planLine(v.plan) : 'none: these knobs cannot be asked of this VM (a reason above says why), so nothing would be launched');
  if (v.mechanism) field('measures', describeMechanism(v.mechanism));
  if (v.commandLine) field('command', v.commandLine);
  if (v.simulated) field('mock', `no QEMU process (launch.json's argv says so, with the guest's -smp and -append): ${plural(v.simulated.cpus, 'vCPU')}${v.simulated.maxcpus !== undefined ? ` (maxcpus ${v.simulated.maxcpus})` : ''}; kernel command line: ${v.simulated.cmdline}`);
  if (v.launchProblem) field('launch', `would stop before QEMU starts: ${v.launchProblem}`);
  field('time', timeLine(p, v));
  return lines;
}

function planText(p: RunPlan, here: string): string {
  const out: string[] = [];
  const where = p.on === 'nested' ? 'in a nested KVM host (L1) booted under TCG' : here;
  out.push(`plan: ${p.experiment} (${p.file}): ${plural(p.variants.length, 'variant')} × ${plural(p.repetitions, 'repetition')}, backend ${p.backend}${p.simulated ? ' (simulated)' : ''}, accel ${p.accel}, ${where}`);
  out.push(`judged on: ${p.judgedOn}`);
  for (const n of p.notices) out.push(`notice: ${n}`);
  out.push('Nothing here was started or written. What each launch chooses is shown as a placeholder:');
  const width = Math.max(0, ...Object.keys(p.placeholders).map((k) => k.length));
  for (const [k, meaning] of Object.entries(p.placeholders)) out.push(`  ${k.padEnd(width)}  ${meaning}`);
  for (const l1 of p.nested ?? []) {
    const { shape } = l1;
    const host = l1.hosts.length ? ` for host ${l1.hosts.join(', ')} (${l1.variants.join(', ')})` : '';
    out.push('', `L1${host}: ${shape.cpus} CPUs, ${shape.memoryMiB} MiB${shape.kernel ? `, kernel ${shape.kernel.replace(/^path:/, '')}` : ''}${shape.cmdline ? `, kernel command line adds ${shape.cmdline}` : ''}`);
    out.push(`  command   ${l1.commandLine}`);
    out.push(`  inside    ${shellLine(l1.inside[0]!, l1.inside.slice(1))}`);
    out.push(`  decided   ${l1.decidedInside}`);
  }
  p.variants.forEach((v, i) => out.push('', ...variantBlock(p, v, i)));
  out.push('');
  for (const r of p.refusals) out.push(`refused: run would stop before booting anything (exit ${r.exitCode}): ${r.reason}`);
  const running = p.variants.filter((v) => v.verdict !== 'skipped').length;
  const asGiven = p.refusals.length ? 'nothing would run as given (refused above); let through, ' : '';
  if (running === 0) out.push(`total: ${asGiven}no variant would run ${p.on === 'nested' ? 'in L1' : 'here'}: run would skip every one (each says why above) and exit 3`);
  else {
    const time = p.estimate.clock === 'virtual' ? `${seconds(p.estimate.seconds)} of virtual time` : `about ${seconds(p.estimate.seconds)}`;
    out.push(`total: ${asGiven}${running} of ${plural(p.variants.length, 'variant')} would run${p.on === 'nested' ? ' as far as can be told before L1 boots' : ''}, ${plural(p.estimate.runs, 'run')}, ${time}`);
  }
  out.push('estimate made of:', ...p.estimate.madeOf.map((m) => `  ${m}`));
  return `${out.join('\n')}\n`;
}
