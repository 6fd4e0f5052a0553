// KVM_CAP_X86_DISABLE_EXITS: the exit-bit vocabulary, mask arithmetic, and the JSONL record that
// host-scripts/disable-exits-shim.c (libkvmlab-exits.so) writes from inside QEMU.
//
// Bits from include/uapi/linux/kvm.h (APERFMPERF since Linux 6.17). QEMU's only switch is
// `-overcommit cpu-pm=on`, which asks for everything the host allows of MWAIT|HLT|PAUSE|CSTATE;
// the shim replaces that mask with the variant's.

import { KvmlabError } from '../errors.js';
import * as z from 'zod';

export const KVM_CAP_X86_DISABLE_EXITS = 143;
export const KVM_CAP_HALT_POLL = 182;

export const EXIT_BITS = {
  mwait: 1 << 0,
  hlt: 1 << 1,
  pause: 1 << 2,
  cstate: 1 << 3,
  aperfmperf: 1 << 4,
} as const;

export type ExitName = keyof typeof EXIT_BITS;

/** In bit order. */
export const EXIT_NAMES: readonly ExitName[] = ['mwait', 'hlt', 'pause', 'cstate', 'aperfmperf'];

/** Every bit this module knows a name for (0x1f). */
export const KNOWN_EXITS_MASK = EXIT_NAMES.reduce((m, n) => m | EXIT_BITS[n], 0);

/** What QEMU's cpu-pm=on can ask for: MWAIT|HLT|PAUSE|CSTATE, never APERFMPERF (0xf). */
export const CPU_PM_EXITS_MASK = EXIT_BITS.mwait | EXIT_BITS.hlt | EXIT_BITS.pause | EXIT_BITS.cstate;

export function isExitName(s: string): s is ExitName {
  return Object.prototype.hasOwnProperty.call(EXIT_BITS, s);
}

function checkMask(mask: number, what = 'mask'): number {
  if (!Number.isInteger(mask) || mask < 0 || mask > 0xffff_ffff) {
    throw new RangeError(`${what} must be an integer in 0..0xffffffff, got ${mask}`);
  }
  return mask;
}

/** OR of the named bits. Unknown names throw (callers may pass unchecked strings from JS/YAML). */
export function maskOf(names: Iterable<ExitName>): number {
  let mask = 0;
  for (const name of names) {
    if (!isExitName(name)) {
      throw new Error(`unknown exit "${String(name)}" (expected one of ${EXIT_NAMES.join(', ')})`);
    }
    mask |= EXIT_BITS[name];
  }
  return mask >>> 0;
}

/** Names of the known bits set in mask, in bit order. Unknown bits are left out; see unknownBits. */
export function namesOf(mask: number): ExitName[] {
  checkMask(mask);
  return EXIT_NAMES.filter((n) => (mask & EXIT_BITS[n]) !== 0);
}

/** Bits set in mask that have no name here. */
export function unknownBits(mask: number): number {
  return (checkMask(mask) & ~KNOWN_EXITS_MASK) >>> 0;
}

/** `0xe (hlt|pause|cstate)`, `0x0 (none)`, `0x22 (hlt|0x20)`. */
export function formatMask(mask: number): string {
  const parts: string[] = namesOf(mask);
  const unknown = unknownBits(mask);
  if (unknown) parts.push(`0x${unknown.toString(16)}`);
  return `0x${mask.toString(16)} (${parts.length ? parts.join('|') : 'none'})`;
}

/**
 * A mask as a user or the environment writes it: decimal ("14"), hex ("0xe"), or names joined by
 * `|`, `,` or `+` ("hlt|pause"); "" and "none" are 0. The shim itself accepts only the numeric forms.
 */
export function parseMask(text: string): number {
  const t = text.trim();
  if (t === '' || t === 'none') return 0;
  if (/^0[xX][0-9a-fA-F]+$/.test(t)) return checkMask(Number.parseInt(t.slice(2), 16), `mask "${text}"`);
  if (/^\d+$/.test(t)) return checkMask(Number(t), `mask "${text}"`);
  const names = t.split(/[|,+]/).map((s) => s.trim().toLowerCase());
  const bad = names.filter((n) => !isExitName(n));
  if (bad.length) {
    throw new Error(
      `not an exit mask: "${text}" (unknown ${bad.map((b) => `"${b}"`).join(', ')}; ` +
        `use a number, 0x-hex, or names from ${EXIT_NAMES.join('|')})`,
    );
  }
  return maskOf(names as ExitName[]);
}

