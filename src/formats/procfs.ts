// Pure parsers for the procfs files kvmlab samples: per-thread schedstat/stat/status,
// /proc/interrupts and /proc/stat. They take the file's text (the two the sampler reads ten times a
// second per thread, schedstat and the stat's CPU fields, take its bytes as read) and never touch the
// filesystem, so they are tested on text captured from a real host (test/fixtures/procfs/).
//
// Malformed input throws ProcParseError naming the file kind and what was wrong; nothing is
// silently defaulted except fields that older kernels legitimately omit (documented per field).
import { KvmlabError } from '../errors.js';
import { parseCpuList } from '../model/cpulist.js';

export class ProcParseError extends KvmlabError {
  constructor(what: string, problem: string, text?: string) {
    super(`cannot parse ${what}: ${problem}${text === undefined ? '' : ` (input: ${preview(text)})`}`);
  }
}

function preview(text: string): string {
  const oneLine = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
  return oneLine;
}

const DECIMAL = /^-?\d+$/;

/** A decimal integer field; throws if it is not one or does not fit a double exactly. */
function int(what: string, name: string, s: string | undefined): number {
  if (s === undefined || !DECIMAL.test(s)) throw new ProcParseError(what, `${name} is not an integer: ${JSON.stringify(s)}`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new ProcParseError(what, `${name} is out of the exact integer range: ${s}`);
  return n;
}

/** Bytes [start, end) of `b` as text, for error messages and for int()'s rules. */
const text = (b: Uint8Array, start: number, end: number) => Buffer.from(b.buffer, b.byteOffset + start, end - start).toString('utf8');

/**
 * int() of the field at bytes [start, end) of `b`, read without making a string: plain digits are
 * summed as they come; anything else (a sign, a stray byte, an empty field, too many digits) is
 * handed to int() as text, which holds it to the same rules and words.
 */
function intAt(what: string, name: string, b: Uint8Array, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = b[i]! - 0x30;
    if (d < 0 || d > 9) return int(what, name, text(b, start, end));
    n = n * 10 + d;
  }
  return start < end && n <= Number.MAX_SAFE_INTEGER ? n : int(what, name, text(b, start, end));
}

/** The whitespace of /\s/ in ASCII: space, \t, \n, \v, \f, \r. */
const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);

// ---------------------------------------------------------------------------------------------
// /proc/PID/task/TID/schedstat

export interface Schedstat {
  /** Time spent on a CPU, ns (sum_exec_runtime). */
  runNs: number;
  /** Time spent runnable and waiting on a run queue, ns (run_delay). */
  waitNs: number;
  /** Number of times it was run on a CPU (pcount). */
  timeslices: number;
}

/**
 * `/proc/PID/task/TID/schedstat`: three decimal numbers, "runNs waitNs timeslices".
 * Numbers are ns as doubles: exact up to 2^53 ns (about 104 days of CPU time per thread).
 */
export function parseSchedstat(b: Uint8Array, end = b.length): Schedstat {
  const what = 'schedstat';
  let runNs = 0;
  let waitNs = 0;
  let timeslices = 0;
  let k = 0; // numbers seen
  for (let i = 0; i < end; k++) {
    while (i < end && isSpace(b[i]!)) i++;
    if (i === end) break;
    const start = i;
    while (i < end && !isSpace(b[i]!)) i++;
    if (k === 0) runNs = intAt(what, 'run time', b, start, i);
    else if (k === 1) waitNs = intAt(what, 'wait time', b, start, i);
    else if (k === 2) timeslices = intAt(what, 'timeslices', b, start, i);
  }
  if (k !== 3) throw new ProcParseError(what, `expected 3 numbers, got ${k}`, text(b, 0, end));
  return { runNs, waitNs, timeslices };
}

// ---------------------------------------------------------------------------------------------
// /proc/PID/task/TID/stat (proc(5) numbering: field 1 is pid, 2 comm, 3 state, …)

