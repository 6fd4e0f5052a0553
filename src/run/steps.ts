// Executing one step against a VM. A step either completes (with rows in the metrics table and a
// detail for the step log) or throws: StepFailed when the guest or QEMU said no in a way the
// experiment did not allow for, anything else when the infrastructure broke.
import type { HostView, Vm } from '../backend/backend.js';
import type { Clock } from '../backend/clock.js';
import { QmpError, type QmpEvent } from '../backend/qmp-client.js';
import { isMeasuringWindow, type Step } from '../experiment/schema.js';
import type { RowSink } from '../model/metrics.js';

export class StepFailed extends Error {
  constructor(
    message: string,
    readonly detail?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'StepFailed';
  }
}

export interface StepContext {
  vm: Vm;
  /** The host as the backend gives it: a `host:` step runs there (on the simulated host under the mock). */
  host: HostView;
  /** The backend's clock: windows, waits and deadlines go by it. */
  clock: Clock;
  arch: 'x86_64' | 'ppc64';
  emit: RowSink;
  allowHostCommands: boolean;
  signal: AbortSignal;
  /** Event sequence number where the previous step started: wait_event looks from there. */
  eventsFrom: number;
  /** Re-read QEMU's threads and pin new vCPU threads; called after every CPU step. */
  refreshThreads(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS: Record<Step['kind'], number> = {
  guest: 120_000,
  offline: 60_000,
  online: 60_000,
  hotplug: 30_000,
  unplug: 120_000, // pseries under TCG takes ~30 s to complete an unplug
  qmp: 30_000,
  wait_event: 60_000,
  wait: 0,
  sample: 0,
  host: 60_000,
};

export function stepTimeout(step: Step): number {
  return step.timeoutMs ?? DEFAULT_TIMEOUT_MS[step.kind];
}

/** How long a step is declared to last: a sample: or wait: window; 0 for a step that takes what it takes. */
export function declaredMs(step: Step): number {
  return isMeasuringWindow(step) ? step.durationMs : 0;
}

/** The declared windows of a run's steps, added up. */
export function declaredWindowsMs(steps: readonly Step[]): number {
  return steps.reduce((sum, step) => sum + declaredMs(step), 0);
}

/** Runs the step; returns a JSON-able detail for steps.jsonl. */
export async function runStep(step: Step, ctx: StepContext): Promise<Record<string, unknown>> {
  const timeout = stepTimeout(step);
  const { vm, emit } = ctx;
  const name = step.name;
  switch (step.kind) {
    case 'guest': {
      const r = await vm.guest.exec(step.cmd, timeout);
      emit({ step: name, entity: 'guest', metric: 'guest.exit_status', value: r.status ?? -1, unit: 'status' });
      if (r.timedOut) throw new StepFailed(`guest command timed out after ${timeout} ms: ${step.cmd}`);
      if (step.check && r.status !== 0) throw new StepFailed(`guest command exited ${r.status}: ${step.cmd}${r.stderr ? `: ${r.stderr.trim()}` : ''}`);
      if (step.record) {
        const value = Number(r.stdout.trim());
        if (!Number.isFinite(value) || r.stdout.trim() === '') throw new StepFailed(`guest command for ${step.record} printed "${r.stdout.trim().slice(0, 80)}", not a number`);
        emit({ step: name, entity: 'guest', metric: `guest.${step.record}`, value, unit: '' });
      }
      return { status: r.status, stdout: r.stdout.slice(0, 4096), stderr: r.stderr.slice(0, 4096), durationMs: r.durationMs };
    }
    case 'offline':
    case 'online': {
      const file = `/sys/devices/system/cpu/cpu${step.cpu}/online`;
      const want = step.kind === 'online' ? 1 : 0;
      const w = await vm.guest.exec(`echo ${want} > ${file}`, timeout);
      if (w.status !== 0) throw new StepFailed(`the guest refused to ${step.kind} CPU ${step.cpu}: ${w.stderr.trim() || `exit ${w.status}`}`);
      const r = await vm.guest.exec(`cat ${file}`, timeout);
      const state = Number(r.stdout.trim());
      emit({ step: name, entity: `cpu${step.cpu}`, metric: 'guest.cpu_online', value: state, unit: 'bool' });
      if (state !== want) throw new StepFailed(`CPU ${step.cpu} reads back ${r.stdout.trim()} after writing ${want}`);
      await emitOnlineCount(ctx, name, timeout);
      return { cpu: step.cpu, online: state };
    }
    case 'hotplug':
      return hotplug(step, ctx, timeout);
    case 'unplug':
      return unplug(step, ctx, timeout);
    case 'qmp': {
      try {
        const ret = await vm.qmp.execute(step.execute, step.arguments, timeout);
        return { return: ret };
      } catch (e) {
        if (e instanceof QmpError && step.allowError) return { error: { class: e.errorClass, desc: e.desc } };
        if (e instanceof QmpError) throw new StepFailed(e.message);
        throw e;
      }
    }
    case 'wait_event': {
      try {
        const ev = await vm.qmp.waitForEvent(step.event, step.match, timeout, ctx.eventsFrom - 1);
        emit({ step: name, entity: step.event, metric: 'event.received', value: 1, unit: 'bool' });
        return { event: ev.event, data: ev.data, receivedAt: ev.receivedAt };
      } catch (e) {
        if (!vm.qmp.isOpen) throw e;
        emit({ step: name, entity: step.event, metric: 'event.received', value: 0, unit: 'bool' });
        throw new StepFailed(`no ${step.event}${step.match ? ` matching ${JSON.stringify(step.match)}` : ''} within ${timeout} ms`);
      }
    }
    case 'wait':
    case 'sample':
      await ctx.clock.sleep(step.durationMs, ctx.signal);
      return { durationMs: step.durationMs };
    case 'host': {
      if (!ctx.allowHostCommands) throw new StepFailed('host commands need --allow-host-commands');
      const [file, ...args] = step.argv as [string, ...string[]];
      const r = await ctx.host.run(file, args, timeout, ctx.signal);
      emit({ step: name, entity: 'host', metric: 'host.exit_status', value: r.exitCode, unit: 'status' });
      if (r.exitCode !== 0) throw new StepFailed(`host command ${step.argv.join(' ')} failed: exit ${r.exitCode}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n')[0]}` : ''}`);
      return { exitCode: r.exitCode, stdout: r.stdout.slice(0, 4096), stderr: r.stderr.slice(0, 4096) };
    }
  }
}

async function emitOnlineCount(ctx: StepContext, step: string, timeout: number): Promise<void> {
  const r = await ctx.vm.guest.exec('cat /sys/devices/system/cpu/online', timeout);
  if (r.status !== 0) return;
  const n = r.stdout
    .trim()
    .split(',')
    .reduce((sum, part) => {
      const [lo, hi] = part.split('-').map(Number);
      return sum + (hi === undefined ? 1 : hi - lo! + 1);
    }, 0);
  ctx.emit({ step, entity: 'guest', metric: 'guest.online_cpus', value: n, unit: 'count' });
}

/** Wait until the unplugged device's vCPU is no longer in query-cpus-fast. */
async function vcpuGone(ctx: StepContext, id: string, deadline: number): Promise<void> {
  const path = `/machine/peripheral/${id}`;
  for (;;) {
    const cpus = await ctx.vm.qmp.execute<{ 'qom-path': string }[]>('query-cpus-fast');
    if (!cpus.some((c) => c['qom-path'] === path)) return;
    if (ctx.clock.now() > deadline) throw new Error(`${id} still in query-cpus-fast after its eject`);
    await ctx.clock.sleep(200);
  }
}

interface HotpluggableCpu {
  type: string;
  'vcpus-count': number;
  props: Record<string, number>;
  'qom-path'?: string;
}

const PROP_ORDER = ['socket-id', 'die-id', 'cluster-id', 'core-id', 'thread-id', 'node-id'];

/** The first free slot matching `wanted`, in topology order. */
export function chooseSlot(slots: HotpluggableCpu[], wanted: Record<string, number>): HotpluggableCpu | undefined {
  const key = (s: HotpluggableCpu) => PROP_ORDER.map((p) => s.props[p] ?? 0);
  return slots
    .filter((s) => !s['qom-path'] && Object.entries(wanted).every(([k, v]) => s.props[k] === v))
    .sort((a, b) => {
      const ka = key(a);
      const kb = key(b);
      for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! - kb[i]!;
      return 0;
    })[0];
}

async function hotplug(step: Extract<Step, { kind: 'hotplug' }>, ctx: StepContext, timeout: number): Promise<Record<string, unknown>> {
  const { qmp } = ctx.vm;
  const slots = await qmp.execute<HotpluggableCpu[]>('query-hotpluggable-cpus', undefined, timeout);
  const slot = chooseSlot(slots, step.props);
  if (!slot) {
    const free = slots.filter((s) => !s['qom-path']).map((s) => JSON.stringify(s.props));
    throw new StepFailed(`no free CPU slot${Object.keys(step.props).length ? ` matching ${JSON.stringify(step.props)}` : ''}; free slots: ${free.join(' ') || 'none (raise guest.maxcpus)'}`);
  }
  const n = slot.props['core-id'] ?? slot.props['socket-id'] ?? 0;
  const id = step.id ?? (ctx.arch === 'ppc64' ? `core${n}` : `cpu${n}`);
  const from = qmp.lastSeq;
  try {
    await qmp.execute('device_add', { driver: slot.type, id, ...slot.props }, timeout);
  } catch (e) {
    if (e instanceof QmpError) throw new StepFailed(e.message);
    throw e;
  }
  let ost: QmpEvent | undefined;
  if (ctx.arch === 'x86_64') {
    // ACPI tells the guest; QEMU reports the guest's _OST answer. pseries device_add emits nothing.
    ost = await qmp.waitForEvent('ACPI_DEVICE_OST', { info: { device: id, source: 1 } }, Math.min(timeout, 10_000), from).catch(() => undefined);
  }
  await ctx.refreshThreads();
  ctx.emit({ step: step.name, entity: id, metric: 'cpu.hotplugged', value: 1, unit: 'bool' });
  return { id, driver: slot.type, props: slot.props, ost: ost?.data };
}

async function unplug(step: Extract<Step, { kind: 'unplug' }>, ctx: StepContext, timeout: number): Promise<Record<string, unknown>> {
  const { qmp } = ctx.vm;
  const { clock } = ctx;
  const from = qmp.lastSeq;
  const started = clock.now();
  try {
    await qmp.execute('device_del', { id: step.id }, timeout);
  } catch (e) {
    if (e instanceof QmpError) throw new StepFailed(e.message);
    throw e;
  }
  // The guest answers with DEVICE_DELETED when it let go, or (pseries) DEVICE_UNPLUG_GUEST_ERROR when
  // it refused. On x86 the ACPI eject is also visible on its own: _OST "eject succeeded" and the vCPU
  // gone from query-cpus-fast. QEMU 7.2 under TCG ejects the CPU but never sends the CPU's own
  // DEVICE_DELETED, so "removed" and "DEVICE_DELETED seen" are recorded as two facts.
  const deadline = started + timeout;
  // The guest's "eject in progress" _OST names the device and its ACPI slot; the "eject succeeded"
  // one that follows names only the slot (QEMU 7.2: the device is gone by then), so it is matched by
  // the slot this device's own request reported.
  const ejected =
    ctx.arch === 'x86_64'
      ? qmp
          .waitForEvent('ACPI_DEVICE_OST', { info: { device: step.id, source: 3 } }, timeout, from)
          .then((request) => qmp.waitForEvent('ACPI_DEVICE_OST', { info: { slot: (request.data.info as { slot?: string } | undefined)?.slot, source: 3, status: 0 } }, Math.max(0, deadline - clock.now()), from))
          .then(async (e) => {
            await vcpuGone(ctx, step.id, deadline);
            return { kind: 'ejected' as const, e };
          })
      : new Promise<never>(() => undefined);
  const deleted = qmp.waitForEvent('DEVICE_DELETED', { device: step.id }, timeout, from).then((e) => ({ kind: 'deleted' as const, e }));
  let outcome: { kind: 'deleted' | 'refused' | 'ejected'; e: QmpEvent } | { kind: 'timeout'; e: undefined } = await Promise.race([
    deleted,
    qmp.waitForEvent('DEVICE_UNPLUG_GUEST_ERROR', { device: step.id }, timeout, from).then((e) => ({ kind: 'refused' as const, e })),
    ejected,
  ]).catch((e: Error) => {
    if (!qmp.isOpen) throw e;
    return { kind: 'timeout' as const, e: undefined };
  });
  if (outcome.kind === 'ejected') {
    // Give the device's own DEVICE_DELETED a moment to follow the eject.
    const ejectedOutcome = outcome;
    const grace = Math.max(0, Math.min(5000, deadline - clock.now()));
    outcome = await Promise.race([deleted, new Promise<typeof ejectedOutcome>((r) => clock.deadline(grace, () => r(ejectedOutcome)))]).catch(() => ejectedOutcome);
  }
  const removedAt = outcome.kind === 'deleted' || outcome.kind === 'ejected' ? outcome.e.receivedAt : undefined;
  const related = qmp.events.filter((e) => e.seq > from && (JSON.stringify(e.data).includes(`"${step.id}"`) || e.event === 'ACPI_DEVICE_OST')).map((e) => ({ event: e.event, data: e.data, t: e.receivedAt }));
  const guestLog = await ctx.vm.guest.exec('dmesg | tail -n 8', 30_000).then(
    (r) => r.stdout.trim().split('\n'),
    () => [] as string[],
  );
  const emit = (metric: string, value: number, unit = 'bool') => ctx.emit({ step: step.name, entity: step.id, metric, value, unit });
  emit('unplug.removed', removedAt !== undefined ? 1 : 0);
  emit('unplug.deleted', outcome.kind === 'deleted' ? 1 : 0);
  emit('unplug.refused', outcome.kind === 'refused' ? 1 : 0);
  emit('unplug.guest_errors', related.filter((e) => e.event === 'DEVICE_UNPLUG_GUEST_ERROR').length, 'count');
  if (removedAt !== undefined) emit('unplug.latency_s', (removedAt - started) / 1000, 's');
  await ctx.refreshThreads();
  const result = outcome.kind === 'deleted' || outcome.kind === 'ejected' ? 'removed' : outcome.kind;
  const detail = { id: step.id, outcome: outcome.kind, waitedMs: clock.now() - started, events: related, guestLog };
  if (step.expect !== 'any' && result !== step.expect) {
    throw new StepFailed(`unplug of ${step.id}: expected ${step.expect}, got ${result === 'timeout' ? `no DEVICE_DELETED and no completed eject within ${timeout} ms` : result}`, detail);
  }
  return detail;
}
