// `kvmlab probe [--json]`: what this host can do for kvmlab, read from the host itself (KVM through
// real ioctls by host-scripts/build/kvm-probe).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeHost, type ProbedHostFacts } from '../../backend/probe.js';
import { localHost } from '../../backend/select.js';
import { formatCpuList } from '../../model/cpulist.js';
import { formatTable } from '../../report/table.js';
import { HostJournal } from '../../host/journal.js';
import { createProgress } from '../../run/progress.js';
import { runNested } from '../../targets/nested.js';
import { parseOn, targetOfThisRun } from '../../targets/on.js';
import { onBox } from '../../targets/box.js';
import { underInterrupts } from './interrupts.js';

const KVM_PARAM_PATTERNS = [/^halt_poll_ns/, /^mitigate_smt_rsb$/, /(^|\.)enable_apicv$/, /(^|\.)ple_/, /(^|\.)pause_filter_/, /^kvm_intel\.(vmentry_l1d_flush|enable_ipiv|preemption_timer)$/, /^kvm_amd\.(avic|nested)$/];

/** The probe as JSON: HostFacts (less the function) and the details `kvmlab probe` shows. */
function probeJson(f: ProbedHostFacts): Record<string, unknown> {
  const { pathExists: _unused, details, ...facts } = f;
  void _unused;
  return { ...facts, details };
}

function probeTable(f: ProbedHostFacts, here: string): string {
  const d = f.details;
  const yes = (b: boolean | undefined) => (b ? 'yes' : 'no');
  const rows: [string, string][] = [];
  const add = (k: string, v: string) => rows.push([k, v]);
  add('host', `${f.arch}, Linux ${f.kernelRelease}, CPUs ${formatCpuList(f.cpus)}${f.root ? ', root' : ', not root'}`);
  add('cpu', `${f.cpuVendor} ${f.cpuModel}`);
  add('cpu flags', Object.entries(d.flagsThatMatter).map(([k, v]) => `${k}:${yes(v)}`).join(' '));
  add('kvm modules', d.kvmModules.join(', ') || 'none');
  add('/dev/kvm', d.devKvm.present ? (d.devKvm.ok ? 'opens' : `does not open: ${d.devKvm.error ?? '?'}`) : 'absent');
  add('KVM API version', d.kvmApiVersion === undefined ? 'unknown' : String(d.kvmApiVersion));
  add('KVM usable', f.kvm.usable ? 'yes' : `no: ${f.kvm.reason ?? ''}`);
  add('boots a standard guest', d.canBootGuest ? 'yes' : `no: ${d.canBootGuestReason ?? ''}`);
  add('disable-exits allowed', `${d.disableExits.text}${d.enableCapBeforeVcpu ? ` (KVM_ENABLE_CAP with it: ret ${d.enableCapBeforeVcpu.ret}${d.enableCapBeforeVcpu.errno ? `, errno ${d.enableCapBeforeVcpu.errno}` : ''})` : ''}`);
  add('KVM_CAP_HALT_POLL', yes(f.kvm.haltPollCap));
  if (d.maxVcpus !== undefined) add('max vCPUs', String(d.maxVcpus));
  if (d.kvmProbe.status !== 'ok') add('kvm-probe', d.kvmProbe.message);
  const params = Object.entries(d.kvmParams).filter(([k]) => KVM_PARAM_PATTERNS.some((p) => p.test(k)));
  add('kvm parameters', params.map(([k, v]) => `${k}=${v}`).join(' ') || 'none readable');
  add('kernel cmdline', Object.entries(d.kernelCmdline).map(([k, v]) => (v === null ? `${k}:-` : v === '' ? k : `${k}=${v}`)).join(' '));
  add('cpuidle', `driver ${d.cpuidle.driver ?? 'none'}, governor ${d.cpuidle.governor ?? 'none'}`);
  for (const q of d.qemu) add(q.binary, q.path ? `${q.path} ${q.version ?? '(version unknown)'}` : 'not installed');
  add('tracefs', f.tracefs.path ? `${f.tracefs.path}${f.tracefs.writable ? ' (writable)' : ' (read-only)'}` : 'not mounted');
  add('debugfs', d.debugfs.mounted ? `mounted${d.debugfs.kvmStats ? ', kvm stats present' : ''}` : 'not mounted');
  add('perf', d.perf.path ? (d.perf.version ?? `${d.perf.path} (does not run: ${d.perf.error ?? '?'})`) : 'not installed');
  add('perf_event_paranoid', d.perfEventParanoid === undefined ? 'unknown' : String(d.perfEventParanoid));
  add('interrupt rows', f.interruptRows.filter((r) => !/^\d+$/.test(r)).join(' '));
  return formatTable(['what', here], rows);
}

export async function probe(flags: { json?: boolean; on: string; sshKey?: string; hostKey?: string }): Promise<void> {
  const on = parseOn(flags.on);
  if (on === 'nested') return probeNested(flags.json ?? false);
  if (typeof on === 'object') {
    const argv = () => ['probe', ...(flags.json ? ['--json'] : [])];
    process.exitCode = await onBox({ box: on, access: { sshKey: flags.sshKey, hostKey: flags.hostKey }, progress: createProgress(process.stderr), stdout: process.stdout, argv });
    return;
  }
  const facts = await probeHost(localHost(), { simulated: false, tools: true });
  // run on a lab box by a kvmlab elsewhere (--on ssh://…), this host is that box
  const target = await targetOfThisRun();
  process.stdout.write(flags.json ? `${JSON.stringify(probeJson(facts), null, 2)}\n` : `${probeTable(facts, target.kind === 'ssh' ? `lab box ${target.box}` : 'this host')}\n`);
}

/** `probe --on nested`: the same probe, run inside the KVM host kvmlab boots under TCG. */
async function probeNested(json: boolean): Promise<void> {
  const progress = createProgress(process.stderr);
  const out = await mkdtemp(join(tmpdir(), 'kvmlab-probe-nested-'));
  const journal = HostJournal.acquire();
  try {
    await underInterrupts(progress, () => journal, async (signal) => {
      const shape = { cpus: 2, memoryMiB: 2048, cmdline: '' };
      const r = await runNested({ argv: ['probe', ...(json ? ['--json'] : [])], out, shape, tracepoints: [], progress, signal, journal });
      process.stdout.write(r.stdout);
      process.exitCode = r.exitCode;
    });
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}