export interface TaskStat {
  pid: number;
  /** Thread name exactly as the kernel has it (may contain spaces and parentheses). */
  comm: string;
  /** One-letter state: R S D T t X Z P I. */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  flags: number;
  minflt: number;
  majflt: number;
  /** Field 14: user time incl. guest time, in clock ticks (USER_HZ, normally 100/s). */
  utimeTicks: number;
  /** Field 15: system time, in clock ticks. */
  stimeTicks: number;
  priority: number;
  nice: number;
  /** Field 20. */
  numThreads: number;
  /** Field 22: start time after boot, in clock ticks. */
  startTimeTicks: number;
  /** Field 23: virtual memory size, bytes. */
  vsizeBytes: number;
  /** Field 24: resident set size, pages. */
  rssPages: number;
  /** Field 39: CPU it last ran on. */
  processor: number;
  /** Field 40. */
  rtPriority: number;
  /** Field 41: scheduling policy (SCHED_OTHER 0, FIFO 1, RR 2, BATCH 3, IDLE 5, DEADLINE 6). */
  policy: number;
  /** Field 42. */
  delayacctBlkioTicks: number;
  /** Field 43: time spent running a guest vCPU, clock ticks (also counted in utime). */
  guestTimeTicks: number;
  /** Field 44. */
  cguestTimeTicks: number;
  /**
   * Every field as text, indexed by proc(5) field number minus one (`fields[13]` is utime), for the
   * ones not decoded above. Some (rsslim, addresses) exceed 2^53 and must be read with BigInt.
   */
  fields: readonly string[];
}

/** Fields through guest_time/cguest_time (44) exist on every kernel since 2.6.24. */
const TASK_STAT_MIN_FIELDS = 44;
/** proc(5) field numbers the sampler reads on every tick. */
const FIELD_PROCESSOR = 39;
const FIELD_GUEST_TIME = 43;

/**
 * `/proc/PID/stat` or `/proc/PID/task/TID/stat`. The comm (field 2) is whatever the task set with
 * prctl/`/proc/…/comm` and may contain spaces and ')' — it runs from the first '(' to the LAST ')'.
 */
export function parseTaskStat(text: string): TaskStat {
  const what = 'task stat';
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new ProcParseError(what, 'no "(comm)" field', text);
  const pidText = text.slice(0, open).trim();
  const comm = text.slice(open + 1, close);
  // the kernel separates the fields by one space and ends the line with a newline
  const rest = text.slice(close + 2).trimEnd().split(' ');
  const fields = [pidText, comm, ...rest];
  if (fields.length < TASK_STAT_MIN_FIELDS) {
    throw new ProcParseError(what, `expected at least ${TASK_STAT_MIN_FIELDS} fields, got ${fields.length}`, text);
  }
  const state = fields[2]!;
  if (!/^[A-Za-z]$/.test(state)) throw new ProcParseError(what, `state (field 3) is not one letter: ${JSON.stringify(state)}`, text);
  const f = (n: number, name: string): number => int(what, `${name} (field ${n})`, fields[n - 1]);
  return {
    pid: f(1, 'pid'),
    comm,
    state,
    ppid: f(4, 'ppid'),
    pgrp: f(5, 'pgrp'),
    session: f(6, 'session'),
    flags: f(9, 'flags'),
    minflt: f(10, 'minflt'),
    majflt: f(12, 'majflt'),
    utimeTicks: f(14, 'utime'),
    stimeTicks: f(15, 'stime'),
    priority: f(18, 'priority'),
    nice: f(19, 'nice'),
    numThreads: f(20, 'num_threads'),
    startTimeTicks: f(22, 'starttime'),
    vsizeBytes: f(23, 'vsize'),
    rssPages: f(24, 'rss'),
    processor: f(FIELD_PROCESSOR, 'processor'),
    rtPriority: f(40, 'rt_priority'),
    policy: f(41, 'policy'),
    delayacctBlkioTicks: f(42, 'delayacct_blkio_ticks'),
    guestTimeTicks: f(FIELD_GUEST_TIME, 'guest_time'),
    cguestTimeTicks: f(44, 'cguest_time'),
    fields,
  };
}

/** What the per-thread sampler needs of a task's stat, ten times a second per thread. */
export interface TaskStatCpu {
  /** Field 39: the CPU the task last ran on. */
  processor: number;
  /** Field 43: time spent running a guest vCPU, clock ticks. */
  guestTimeTicks: number;
}

/**
 * The sampler's read of a task stat, from its bytes as read: fields 39 and 43 only, found by walking
 * the separators after the comm instead of splitting every field, and summed from their digits
 * without a string (see test/bench/sampler-overhead.mjs). Held to the same rules as parseTaskStat
 * for what it reads. The comm is found by its last ')' as parseTaskStat finds it: no byte of a
 * multi-byte UTF-8 character is 0x29.
 */
