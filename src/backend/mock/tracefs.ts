// The simulated host's tracefs at /sys/kernel/tracing, as far as a collector uses it: private
// instances (mkdir/rmdir instances/<name>), events/<sys>/<event>/{enable,filter,format} with the real
// format files of the build host, buffer_size_kb, options/overwrite, trace_clock, trace_marker, the
// `trace` and per_cpu/cpuN/{trace,stats} files in the kernel's text formats. Events come from the host
// simulation (host-sim.ts). The global (top-level) setup is read-only here: the mock refuses any write
// outside an instance, so a collector that touches it fails in CI before it does so on a real host.
//
// Loss is simulated honestly: an instance renders at most MAX_LINES_PER_CPU_PER_SEC lines per CPU per
// second (the simulated tracer's throughput); the rest, and whatever exceeds the buffer size, is counted
// in per_cpu/cpuN/stats — as overrun in overwrite mode (oldest events replaced), as dropped events in
// no-overwrite mode (new events refused) — exactly where a collector reads loss on a real host.
import { parseEventFormat, type EventFormat } from '../../formats/tracefs/event-format.js';
import { type EventBatch, type EventSink, type MockHostSim, HOST_CPUS } from './host-sim.js';
import { MOCK_EVENT_FORMATS } from './tracefs-formats.js';
import { evalFilter, parseFilter, type FilterNode, type Value } from './tracefs-filter.js';
import { VMX_REASON_NUMBERS } from '../../formats/kvm-exit-hist.js';

export const TRACEFS = '/sys/kernel/tracing';
export const MAX_LINES_PER_CPU_PER_SEC = 1000;
/** Bytes one event takes in the ring buffer, for capacity (real events: 24-80 bytes). */
const EVENT_BYTES = 48;
const DEFAULT_BUFFER_KB = 1410;
/** Entries of a histogram trigger's table without `size=`: the kernel's default (TRACING_MAP_BITS_DEFAULT 11). */
const HIST_ENTRIES = 2048;
/** The CPU trace_marker writes land on (the simulated collector runs on a housekeeping CPU). */
const MARKER_CPU = 0;
const CLOCKS = ['local', 'global', 'counter', 'uptime', 'perf', 'mono', 'mono_raw', 'boot'];

const HEADER = [
  '#',
  '#                                _-----=> irqs-off/BH-disabled',
  '#                               / _----=> need-resched',
  '#                              | / _---=> hardirq/softirq',
  '#                              || / _--=> preempt-depth',
  '#                              ||| / _-=> migrate-disable',
  '#                              |||| /     delay',
  '#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION',
  '#              | |         |   |||||     |         |',
];

function fsError(code: string, path: string, what: string): Error {
  return Object.assign(new Error(`${code}: ${what} (simulated tracefs), '${path}'`), { code });
}

const FORMATS = new Map<string, EventFormat>(Object.entries(MOCK_EVENT_FORMATS).map(([k, text]) => [k, parseEventFormat(text)]));
/** sys → event names. */
const SYSTEMS = new Map<string, string[]>();
for (const key of FORMATS.keys()) {
  const [sys, ev] = key.split('/') as [string, string];
  SYSTEMS.set(sys, [...(SYSTEMS.get(sys) ?? []), ev]);
}

// ---- instances -----------------------------------------------------------------------------------

/**
 * What the events of one batch print, kept once for all of them: an event's line is made only when
 * the trace is read (most a storm records is overrun or never read), from its batch and its index.
 */
interface LineSource {
  head: string;
  event: string;
  body(i: number): string;
}

/** A CPU's ring buffer: event k is at ts[k], printed by src[k] as its event number nth[k]. */
interface CpuBuffer {
  ts: number[];
  src: LineSource[];
  nth: number[];
  head: number;
  overrun: number;
  dropped: number;
  written: number;
  budgetCarry: number;
}

