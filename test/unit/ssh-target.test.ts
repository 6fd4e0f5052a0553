// Reaching a lab box: how --on ssh://… reads, which host keys known_hosts trusts for it (plain,
// hashed, [host]:port, wildcards, negation, @revoked), and what kvmlab ships there.
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fingerprint, knownKeys, refuseHostKey } from '../../src/targets/known-hosts.js';
import { parseOn, parseSshBox } from '../../src/targets/on.js';
import { trustOf } from '../../src/targets/ssh-session.js';
import { bundleHash, shippedPaths } from '../../src/targets/ship.js';
import { packagePath } from '../../src/util/package-dir.js';

const key = (n: number) => Buffer.from(`kvmlab-test-key-${n}`);
const line = (hosts: string, n: number, marker = '') => `${marker ? `${marker} ` : ''}${hosts} ssh-ed25519 ${key(n).toString('base64')} comment`;
const hashed = (name: string) => {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
};

describe('--on ssh://[user@]host[:port]', () => {
  it('reads user, host and port, root and 22 by default', () => {
    expect(parseSshBox('ssh://lab1')).toEqual({ kind: 'ssh', user: 'root', host: 'lab1', port: 22, text: 'ssh://root@lab1' });
    expect(parseSshBox('ssh://kvm@10.0.0.5:2222')).toMatchObject({ user: 'kvm', host: '10.0.0.5', port: 2222 });
    expect(parseSshBox('ssh://root@[::1]:2222')).toMatchObject({ host: '::1', port: 2222, text: 'ssh://root@[::1]:2222' });
    expect(parseOn('local')).toBe('local');
  });

  it('refuses what is not a box, saying the form', () => {
    for (const bad of ['ssh://', 'ssh://root@', 'ssh://lab1:0', 'ssh://lab1:70000', 'ssh://a b', 'remote']) expect(() => parseOn(bad), bad).toThrow(/ssh:\/\/\[user@\]host\[:port\]/);
  });
});

describe('known_hosts', () => {
  it('finds a host by name, by [name]:port off port 22, hashed, and by wildcard; negation excludes', () => {
    const text = [line('lab1,10.0.0.5', 1), line('[lab1]:2222', 2), line(hashed('lab2'), 3), line('*.lab.example,!bad.lab.example', 4), '# a comment', '', line('@cert-authority *', 5)].join('\n');
    expect(knownKeys(text, 'lab1', 22).keys).toEqual([key(1)]);
    expect(knownKeys(text, '10.0.0.5', 22).keys).toEqual([key(1)]);
    expect(knownKeys(text, 'lab1', 2222).keys).toEqual([key(2)]);
    expect(knownKeys(text, 'lab2', 22).keys).toEqual([key(3)]);
    expect(knownKeys(text, 'box.lab.example', 22).keys).toEqual([key(4)]);
    expect(knownKeys(text, 'bad.lab.example', 22).keys).toEqual([]);
    expect(knownKeys(text, 'LAB1', 22).keys).toEqual([key(1)]);
  });

  it('trusts the known key, refuses another, a revoked one, and an unknown host (never on first use)', () => {
    const trust = { knownHosts: [{ path: '/k', text: [line('lab1', 1), line('lab1', 9, '@revoked')].join('\n') }] };
    expect(refuseHostKey(key(1), 'lab1', 22, trust)).toBeUndefined();
    expect(refuseHostKey(key(2), 'lab1', 22, trust)).toMatch(new RegExp(`offered host key ${fingerprint(key(2)).replace(/[+/]/g, '\\$&')}, which is not the key /k holds for lab1.*ssh-keygen -R 'lab1'`));
    expect(refuseHostKey(key(9), 'lab1', 22, trust)).toMatch(/@revoked in \/k/);
    expect(refuseHostKey(key(1), 'lab3', 2222, trust)).toMatch(/\[lab3\]:2222 is not in \/k, and kvmlab never trusts a host key on first use.*ssh-keyscan -p 2222 lab3.*--host-key SHA256:/);
  });

  it('--host-key is the fingerprint OpenSSH prints, and it alone decides', () => {
    const fp = fingerprint(key(1));
    expect(fp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(refuseHostKey(key(1), 'lab1', 22, trustOf({ hostKey: fp }))).toBeUndefined();
    expect(refuseHostKey(key(2), 'lab1', 22, trustOf({ hostKey: fp }))).toMatch(/not the SHA256:.* that --host-key gives/);
    expect(() => trustOf({ hostKey: 'MD5:aa:bb' })).toThrow(/SHA256: and 43 base64 characters/);
  });
});

describe('what kvmlab ships to a box', () => {
  it("its package's files and the modules the bundle leaves out, never its compiled helpers", () => {
    const paths = shippedPaths(packagePath());
    expect(paths).toEqual(expect.arrayContaining(['package.json', 'dist', 'guest-scripts', 'host-scripts', 'experiments', 'node_modules/ssh2', 'node_modules/jsonc-parser']));
    // ssh2's own dependencies come along; development tools do not
    expect(paths).toContain('node_modules/asn1');
    expect(paths).not.toContain('node_modules/vitest');
    expect(paths).not.toContain('node_modules/typescript');
  });

  it('one bundle per content: a shipped file changed is another bundle, a helper compiled here is not', () => {
    const root = mkdtempSync(join(tmpdir(), 'kvmlab-ship-'));
    try {
      const put = (rel: string, text: string) => {
        mkdirSync(dirname(join(root, rel)), { recursive: true });
        writeFileSync(join(root, rel), text);
      };
      put('package.json', JSON.stringify({ name: 'kvmlab', files: ['dist', 'host-scripts'], scripts: { bundle: 'esbuild --external:ssh2' } }));
      put('package-lock.json', '{}');
      put('dist/cli.js', 'one');
      put('host-scripts/kvm-probe.c', 'int main(void) { return 0; }');
      const first = bundleHash(root);
      expect(first).toMatch(/^[0-9a-f]{16}$/);
      put('host-scripts/build/kvm-probe', 'compiled here');
      expect(bundleHash(root)).toBe(first);
      put('dist/cli.js', 'two');
      expect(bundleHash(root)).not.toBe(first);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
