// `--on ssh://[user@]host[:port]`: a kvmlab command run on a lab box. kvmlab logs in
// (targets/ssh-session.ts), ships itself there unless the box has this very build
// (targets/ship.ts), copies the experiment file into a fresh directory on the box, and runs the
// command there with the box's own node, QEMU, tracefs and clock: every collector reads the box
// locally, as a run started on its console would. A run's results directory is brought back
// complete. The box's run is on a leash (targets/leash.ts): Ctrl-C here, or a dropped connection,
// stops it after its teardown, and the journal there puts the box back as it was.
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { execa } from 'execa';
import { HostError } from '../errors.js';
import { shellQuote } from '../util/shell.js';
import type { RunTarget } from '../results/summary.js';
import type { Progress } from '../model/progress.js';
import { LEASH_ENV } from './leash.js';
import { TARGET_ENV } from './on.js';
import type { SshBox } from './on.js';
import { shipKvmlab } from './ship.js';
import { BoxSession, type SshAccess } from './ssh-session.js';

/** The node the bundle is built for (package.json engines). */
const NODE_MIN = [20, 10] as const;

export interface BoxCommand {
  box: SshBox;
  access: SshAccess;
  progress: Progress;
  /** kvmlab's arguments on the box, given where the experiment file and results directory are there. */
  argv: (there: { file: string; out: string }) => string[];
  /** An experiment file here, copied to the box. */
  file?: string;
  /** Where the box's results directory is brought back to, here. */
  out?: string;
  /** Where the command's stdout goes here. */
  stdout: Writable;
  /** Aborted: the command on the box is asked to stop (its leash is pulled). */
  signal?: AbortSignal;
}

/** Logs in to a box, ships kvmlab there, and hands the session and the bundle's directory to `work`. */
async function withBox<T>(box: SshBox, access: SshAccess, progress: Progress, needsNode: boolean, work: (session: BoxSession, bundle: string) => Promise<T>): Promise<T> {
  progress.notice(`${box.text}: logging in`);
  const session = await BoxSession.open(box, access);
  try {
    if (needsNode) await requireNode(session);
    return await work(session, await shipKvmlab(session, progress));
  } finally {
    session.close();
  }
}

/** Runs a kvmlab command on a lab box; returns its exit status. */
export function onBox(cmd: BoxCommand): Promise<number> {
  const { box } = cmd;
  return withBox(box, cmd.access, cmd.progress, true, async (session, bundle) => {
    const made = await session.capture('mktemp -d "${TMPDIR:-/tmp}/kvmlab-box-XXXXXX"');
    const ws = made.stdout.trim();
    if (made.code !== 0 || !ws.startsWith('/')) throw new HostError(`${box.text}: could not make a directory for the run there (mktemp: ${made.stderr.trim() || `exit ${made.code}`})`);
    cmd.progress.notice(`${box.text}: working in ${ws} there`);
    const there = { file: `${ws}/exp/${cmd.file ? basename(cmd.file) : ''}`, out: `${ws}/out` };
    if (cmd.file) await put(session, createReadStream(resolve(cmd.file)), there.file);
    const target: RunTarget = { kind: 'ssh', box: box.text, hostKey: session.hostKey };
    await put(session, Readable.from([`${JSON.stringify(target)}\n`]), `${ws}/target.json`);
    const env = `${TARGET_ENV}=${shellQuote(`${ws}/target.json`)} ${LEASH_ENV}=stdin`;
    const line = `cd ${shellQuote(ws)} && ${env} exec node ${bundle}/dist/cli.js ${cmd.argv(there).map(shellQuote).join(' ')}`;
    const ran = await session.exec(line, { stdout: cmd.stdout, stderr: process.stderr, leash: cmd.signal ?? new AbortController().signal });
    if (ran.code === null) {
      throw new HostError(
        `${box.text}: ${ran.signal === 'connection dropped' ? 'the connection dropped' : `kvmlab there was killed (${ran.signal ?? 'no exit status'})`} before the command finished. kvmlab there stops at a dropped connection and tears its guests down; what it collected stays on the box in ${ws}; \`kvmlab cleanup --on ${box.text}\` undoes anything a killed run left`,
      );
    }
    if (cmd.out !== undefined) await fetchResults(session, there.out, cmd.out);
    await session.capture(`rm -rf ${shellQuote(ws)}`);
    return ran.code;
  });
}

/**
 * `kvmlab setup --on ssh://…`: kvmlab's own host setup (host-scripts/setup.sh: Debian packages, the
 * native helpers, guest images, tracefs) run on the box from the bundle shipped there. Node.js is
 * the one thing it cannot install: the run says so when the box lacks it.
 */
export function setupBox(box: SshBox, access: SshAccess, progress: Progress): Promise<number> {
  return withBox(box, access, progress, false, async (session, bundle) => {
    const r = await session.exec(`bash ${bundle}/host-scripts/setup.sh`, { stdout: process.stdout, stderr: process.stderr });
    return r.code ?? 3;
  });
}

async function requireNode(session: BoxSession): Promise<void> {
  const r = await session.capture(`command -v node >/dev/null 2>&1 && node -e 'process.stdout.write(process.versions.node)'`);
  const v = r.stdout.trim().split('.').map(Number);
  const ok = r.code === 0 && (v[0]! > NODE_MIN[0] || (v[0] === NODE_MIN[0] && v[1]! >= NODE_MIN[1]));
  if (!ok) throw new HostError(`${session.box.text}: kvmlab needs node ≥ ${NODE_MIN.join('.')} on the box's PATH, and ${r.code === 0 ? `it has ${r.stdout.trim()}` : 'it has none'}: install Node.js 20 or later there (Debian trixie's nodejs, or your distribution's), then run again`);
}

/** Writes a stream into a file on the box. */
async function put(session: BoxSession, from: Readable, path: string): Promise<void> {
  const r = await session.exec(`mkdir -p "$(dirname ${shellQuote(path)})" && cat > ${shellQuote(path)}`, { stdin: from });
  if (r.code !== 0) throw new HostError(`${session.box.text}: could not write ${path} there (exit ${r.code ?? r.signal})`);
}

/** Brings the box's results directory here, complete (none, when the command wrote none); on failure it stays on the box, and the error says where. */
async function fetchResults(session: BoxSession, from: string, to: string): Promise<void> {
  if ((await session.capture(`test -d ${shellQuote(from)}`)).code !== 0) return;
  await mkdir(to, { recursive: true });
  const untar = execa('tar', ['xzf', '-', '-C', to], { reject: false, stdin: 'pipe' });
  const r = await session.exec(`tar czf - -C ${shellQuote(from)} .`, { stdout: untar.stdin! });
  untar.stdin!.end();
  const local = await untar;
  if (r.code !== 0 || local.exitCode !== 0) throw new HostError(`${session.box.text}: could not bring the results back (${r.code !== 0 ? `tar there: exit ${r.code ?? r.signal}` : `tar here: ${String(local.stderr).trim()}`}); they stay on the box in ${from}`);
}