class Instance implements EventSink {
  tracingOn = true;
  bufferKb = DEFAULT_BUFFER_KB;
  overwrite = true;
  clock = 'local';
  readonly enabled = new Set<string>();
  readonly filters = new Map<string, { text: string; node: FilterNode | undefined }>();
  readonly cpus = new Map<number, CpuBuffer>();
  /** A histogram trigger on kvm:kvm_exit (keys common_pid, isa, exit_reason): key → hits. Counted in
   *  the kernel, so neither the tracer's throughput nor the buffer size limits it; what does is its
   *  table: a hit whose key finds no free entry is dropped, as the kernel's tracing_map does. */
  hist: { trigger: string; size: number; counts: Map<string, number>; hits: number; dropped: number } | undefined;
  private seq = 0;

  constructor() {
    this.clear();
  }

  get recording(): boolean {
    return (this.tracingOn && this.enabled.size > 0) || this.hist !== undefined;
  }

  /** The `hist` file of kvm:kvm_exit, in the kernel's format. */
  renderHist(): string {
    const h = this.hist!;
    const lines = ['# event histogram', '#', `# trigger info: ${h.trigger} [active]`, '#', ''];
    for (const [key, n] of h.counts) {
      const [pid, reason] = key.split('|') as [string, string];
      lines.push(`{ common_pid: ${pid.padStart(10)}, isa: ${'1'.padStart(10)}, exit_reason: ${String(VMX_REASON_NUMBERS.get(reason) ?? 0).padStart(10)} } hitcount: ${String(n).padStart(10)}`);
    }
    lines.push('', 'Totals:', `    Hits: ${h.hits}`, `    Entries: ${h.counts.size}`, `    Dropped: ${h.dropped}`, '');
    return lines.join('\n');
  }

  clear(cpu?: number): void {
    for (const c of HOST_CPUS) if (cpu === undefined || cpu === c) this.cpus.set(c, { ts: [], src: [], nth: [], head: 0, overrun: 0, dropped: 0, written: 0, budgetCarry: 0 });
  }

  private capacity(): number {
    return Math.max(1, Math.floor((this.bufferKb * 1024) / EVENT_BYTES));
  }

  private push(b: CpuBuffer, ts: number, src: LineSource, nth: number): void {
    b.written++;
    if (b.ts.length - b.head >= this.capacity()) {
      if (!this.overwrite) {
        b.dropped++;
        return;
      }
      b.head++;
      b.overrun++;
      if (b.head > 65_536 && b.head * 2 > b.ts.length) {
        b.ts = b.ts.slice(b.head);
        b.src = b.src.slice(b.head);
        b.nth = b.nth.slice(b.head);
        b.head = 0;
      }
    }
    b.ts.push(ts);
    b.src.push(src);
    b.nth.push(nth);
  }

  private lose(b: CpuBuffer, n: number): void {
    b.written += n;
    if (this.overwrite) b.overrun += n;
    else b.dropped += n;
  }

