// QEMU's threads as the host sees them: vCPU threads from query-cpus-fast (the thread-id is the host
// TID), everything else in /proc/PID/task is emulator/I/O threads. Pinning uses libvirt's words:
// vcpupin and emulatorpin; every affinity set is read back and verified.
import type { HostView } from '../backend/backend.js';
import type { QmpClient } from '../backend/qmp-client.js';
import { parseTaskStatus } from '../formats/procfs.js';
import { formatCpuList } from '../model/cpulist.js';
import type { Pinning } from '../experiment/schema.js';
import type { PinRecord, ThreadMap } from '../model/threads.js';

interface CpuInfoFast {
  'cpu-index': number;
  'thread-id': number;
  'qom-path': string;
  props?: Record<string, number>;
}

export async function queryThreads(qmp: QmpClient, host: HostView, pid: number): Promise<ThreadMap> {
  const cpus = await qmp.execute<CpuInfoFast[]>('query-cpus-fast');
  const vcpus = cpus
    .map((c) => ({ index: c['cpu-index'], tid: c['thread-id'], qomPath: c['qom-path'], props: c.props ?? {} }))
    .sort((a, b) => a.index - b.index);
  const vcpuTids = new Set(vcpus.map((v) => v.tid));
  const all = (await host.readdir(`/proc/${pid}/task`)).map(Number).filter((t) => Number.isInteger(t));
  return { pid, vcpus, others: all.filter((t) => !vcpuTids.has(t)) };
}

export async function readAffinity(host: HostView, pid: number, tid: number): Promise<number[]> {
  return parseTaskStatus(await host.readFile(`/proc/${pid}/task/${tid}/status`)).cpusAllowedList;
}

async function pinOne(host: HostView, pid: number, thread: string, tid: number, cpus: number[]): Promise<PinRecord> {
  await host.setAffinity(tid, cpus);
  const actual = await readAffinity(host, pid, tid);
  const rec = { thread, tid, requested: formatCpuList(cpus), actual: formatCpuList(actual) };
  if (rec.actual !== rec.requested) throw new Error(`pinning ${thread} (TID ${tid}) to CPUs ${rec.requested} did not take: its affinity reads back as ${rec.actual}`);
  return rec;
}

/**
 * Apply vcpupin/emulatorpin to the threads in `map`; `only` limits it to these vCPU indices (for
 * threads of hot-plugged vCPUs). Returns what was pinned where, verified by reading it back.
 */
export async function applyPinning(host: HostView, map: ThreadMap, pinning: Pinning | undefined, only?: Set<number>): Promise<PinRecord[]> {
  if (!pinning) return [];
  const out: PinRecord[] = [];
  for (const v of map.vcpus) {
    const cpus = pinning.vcpupin[String(v.index)];
    if (cpus && (!only || only.has(v.index))) out.push(await pinOne(host, map.pid, `vcpu${v.index}`, v.tid, cpus));
  }
  if (pinning.emulatorpin && !only) {
    for (const tid of map.others) out.push(await pinOne(host, map.pid, 'emulator', tid, pinning.emulatorpin));
  }
  return out;
}
