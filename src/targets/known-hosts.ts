// Whether a lab box's SSH host key is the one the user knows: OpenSSH's known_hosts (plain and
// hashed names, [host]:port, wildcards, negation, @revoked) or a fingerprint given on the command
// line. Never trust on first use: an unknown key is refused with its fingerprint and the way to
// check it. Pure: the caller reads the file.
import { createHash, createHmac } from 'node:crypto';
import { globMatch } from '../util/glob.js';

/** OpenSSH's fingerprint of a public key blob: SHA256:base64 without padding. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** How known_hosts names a host: the name alone on port 22, [name]:port on any other. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function patternMatches(pattern: string, name: string): boolean {
  const hashed = /^\|1\|([^|]+)\|([^|]+)$/.exec(pattern);
  if (hashed) return createHmac('sha1', Buffer.from(hashed[1]!, 'base64')).update(name).digest('base64') === hashed[2];
  return globMatch(pattern.toLowerCase(), name.toLowerCase());
}

/** Whether a known_hosts host field (comma-separated patterns, `!` negating) names `name`. */
function hostFieldMatches(field: string, name: string): boolean {
  let matched = false;
  for (const p of field.split(',')) {
    if (p.startsWith('!')) {
      if (patternMatches(p.slice(1), name)) return false;
    } else if (patternMatches(p, name)) matched = true;
  }
  return matched;
}

/** The keys known_hosts text holds for a host, and those it marks @revoked (certificate authorities are not used). */
export function knownKeys(text: string, host: string, port: number): { keys: Buffer[]; revoked: Buffer[] } {
  const name = knownHostsName(host, port);
  const keys: Buffer[] = [];
  const revoked: Buffer[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0]!.startsWith('@') ? fields.shift() : undefined;
    if (fields.length < 3 || marker === '@cert-authority') continue;
    if (!hostFieldMatches(fields[0]!, name)) continue;
    const blob = Buffer.from(fields[2]!, 'base64');
    (marker === '@revoked' ? revoked : keys).push(blob);
  }
  return { keys, revoked };
}

/** What the user trusts for a box: the keys known_hosts holds for it, or a fingerprint (--host-key). */
export interface Trust {
  knownHosts: { path: string; text: string }[];
  fingerprint?: string;
}

/** Why the key a box offered is refused, or undefined when it is the one the user trusts. */
export function refuseHostKey(offered: Buffer, host: string, port: number, trust: Trust): string | undefined {
  const fp = fingerprint(offered);
  if (trust.fingerprint !== undefined) {
    return fp === trust.fingerprint ? undefined : `the box offered host key ${fp}, not the ${trust.fingerprint} that --host-key gives: refusing to talk to it (if the box was reinstalled, check its key on its console: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)`;
  }
  const name = knownHostsName(host, port);
  const files = trust.knownHosts.map((k) => k.path).join(' and ') || '~/.ssh/known_hosts (absent)';
  let known = 0;
  for (const k of trust.knownHosts) {
    const { keys, revoked } = knownKeys(k.text, host, port);
    if (revoked.some((r) => r.equals(offered))) return `the box's host key ${fp} is marked @revoked in ${k.path}: refusing to talk to it`;
    if (keys.some((key) => key.equals(offered))) return undefined;
    known += keys.length;
  }
  if (known) return `the box offered host key ${fp}, which is not the key ${files} holds for ${name}: refusing to talk to it (the box may have been reinstalled, or this is not the box). Check the key on the box's console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); if it is the box's, remove the old entry (ssh-keygen -R '${name}') and connect again`;
  return `${name} is not in ${files}, and kvmlab never trusts a host key on first use: the box offered ${fp}. Check it on the box's console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then add it (ssh-keyscan${port === 22 ? '' : ` -p ${port}`} ${host} >> ~/.ssh/known_hosts) or pass --host-key ${fp}`;
}