  offer(batches: readonly EventBatch[], fromTs: number, toTs: number): void {
    if (!this.recording) return;
    const byCpu = new Map<number, { b: EventBatch; n: number }[]>();
    for (const b of batches) {
      const key = `${b.sys}/${b.event}`;
      if (this.hist && key === 'kvm/kvm_exit') {
        const k = `${b.pid}|${b.fields.exit_reason}`;
        if (this.hist.counts.has(k) || this.hist.counts.size < this.hist.size) this.hist.counts.set(k, (this.hist.counts.get(k) ?? 0) + b.count);
        else this.hist.dropped += b.count;
        this.hist.hits += b.count;
      }
      if (!this.tracingOn) continue;
      if (!this.enabled.has(key)) continue;
      const filter = this.filters.get(key)?.node;
      if (filter) {
        const get = (f: string): Value | undefined =>
          f === 'common_pid' ? b.pid : f === 'CPU' || f === 'cpu' ? b.cpu : f in b.fields ? b.fields[f] : f === 'COMM' || f === 'comm' ? b.comm : undefined;
        if (!evalFilter(filter, get)) continue;
      }
      const list = byCpu.get(b.cpu) ?? [];
      list.push({ b, n: b.count });
      byCpu.set(b.cpu, list);
    }
    const span = Math.max(0, toTs - fromTs);
    for (const [cpu, list] of byCpu) {
      const buf = this.cpus.get(cpu);
      if (!buf) continue;
      const total = list.reduce((s, x) => s + x.n, 0);
      const budgetF = buf.budgetCarry + MAX_LINES_PER_CPU_PER_SEC * span;
      const budget = Math.floor(budgetF);
      const keepShare = total > budget ? budget / total : 1;
      const ts: number[] = [];
      const src: LineSource[] = [];
      const nth: number[] = [];
      for (const { b, n } of list) {
        const keep = keepShare < 1 ? Math.floor(n * keepShare) : n;
        this.lose(buf, n - keep);
        const from: LineSource = { head: lineHead(b.comm, b.pid, cpu, b.event === 'sched_switch' ? 'd..2.' : 'd..1.'), event: b.event, body: b.body };
        for (let i = 0; i < keep; i++) {
          // Where the batch says (events that happen together: a tick and what it wakes), else spread
          // over the interval with a low-discrepancy sequence; order within a CPU by time.
          this.seq++;
          ts.push(fromTs + (b.at ? Math.min(b.at(i, span), span) : span * ((this.seq * 0.6180339887498949) % 1)));
          src.push(from);
          nth.push(i);
        }
      }
      buf.budgetCarry = Math.min(budgetF - ts.length, MAX_LINES_PER_CPU_PER_SEC);
      const order = ts.map((_, k) => k).sort((a, b) => ts[a]! - ts[b]!);
      for (const k of order) this.push(buf, ts[k]!, src[k]!, nth[k]!);
    }
  }

  marker(text: string, ts: number): void {
    if (!this.tracingOn) return;
    const buf = this.cpus.get(MARKER_CPU)!;
    const body = text.replace(/\n$/, '');
    this.push(buf, ts, { head: lineHead('node', process.pid, MARKER_CPU, '...1.'), event: 'tracing_mark_write', body: () => body }, 0);
  }

  renderTrace(cpu?: number): string {
    const bufs = [...this.cpus.entries()].filter(([c]) => cpu === undefined || c === cpu).map(([, b]) => b);
    let entries = 0;
    let written = 0;
    for (const b of bufs) {
      entries += b.ts.length - b.head;
      written += b.written;
    }
    const out = ['# tracer: nop', '#', `# entries-in-buffer/entries-written: ${entries}/${written}   #P:${HOST_CPUS.length}`, ...HEADER];
    // k-way merge by timestamp
    const idx = bufs.map((b) => b.head);
    for (;;) {
      let best = -1;
      for (let k = 0; k < bufs.length; k++) {
        const b = bufs[k]!;
        if (idx[k]! < b.ts.length && (best < 0 || b.ts[idx[k]!]! < bufs[best]!.ts[idx[best]!]!)) best = k;
      }
      if (best < 0) break;
      const b = bufs[best]!;
      const k = idx[best]!++;
      const src = b.src[k]!;
      out.push(lineOf(src.head, b.ts[k]!, src.event, src.body(b.nth[k]!)));
    }
    return `${out.join('\n')}\n`;
  }

  renderStats(cpu: number, now: number): string {
    const b = this.cpus.get(cpu)!;
    const entries = b.ts.length - b.head;
    const tsText = (t: number) => `${String(Math.floor(t)).padStart(5)}.${String(Math.floor((t % 1) * 1e6)).padStart(6, '0')}`;
    return [
      `entries: ${entries}`,
      `overrun: ${b.overrun}`,
      'commit overrun: 0',
      `bytes: ${entries * EVENT_BYTES}`,
      `oldest event ts: ${tsText(entries ? b.ts[b.head]! : 0)}`,
      `now ts: ${tsText(now)}`,
      `dropped events: ${b.dropped}`,
      'read events: 0',
      '',
    ].join('\n');
  }
}

