// What a wedged nested host was doing, seen from L0 — for when L1's own kernel cannot say (every L1
// CPU stuck, so nothing prints) or says too little. Two looks, both taken before L1 is killed:
//   - L0's QEMU threads (the TCG vCPU threads are "CPU n/TCG"): state, kernel wait channel and CPU
//     use over a short window, so a spinning emulator tells itself from a blocked one;
//   - L1's CPUs through L0's QEMU monitor (QMP human-monitor-command "info registers -a"): each
//     CPU's RIP, privilege level, halted state and whether it runs L1 or an L2 guest (EFER.SVME:
//     set in L1 once KVM enabled SVM, clear in a guest that does not use SVM), L1's RIPs named from
//     the kallsyms L1 writes at boot (it boots with nokaslr). A monitor that does not answer is a
//     finding too: QEMU's main loop is stuck.
import { readdir, readFile } from 'node:fs/promises';
import { QmpClient } from '../backend/qmp-client.js';
import { errorMessage } from '../errors.js';
import { parseSchedstat, parseTaskStat } from '../formats/procfs.js';

/** How long L0's QEMU threads are watched, and how long its monitor gets to answer. */
const THREAD_WINDOW_MS = 2_000;
const MONITOR_TIMEOUT_MS = 10_000;

export interface L1Cpu {
  cpu: number;
  rip: bigint;
  rsp: bigint;
  cpl: number;
  halted: boolean;
  /** EFER.SVME (bit 12): set in L1 once KVM has enabled SVM on the CPU. */
  svme: boolean;
}

const EFER_SVME = 1n << 12n;

/** The CPUs of QEMU's `info registers -a` (x86): RIP, CPL, HLT and EFER.SVME of each. Pure. */
export function parseInfoRegisters(text: string): L1Cpu[] {
  const out: L1Cpu[] = [];
  for (const block of text.split(/^CPU#/m).slice(1)) {
    const cpu = Number(/^(\d+)/.exec(block)?.[1]);
    const m = /RIP=([0-9a-f]+) .*?CPL=(\d+).*?HLT=(\d)/.exec(block);
    const efer = /EFER=([0-9a-f]+)/.exec(block);
    const rsp = /RSP=([0-9a-f]+)/.exec(block);
    if (Number.isInteger(cpu) && m) out.push({ cpu, rip: BigInt(`0x${m[1]}`), rsp: rsp ? BigInt(`0x${rsp[1]}`) : 0n, cpl: Number(m[2]), halted: m[3] === '1', svme: efer ? (BigInt(`0x${efer[1]}`) & EFER_SVME) !== 0n : false });
  }
  return out;
}

export interface SymbolTable {
  addrs: bigint[];
  names: string[];
}

/** No kernel function is longer: an address further past its nearest symbol is in no function known. */
const MAX_FUNCTION_BYTES = 0x10000n;

/** A kernel's text symbols (/proc/kallsyms or System.map lines: `ADDR TYPE NAME [module]`), sorted by address. Pure. */
export function parseKallsyms(text: string): SymbolTable {
  const rows: [bigint, string][] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{8,16}) [tTwW] (\S+)(?:\s+\[(\S+)\])?/.exec(line);
    if (m) rows.push([BigInt(`0x${m[1]}`), m[3] ? `${m[2]} [${m[3]}]` : m[2]!]);
  }
  rows.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  return { addrs: rows.map((r) => r[0]), names: rows.map((r) => r[1]) };
}

/** `name+0xoff` for an address in a function the table knows, else undefined. Pure. */
export function symbolize(map: SymbolTable, addr: bigint): string | undefined {
  if (!map.addrs.length || addr < map.addrs[0]!) return undefined;
  let lo = 0;
  let hi = map.addrs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (map.addrs[mid]! <= addr) lo = mid;
    else hi = mid - 1;
  }
  const off = addr - map.addrs[lo]!;
  return off < MAX_FUNCTION_BYTES ? `${map.names[lo]}+0x${off.toString(16)}` : undefined;
}

/** Whether the CPU runs L1's kernel (not an L2 guest: its EFER lacks the SVME L1's KVM set; not user space). Pure. */
export function inL1Kernel(c: L1Cpu, cpus: L1Cpu[]): boolean {
  return c.cpl === 0 && (c.svme || !cpus.some((x) => x.svme));
}

/**
 * L1's CPUs in words, each with the kernel text addresses found on its stack (`? fn+off`, as the
 * kernel prints a stack it cannot unwind: candidates, most recent first). A CPU whose EFER has no
 * SVME while another's has is in guest mode, running an L2 guest (whose addresses L1's symbols do
 * not name). Pure.
 */