export function parseTaskStatCpu(b: Uint8Array, end = b.length): TaskStatCpu {
  const what = 'task stat';
  const close = end > 0 ? b.lastIndexOf(0x29, end - 1) : -1; // ')'
  const open = b.indexOf(0x28); // '('
  if (close < 0 || open < 0 || open > close) throw new ProcParseError(what, 'no "(comm)" field', text(b, 0, end));
  let processor = 0;
  let guest = 0;
  // field 3 starts two bytes after the comm's ')', each next one after a single space; n is the
  // field that `start` is in (a loop over the bytes, not an indexOf per field: a third of the cost)
  let n = 3;
  for (let i = close + 2, start = i; i < end && n < TASK_STAT_MIN_FIELDS; i++) {
    if (b[i] !== 0x20) continue;
    if (n === FIELD_PROCESSOR) processor = intAt(what, `processor (field ${FIELD_PROCESSOR})`, b, start, i);
    else if (n === FIELD_GUEST_TIME) guest = intAt(what, `guest_time (field ${FIELD_GUEST_TIME})`, b, start, i);
    n++;
    start = i + 1;
  }
  if (n < TASK_STAT_MIN_FIELDS) throw new ProcParseError(what, `expected at least ${TASK_STAT_MIN_FIELDS} fields, got ${n}`, text(b, 0, end));
  return { processor, guestTimeTicks: guest };
}

// ---------------------------------------------------------------------------------------------
// /proc/PID/task/TID/status

export interface TaskStatus {
  /** `Name:` with the kernel's escapes (`\n`, `\\`) undone. */
  name: string;
  /** Single letter of `State:` ("S" from "S (sleeping)"). */
  state: string;
  tgid: number;
  pid: number;
  ppid: number;
  /** `Threads:` (of the whole thread group). */
  threads: number;
  /** Expanded `Cpus_allowed_list`. */
  cpusAllowedList: number[];
  voluntaryCtxtSwitches: number;
  nonvoluntaryCtxtSwitches: number;
  /** Every `Key: value` line, value trimmed (Name untrimmed but unescaped). */
  raw: Readonly<Record<string, string>>;
}

/** `/proc/PID/status` or `/proc/PID/task/TID/status`. */
export function parseTaskStatus(text: string): TaskStatus {
  const what = 'task status';
  const raw: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new ProcParseError(what, `line without "Key:": ${JSON.stringify(line)}`);
    const key = line.slice(0, colon);
    let value = line.slice(colon + 1);
    // Name is printed as "Name:\t<comm>"; a comm may legitimately end in spaces, so only the tab goes.
    value = key === 'Name' ? value.replace(/^\t/, '') : value.trim();
    raw[key] = value;
  }
  const need = (key: string): string => {
    const v = raw[key];
    if (v === undefined) throw new ProcParseError(what, `no "${key}:" line`, text);
    return v;
  };
  const num = (key: string): number => int(what, key, need(key));
  const stateText = need('State');
  const state = stateText.charAt(0);
  if (!/^[A-Za-z]$/.test(state)) throw new ProcParseError(what, `State is not a letter: ${JSON.stringify(stateText)}`);
  let cpusAllowedList: number[];
  try {
    cpusAllowedList = parseCpuList(need('Cpus_allowed_list'));
  } catch (e) {
    throw new ProcParseError(what, `Cpus_allowed_list: ${e instanceof Error ? e.message : String(e)}`);
  }
  return {
    name: unescapeComm(need('Name')),
    state,
    tgid: num('Tgid'),
    pid: num('Pid'),
    ppid: num('PPid'),
    threads: num('Threads'),
    cpusAllowedList,
    voluntaryCtxtSwitches: num('voluntary_ctxt_switches'),
    nonvoluntaryCtxtSwitches: num('nonvoluntary_ctxt_switches'),
    raw,
  };
}

/** status escapes a comm's newline as "\n" and backslash as "\\" (seq_escape_str, ESCAPE_SPECIAL). */
function unescapeComm(s: string): string {
  if (!s.includes('\\')) return s;
  return s.replace(/\\([n\\])/g, (_m, c: string) => (c === 'n' ? '\n' : '\\'));
}

// ---------------------------------------------------------------------------------------------
// /proc/interrupts