/** What a line says before its timestamp: the same for every event of a batch. */
function lineHead(comm: string, pid: number, cpu: number, flags: string): string {
  return `${comm.padStart(16)}-${String(pid).padEnd(7)} [${String(cpu).padStart(3, '0')}] ${flags} `;
}

function lineOf(head: string, ts: number, event: string, body: string): string {
  return `${head}${ts.toFixed(6).padStart(12)}: ${event}: ${body}`;
}

// ---- the file system -----------------------------------------------------------------------------

export class MockTracefs {
  private readonly instances = new Map<string, Instance>();

  constructor(private readonly sim: MockHostSim) {}

  handles(path: string): boolean {
    return path === TRACEFS || path.startsWith(`${TRACEFS}/`);
  }

  /** Names of live instances (for tests: nothing may be left behind). */
  instanceNames(): string[] {
    return [...this.instances.keys()];
  }

  private split(path: string): { inst?: Instance; name?: string; rest: string[] } {
    const rest = path.slice(TRACEFS.length).split('/').filter((p) => p !== '');
    if (rest[0] === 'instances' && rest.length >= 2) {
      const inst = this.instances.get(rest[1]!);
      if (!inst) throw fsError('ENOENT', path, 'no such file or directory');
      return { inst, name: rest[1]!, rest: rest.slice(2) };
    }
    return { rest };
  }

  async readFile(path: string): Promise<string> {
    const { inst, rest } = this.split(path);
    const p = rest.join('/');
    if (rest[0] === 'events') return this.readEvents(path, rest.slice(1), inst);
    if (!inst) {
      switch (p) {
        case 'tracing_on':
          return '1\n';
        case 'current_tracer':
          return 'nop\n';
        case 'set_event':
          return '';
        case 'buffer_size_kb':
          return `${DEFAULT_BUFFER_KB}\n`;
        case 'trace_clock':
          return `${CLOCKS.map((c) => (c === 'local' ? `[${c}]` : c)).join(' ')}\n`;
        case 'available_events':
          return [...FORMATS.keys()].map((k) => `${k.replace('/', ':')}\n`).join('');
        case 'trace':
          return `# tracer: nop\n#\n# entries-in-buffer/entries-written: 0/0   #P:${HOST_CPUS.length}\n${HEADER.join('\n')}\n`;
        default:
          throw fsError('ENOENT', path, 'no such file or directory');
      }
    }
    this.sim.sync();
    switch (p) {
      case 'tracing_on':
        return `${inst.tracingOn ? 1 : 0}\n`;
      case 'buffer_size_kb':
        return `${inst.bufferKb}\n`;
      case 'current_tracer':
        return 'nop\n';
      case 'trace_clock':
        return `${CLOCKS.map((c) => (c === inst.clock ? `[${c}]` : c)).join(' ')}\n`;
      case 'options/overwrite':
        return `${inst.overwrite ? 1 : 0}\n`;
      case 'set_event':
        return [...inst.enabled].map((k) => `${k.replace('/', ':')}\n`).join('');
      case 'trace':
        return inst.renderTrace();
    }
    const cpuFile = /^per_cpu\/cpu(\d+)\/(trace|stats)$/.exec(p);
    if (cpuFile && inst.cpus.has(Number(cpuFile[1]))) {
      const cpu = Number(cpuFile[1]);
      return cpuFile[2] === 'trace' ? inst.renderTrace(cpu) : inst.renderStats(cpu, this.sim.nowTs());
    }
    throw fsError('ENOENT', path, 'no such file or directory');
  }

