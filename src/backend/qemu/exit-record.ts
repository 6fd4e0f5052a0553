// Proof of what exit control took effect: the disable-exits shim's record, read once QMP answers
// (QEMU enables the capability and creates its vCPUs before its main loop, so by then the record is
// complete), checked against what the variant asked for.
import { formatMask, type ShimRecord } from '../../model/exits.js';
import type { ExitControl } from '../../plan/vm.js';

export interface ExitOutcome {
  /** The mask KVM accepted (0 when it refused). Undefined when no exit control was asked. */
  disableExitsMask?: number;
  /** The halt_poll_ns KVM accepted for this VM. */
  haltPollNs?: number;
  /** Why the VM did not get what it asked for; empty when it did. */
  problems: string[];
}

export function checkExitRecord(control: ExitControl, haltPollNs: number | undefined, records: readonly ShimRecord[]): ExitOutcome {
  const out: ExitOutcome = { problems: [] };
  for (const r of records) {
    if (r.event === 'config_error') out.problems.push(`the disable-exits shim ignored ${r.variable}: ${r.reason}`);
  }
  if (control.mode !== 'none') {
    const applied = records.filter((r) => r.event === 'disable_exits');
    const notRequested = records.find((r) => r.event === 'disable_exits_not_requested');
    const last = applied[applied.length - 1];
    if (!last) {
      out.disableExitsMask = 0;
      out.problems.push(
        notRequested
          ? `QEMU never asked KVM for disabled exits (the shim wanted ${formatMask(notRequested.wanted)}; was -overcommit cpu-pm=on ignored?)`
          : 'the disable-exits shim wrote no record of KVM_ENABLE_CAP(KVM_CAP_X86_DISABLE_EXITS): was LD_PRELOAD honoured?',
      );
    } else {
      out.disableExitsMask = last.ret === 0 ? last.applied : 0;
      if (control.mode === 'shim' && last.applied !== control.mask) {
        out.problems.push(`asked for disabled exits ${formatMask(control.mask)}, but ${formatMask(last.applied)} was sent to KVM`);
      }
      if (last.ret !== 0) out.problems.push(`KVM refused disabled exits ${formatMask(last.applied)}: KVM_ENABLE_CAP returned ${last.ret} (errno ${last.errno})`);
      if (applied.length > 1) out.problems.push(`KVM_ENABLE_CAP(KVM_CAP_X86_DISABLE_EXITS) ran ${applied.length} times; expected once`);
    }
  }
  if (haltPollNs !== undefined) {
    const hp = records.filter((r) => r.event === 'halt_poll');
    const last = hp[hp.length - 1];
    if (!last) out.problems.push(`asked for halt_poll_ns ${haltPollNs}, but the shim recorded no KVM_CAP_HALT_POLL before the first vCPU`);
    else {
      if (last.ret === 0) out.haltPollNs = last.ns;
      if (last.ns !== haltPollNs) out.problems.push(`asked for halt_poll_ns ${haltPollNs}, but ${last.ns} was sent to KVM`);
      if (last.ret !== 0) out.problems.push(`KVM refused halt_poll_ns ${last.ns}: KVM_ENABLE_CAP(KVM_CAP_HALT_POLL) returned ${last.ret} (errno ${last.errno})`);
    }
  }
  return out;
}