export interface InterruptRow {
  /** The label before ':' — an IRQ number ("24") or a per-CPU counter ("NMI", "LOC", "PIN", "PIW", …). */
  irq: string;
  /**
   * One count per CPU column, in header order. Rows the kernel prints with fewer columns (x86 `ERR`
   * and `MIS` are system-wide single counts) have fewer entries; they are never padded.
   */
  counts: number[];
  /** The rest of the line (chip, hwirq, trigger, handler names, or a text like "Local timer interrupts"), trimmed. */
  description: string;
}

export interface Interrupts {
  /** CPU numbers from the header ("CPU0 CPU1 …"); only online CPUs appear. */
  cpus: number[];
  rows: InterruptRow[];
}

/** `/proc/interrupts`. */
export function parseInterrupts(text: string): Interrupts {
  const what = '/proc/interrupts';
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length && lines[i]!.trim() === '') i++;
  const header = lines[i];
  if (header === undefined) throw new ProcParseError(what, 'empty input');
  const cpus: number[] = [];
  for (const tok of header.trim().split(/\s+/)) {
    const m = /^CPU(\d+)$/.exec(tok);
    if (!m) throw new ProcParseError(what, `header token ${JSON.stringify(tok)} is not "CPUn"`, header);
    cpus.push(Number(m[1]));
  }
  const rows: InterruptRow[] = [];
  for (i++; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const colon = line.indexOf(':');
    if (colon < 0) throw new ProcParseError(what, `line ${i + 1} has no "IRQ:" label`, line);
    const irq = line.slice(0, colon).trim();
    if (irq === '' || /\s/.test(irq)) throw new ProcParseError(what, `line ${i + 1} has a bad label ${JSON.stringify(irq)}`, line);
    // Take up to one count per CPU column, stopping at the first token that is not a number.
    const counts: number[] = [];
    let pos = colon + 1;
    const n = line.length;
    while (counts.length < cpus.length) {
      while (pos < n && line.charCodeAt(pos) === 32) pos++;
      let end = pos;
      while (end < n && isDigit(line.charCodeAt(end))) end++;
      if (end === pos || (end < n && line.charCodeAt(end) !== 32 && line.charCodeAt(end) !== 9)) break;
      counts.push(int(what, `${irq} count`, line.slice(pos, end)));
      pos = end;
    }
    if (counts.length === 0) throw new ProcParseError(what, `row ${irq} has no counts`, line);
    rows.push({ irq, counts, description: line.slice(pos).trim() });
  }
  return { cpus, rows };
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

// ---------------------------------------------------------------------------------------------
// /proc/stat

export interface ProcStatCpu {
  /** 'all' for the aggregate "cpu" line, else the CPU number of "cpuN". */
  cpu: number | 'all';
  /** Ticks (USER_HZ). `user` includes `guest` and `nice` includes `guestNice`. */
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
  guest: number;
  guestNice: number;
}

const PROC_STAT_COLUMNS = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal', 'guest', 'guestNice'] as const;

/**
 * The `cpu` and `cpuN` lines of `/proc/stat`, in file order ('all' first). Columns the kernel did
 * not print (iowait onwards are missing on pre-2.6 / pre-2.6.33 kernels) are 0; fewer than the
 * first four is an error. Other lines (intr, ctxt, …) are ignored.
 */
export function parseProcStat(text: string): ProcStatCpu[] {
  const what = '/proc/stat';
  const out: ProcStatCpu[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('cpu')) continue;
    const toks = line.trim().split(/\s+/);
    const label = toks[0]!;
    let cpu: number | 'all';
    if (label === 'cpu') cpu = 'all';
    else if (/^cpu\d+$/.test(label)) cpu = Number(label.slice(3));
    else throw new ProcParseError(what, `unknown label ${JSON.stringify(label)}`, line);
    const values = toks.slice(1);
    if (values.length < 4) throw new ProcParseError(what, `${label} has ${values.length} columns, expected at least 4`, line);
    if (values.length > PROC_STAT_COLUMNS.length) {
      throw new ProcParseError(what, `${label} has ${values.length} columns, expected at most ${PROC_STAT_COLUMNS.length}`, line);
    }
    const row: ProcStatCpu = { cpu, user: 0, nice: 0, system: 0, idle: 0, iowait: 0, irq: 0, softirq: 0, steal: 0, guest: 0, guestNice: 0 };
    values.forEach((v, k) => {
      row[PROC_STAT_COLUMNS[k]!] = int(what, `${label} ${PROC_STAT_COLUMNS[k]!}`, v);
    });
    out.push(row);
  }
  if (out.length === 0) throw new ProcParseError(what, 'no "cpu" lines', text);
  return out;
}