  private readEvents(path: string, rest: string[], inst: Instance | undefined): string {
    const [sys, ev, file] = rest;
    if (sys !== undefined && ev !== undefined && file !== undefined && rest.length === 3) {
      const key = `${sys}/${ev}`;
      if (!FORMATS.has(key)) throw fsError('ENOENT', path, 'no such file or directory');
      if (file === 'format') return MOCK_EVENT_FORMATS[key]!;
      if (file === 'id') return `${FORMATS.get(key)!.id}\n`;
      if (file === 'enable') return `${inst?.enabled.has(key) ? 1 : 0}\n`;
      if (file === 'filter') return `${inst?.filters.get(key)?.text ?? 'none'}\n`;
      if (file === 'trigger') return inst?.hist && key === 'kvm/kvm_exit' ? `${inst.hist.trigger} [active]\n` : '# Available triggers:\n# traceon traceoff snapshot stacktrace enable_event disable_event enable_hist disable_hist hist\n';
      if (file === 'hist' && key === 'kvm/kvm_exit') {
        if (!inst?.hist) return '# event histogram\n#\n\nTotals:\n    Hits: 0\n    Entries: 0\n    Dropped: 0\n';
        this.sim.sync();
        return inst.renderHist();
      }
    }
    throw fsError('ENOENT', path, 'no such file or directory');
  }

  async readdir(path: string): Promise<string[]> {
    if (path.replace(/\/$/, '') === `${TRACEFS}/instances`) return [...this.instances.keys()];
    const { inst, rest } = this.split(path.replace(/\/$/, ''));
    if (rest.length === 0) {
      const common = ['buffer_size_kb', 'current_tracer', 'events', 'options', 'per_cpu', 'set_event', 'trace', 'trace_clock', 'trace_marker', 'tracing_on'];
      return inst ? common : [...common, 'available_events', 'instances'];
    }
    if (rest[0] === 'events' && rest.length === 1) return [...SYSTEMS.keys(), 'enable'];
    if (rest[0] === 'events' && rest.length === 2 && SYSTEMS.has(rest[1]!)) return [...SYSTEMS.get(rest[1]!)!, 'enable', 'filter'];
    if (rest[0] === 'events' && rest.length === 3 && FORMATS.has(`${rest[1]}/${rest[2]}`)) return ['enable', 'filter', 'format', 'hist', 'id', 'trigger'];
    if (rest[0] === 'per_cpu' && rest.length === 1) return HOST_CPUS.map((c) => `cpu${c}`);
    if (rest[0] === 'options' && rest.length === 1) return ['overwrite', 'record-tgid'];
    throw fsError('ENOENT', path, 'no such file or directory');
  }

  async exists(path: string): Promise<boolean> {
    if (!this.handles(path)) return false;
    const ok = async (f: () => Promise<unknown>) => f().then(() => true, () => false);
    return (await ok(() => this.readdir(path))) || (await ok(() => this.readFile(path))) || /\/(trace_marker|per_cpu\/cpu\d+)$/.test(path);
  }

  async writeFile(path: string, data: string): Promise<void> {
    const { inst, rest } = this.split(path);
    if (!inst) throw fsError('EPERM', path, "the mock host's global tracing setup is not writable; use an instance");
    const p = rest.join('/');
    const v = data.trim();
    const bool = () => {
      if (v !== '0' && v !== '1') throw fsError('EINVAL', path, 'invalid argument');
      return v === '1';
    };
    this.sim.sync();
    if (p === 'tracing_on') inst.tracingOn = bool();
    else if (p === 'buffer_size_kb') {
      if (!/^\d+$/.test(v) || Number(v) === 0) throw fsError('EINVAL', path, 'invalid argument');
      inst.bufferKb = Number(v);
      inst.clear();
    } else if (p === 'options/overwrite') inst.overwrite = bool();
    else if (p === 'options/record-tgid') bool();
    else if (p === 'trace_clock') {
      if (!CLOCKS.includes(v)) throw fsError('EINVAL', path, 'invalid argument');
      inst.clock = v;
      inst.clear();
    } else if (p === 'trace_marker') inst.marker(data, this.sim.nowTs());
    else if (p === 'trace') inst.clear();
    else if (/^per_cpu\/cpu\d+\/trace$/.test(p)) inst.clear(Number(/cpu(\d+)/.exec(p)![1]));
    else if (rest[0] === 'events') this.writeEvents(path, inst, rest.slice(1), data);
    else throw fsError('ENOENT', path, 'no such file or directory');
  }