/** Bits of requested that allowed does not contain (KVM refuses such a mask with EINVAL). */
export function missingBits(requested: number, allowed: number): number {
  return (checkMask(requested, 'requested') & ~checkMask(allowed, 'allowed')) >>> 0;
}

/** What QEMU's `-overcommit cpu-pm=on` asks KVM for, given KVM_CHECK_EXTENSION's answer. */
export function cpuPmMask(allowed: number): number {
  return (checkMask(allowed, 'allowed') & CPU_PM_EXITS_MASK) >>> 0;
}

// ---- shim records ---------------------------------------------------------------------------

const int = z.number().int();
const mask = z.number().int().nonnegative().max(0xffff_ffff);

export const DisableExitsRecordSchema = z.object({
  event: z.literal('disable_exits'),
  pid: int.positive(),
  vm_fd: int.nonnegative(),
  /** The mask QEMU passed to KVM_ENABLE_CAP. */
  requested: mask,
  /** The mask the shim sent to KVM (== requested when KVMLAB_DISABLE_EXITS is unset). */
  applied: mask,
  ret: int,
  errno: int.nonnegative(),
});

export const DisableExitsNotRequestedRecordSchema = z.object({
  event: z.literal('disable_exits_not_requested'),
  pid: int.positive(),
  vm_fd: int.nonnegative(),
  /** KVMLAB_DISABLE_EXITS: wanted but never applied (QEMU ran without cpu-pm=on). */
  wanted: mask,
});

export const HaltPollRecordSchema = z.object({
  event: z.literal('halt_poll'),
  pid: int.positive(),
  vm_fd: int.nonnegative(),
  ns: int.nonnegative(),
  ret: int,
  errno: int.nonnegative(),
});

export const ConfigErrorRecordSchema = z.object({
  event: z.literal('config_error'),
  pid: int.positive(),
  variable: z.string(),
  reason: z.string(),
});

export const ShimRecordSchema = z.discriminatedUnion('event', [
  DisableExitsRecordSchema,
  DisableExitsNotRequestedRecordSchema,
  HaltPollRecordSchema,
  ConfigErrorRecordSchema,
]);

export type DisableExitsRecord = z.infer<typeof DisableExitsRecordSchema>;
export type DisableExitsNotRequestedRecord = z.infer<typeof DisableExitsNotRequestedRecordSchema>;
export type HaltPollRecord = z.infer<typeof HaltPollRecordSchema>;
export type ConfigErrorRecord = z.infer<typeof ConfigErrorRecordSchema>;
export type ShimRecord = z.infer<typeof ShimRecordSchema>;

export class ShimRecordError extends KvmlabError {
  constructor(
    message: string,
    /** 1-based line number in the record text. */
    readonly line: number,
    readonly text: string,
  ) {
    super(message);
  }
}

export interface ParseShimRecordOptions {
  /**
   * Ignore a last line that has no newline and does not parse, as a reader polling the file while
   * QEMU writes may see. Default false: every line must parse.
   */
  allowPartialTail?: boolean;
  /** Named in error messages. */
  source?: string;
}

/** Parses the shim's JSONL record. Blank lines are skipped; any malformed line throws ShimRecordError. */
export function parseShimRecord(text: string, opts: ParseShimRecordOptions = {}): ShimRecord[] {
  const where = opts.source ?? 'shim record';
  const lines = text.split('\n');
  const out: ShimRecord[] = [];
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const isTail = i === lines.length - 1; // no newline after it
    const fail = (why: string): void => {
      if (isTail && opts.allowPartialTail) return;
      const shown = line.length > 200 ? `${line.slice(0, 200)}…` : line;
      throw new ShimRecordError(`${where}:${i + 1}: ${why}: ${shown}`, i + 1, raw);
    };
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      fail(`not JSON (${e instanceof Error ? e.message : String(e)})`);
      return;
    }
    const parsed = ShimRecordSchema.safeParse(value);
    if (!parsed.success) {
      const issues = parsed.error.issues
        .map((iss) => `${iss.path.length ? iss.path.join('.') : 'record'}: ${iss.message}`)
        .join('; ');
      fail(`not a shim record (${issues})`);
      return;
    }
    out.push(parsed.data);
  });
  return out;
}