export function describeCpus(cpus: L1Cpu[], map: SymbolTable | undefined, stacks: Map<number, bigint[]> = new Map()): string[] {
  const kvmOn = cpus.some((c) => c.svme);
  return cpus.map((c) => {
    const rip = c.rip.toString(16).padStart(16, '0');
    const where = kvmOn && !c.svme ? 'in guest mode, running an L2 guest' : c.cpl === 3 ? "in L1's user space" : ((map && symbolize(map, c.rip)) ?? `in L1's kernel${map ? ', in no function L1 listed' : " (L1's symbols were not read)"}`);
    const frames = map ? (stacks.get(c.cpu) ?? []).map((w) => symbolize(map, w)).filter((f): f is string => f !== undefined && !f.endsWith('+0x0')) : [];
    return `L1 CPU ${c.cpu}: ${c.halted ? 'halted, ' : ''}RIP ${rip} ${where}${frames.length ? `; on its stack: ${frames.slice(0, STACK_FRAMES).map((f) => `? ${f}`).join(' ')}` : ''}`;
  });
}

/** How much of a stuck CPU's stack is read, and how many of the text addresses on it are shown. */
const STACK_WORDS = 256;
const STACK_FRAMES = 16;

/** The 64-bit words of HMP `x /Ngx ADDR` output (`ADDR: 0xW 0xW`). Pure. */
export function parseMemoryWords(text: string): bigint[] {
  const out: bigint[] = [];
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    for (const w of line.slice(colon + 1).trim().split(/\s+/)) if (/^0x[0-9a-f]+$/.test(w)) out.push(BigInt(w));
  }
  return out;
}

interface ThreadLook {
  tid: number;
  name: string;
  state: string;
  runNs: number;
  wchan: string;
}

async function lookAtThreads(pid: number): Promise<Map<number, ThreadLook>> {
  const out = new Map<number, ThreadLook>();
  for (const t of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const base = `/proc/${pid}/task/${t}`;
    try {
      const [comm, stat, schedstat, wchan] = await Promise.all([readFile(`${base}/comm`, 'utf8'), readFile(`${base}/stat`, 'utf8'), readFile(`${base}/schedstat`, 'utf8'), readFile(`${base}/wchan`, 'utf8').catch(() => '')]);
      out.set(Number(t), { tid: Number(t), name: comm.trim(), state: parseTaskStat(stat).state, runNs: parseSchedstat(Buffer.from(schedstat)).runNs, wchan: wchan.trim() });
    } catch {
      // the thread ended while we looked
    }
  }
  return out;
}

/** Lines for the wedge report: L0's QEMU threads, then L1's CPUs. Never throws. */
export async function l1Postmortem(qemuPid: number, qmpSocket: string, kallsyms: string): Promise<string[]> {
  const before = await lookAtThreads(qemuPid);
  const cpus = lookAtCpus(qmpSocket, kallsyms);
  await new Promise((r) => setTimeout(r, THREAD_WINDOW_MS));
  const after = await lookAtThreads(qemuPid);
  const threads = [...after.values()]
    .map((t) => ({ ...t, pct: before.has(t.tid) ? ((t.runNs - before.get(t.tid)!.runNs) / (THREAD_WINDOW_MS * 1e6)) * 100 : 0 }))
    .filter((t) => /^CPU \d+\/TCG$/.test(t.name) || t.pct >= 1);
  return [`L0's QEMU (pid ${qemuPid}) threads over ${THREAD_WINDOW_MS / 1000} s: ${threads.map((t) => `${t.name} ${t.pct.toFixed(0)} % ${t.state}${t.wchan && t.wchan !== '0' ? ` (${t.wchan})` : ''}`).join(', ') || 'none readable'}`, ...(await cpus)];
}

/** L1's CPUs through L0's QEMU monitor: registers, then the stacks of those in L1's kernel. */
async function lookAtCpus(qmpSocket: string, kallsyms: string): Promise<string[]> {
  let qmp: QmpClient | undefined;
  try {
    qmp = await QmpClient.connect(qmpSocket, { timeoutMs: 3_000, commandTimeoutMs: MONITOR_TIMEOUT_MS });
    const hmp = (line: string, cpu?: number) => qmp!.execute<string>('human-monitor-command', { 'command-line': line, ...(cpu === undefined ? {} : { 'cpu-index': cpu }) });
    const cpus = parseInfoRegisters(await hmp('info registers -a'));
    const stacks = new Map<number, bigint[]>();
    for (const c of cpus.filter((x) => inL1Kernel(x, cpus) && x.rsp !== 0n)) stacks.set(c.cpu, parseMemoryWords(await hmp(`x /${STACK_WORDS}gx 0x${c.rsp.toString(16)}`, c.cpu).catch(() => '')));
    const map = await readFile(kallsyms, 'utf8').then(parseKallsyms, () => undefined);
    return describeCpus(cpus, map, stacks);
  } catch (e) {
    return [`L0's QEMU monitor did not give L1's registers (${errorMessage(e)}): its main loop may be stuck`];
  } finally {
    qmp?.close();
  }
}