  private writeEvents(path: string, inst: Instance, rest: string[], data: string): void {
    const keys = (sys: string | undefined, ev: string | undefined): string[] => {
      if (sys === undefined) return [...FORMATS.keys()];
      if (!SYSTEMS.has(sys)) throw fsError('ENOENT', path, 'no such file or directory');
      if (ev === undefined) return SYSTEMS.get(sys)!.map((e) => `${sys}/${e}`);
      if (!FORMATS.has(`${sys}/${ev}`)) throw fsError('ENOENT', path, 'no such file or directory');
      return [`${sys}/${ev}`];
    };
    const file = rest[rest.length - 1];
    const targets = keys(rest.length >= 2 ? rest[0] : undefined, rest.length >= 3 ? rest[1] : undefined);
    if (file === 'enable') {
      const v = data.trim();
      if (v !== '0' && v !== '1') throw fsError('EINVAL', path, 'invalid argument');
      for (const k of targets) {
        if (k === 'ftrace/print') continue; // not an enable-able event
        if (v === '1') inst.enabled.add(k);
        else inst.enabled.delete(k);
      }
    } else if (file === 'filter') {
      for (const k of targets) {
        let node: FilterNode | undefined;
        try {
          node = parseFilter(data, FORMATS.get(k)!);
        } catch {
          if (targets.length === 1) throw fsError('EINVAL', path, 'invalid argument');
          continue; // a subsystem filter applies to the events that have its fields
        }
        if (node) inst.filters.set(k, { text: data.trim(), node });
        else inst.filters.delete(k);
      }
    } else if (file === 'trigger') {
      // The one trigger kvmlab writes: a kvm_exit histogram by thread, ISA and reason; "!" removes it.
      const v = data.trim();
      if (targets.length !== 1 || targets[0] !== 'kvm/kvm_exit' || !/^!?hist:keys=common_pid,isa,exit_reason(:|$)/.test(v)) throw fsError('EINVAL', path, 'invalid argument (the simulated tracefs knows only kvm_exit histograms by common_pid,isa,exit_reason)');
      if (v.startsWith('!')) {
        if (!inst.hist) throw fsError('ENOENT', path, 'no such trigger');
        inst.hist = undefined;
      } else {
        if (inst.hist) throw fsError('EEXIST', path, 'file exists');
        const size = Number(/:size=(\d+)/.exec(v)?.[1] ?? HIST_ENTRIES);
        inst.hist = { trigger: v, size, counts: new Map(), hits: 0, dropped: 0 };
      }
    } else throw fsError('ENOENT', path, 'no such file or directory');
  }

  async mkdir(path: string): Promise<void> {
    const m = new RegExp(`^${TRACEFS}/instances/([^/]+)/?$`).exec(path);
    if (!m) throw fsError('EPERM', path, 'operation not permitted');
    if (this.instances.has(m[1]!)) throw fsError('EEXIST', path, 'file exists');
    const inst = new Instance();
    this.instances.set(m[1]!, inst);
    this.sim.addSink(inst);
  }

  async rmdir(path: string): Promise<void> {
    const m = new RegExp(`^${TRACEFS}/instances/([^/]+)/?$`).exec(path);
    const inst = m ? this.instances.get(m[1]!) : undefined;
    if (!m || !inst) throw fsError('ENOENT', path, 'no such file or directory');
    // As the kernel: an instance with a live trigger is busy.
    if (inst.hist) throw fsError('EBUSY', path, 'device or resource busy');
    this.sim.removeSink(inst);
    this.instances.delete(m[1]!);
  }
}
