// `--on WHERE`: where a command's host is. local is this host; nested a KVM host kvmlab boots under
// TCG (targets/nested.ts); ssh://[user@]host[:port] a lab box kvmlab reaches over SSH and runs
// itself on (targets/box.ts).
import { readFile } from 'node:fs/promises';
import { InputError, errorMessage } from '../errors.js';
import type { HostFacts } from '../model/host-facts.js';
import { RunTargetSchema, type RunTarget } from '../results/summary.js';

/** A lab box: who kvmlab logs in as, where. `text` is how the user wrote it, for messages and results. */
export interface SshBox {
  kind: 'ssh';
  user: string;
  host: string;
  port: number;
  text: string;
}

/** Where kvmlab itself drives the host's QEMU: here, or in L1 it boots here. */
export type LocalOrNested = 'local' | 'nested';
export type On = LocalOrNested | SshBox;

export const ON_HELP = 'where it happens: local (this host), nested (a KVM host kvmlab boots under TCG, for hosts without a usable KVM) or ssh://[user@]host[:port] (a lab box, over SSH)';

export function parseOn(on: string): On {
  if (on === 'local' || on === 'nested') return on;
  if (on.startsWith('ssh://')) return parseSshBox(on);
  throw new InputError(`--on ${on}: give local (this host), nested (a KVM host emulated under TCG) or ssh://[user@]host[:port] (a lab box)`);
}

/** ssh://[user@]host[:port], host a name, an IPv4 address or an [IPv6] address; the user defaults to root, the port to 22. */
export function parseSshBox(text: string): SshBox {
  const m = /^ssh:\/\/(?:([A-Za-z0-9._][A-Za-z0-9._-]*)@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(?::(\d{1,5}))?\/?$/.exec(text);
  const port = m?.[3] === undefined ? 22 : Number(m[3]);
  if (!m || port < 1 || port > 65535) throw new InputError(`--on ${text}: a lab box is ssh://[user@]host[:port], e.g. ssh://root@lab1 or ssh://root@10.0.0.5:2222`);
  const host = m[2]!.replace(/^\[(.*)\]$/, '$1');
  return { kind: 'ssh', user: m[1] ?? 'root', host, port, text: `ssh://${m[1] ?? 'root'}@${m[2]}${port === 22 ? '' : `:${port}`}` };
}

/** The choices of a run that kvmlab hands on when it runs itself elsewhere (in L1, on a lab box). */
export interface DelegatedRun {
  repeat?: number;
  only?: string;
  where?: string;
  qemu?: string;
  shard?: string;
  allowHostCommands?: boolean;
  json?: boolean;
  strict?: boolean;
}

/** Those choices as the command line of the kvmlab that runs elsewhere. */
export function delegatedRunArgs(flags: DelegatedRun): string[] {
  const args: string[] = [];
  if (flags.repeat !== undefined) args.push('--repeat', String(flags.repeat));
  if (flags.only) args.push('--only', flags.only);
  if (flags.where) args.push('--where', flags.where);
  if (flags.qemu) args.push('--qemu', flags.qemu);
  if (flags.shard) args.push('--shard', flags.shard);
  if (flags.allowHostCommands) args.push('--allow-host-commands');
  if (flags.json) args.push('--json');
  if (flags.strict) args.push('--strict');
  return args;
}

/** Names the file, written by the kvmlab that started a run elsewhere (in L1, on a lab box), that says where that run happens. */
export const TARGET_ENV = 'KVMLAB_TARGET_FILE';

/**
 * Where this run happens: this host, unless $KVMLAB_TARGET_FILE names a target (the run inside a
 * nested host, or on a lab box over SSH). The file is schema-checked; a run cannot be labelled by a flag. checkTarget holds
 * it to the host the run then finds.
 */
export async function targetOfThisRun(env: NodeJS.ProcessEnv = process.env): Promise<RunTarget> {
  const file = env[TARGET_ENV];
  if (!file) return { kind: 'local' };
  const text = await readFile(file, 'utf8').catch((e: unknown) => {
    throw new InputError(`$${TARGET_ENV} names ${file}, which cannot be read (${errorMessage(e)}); it is set only by \`kvmlab run --on nested\` or \`--on ssh://…\` for the run they start: unset it`, [], { cause: e });
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${file} ($${TARGET_ENV}) is not JSON: ${errorMessage(e)}`, [], { cause: e });
  }
  const r = RunTargetSchema.safeParse(parsed);
  if (!r.success) throw new InputError(`${file} ($${TARGET_ENV}) does not describe where a run happens: ${r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** Why the host a run found is not the one its target says it runs on, or undefined. */
export function checkTarget(target: RunTarget, facts: Pick<HostFacts, 'kernelRelease' | 'cpus'>): string | undefined {
  if (target.kind !== 'nested') return undefined;
  const { kernel, cpus } = target.l1;
  if (facts.kernelRelease !== kernel || facts.cpus.length !== cpus) return `this run is labelled as running in a nested KVM host (kernel ${kernel}, ${cpus} CPUs), but this host runs kernel ${facts.kernelRelease} with ${facts.cpus.length} CPUs: $${TARGET_ENV} is set only by \`kvmlab run --on nested\` for the run inside L1; unset it`;
  return undefined;
}
