import ssh2 from 'ssh2';
import { describe, expect, it } from 'vitest';
import { generateClientKey, keyBlob } from '../../src/backend/ssh-guest.js';

describe('client keys', () => {
  it('are always well-formed ed25519 keys (ssh2 alone gets ~1 in 180 wrong)', () => {
    for (let i = 0; i < 1000; i++) {
      const k = generateClientKey();
      expect(ssh2.utils.parseKey(k.publicKey)).not.toBeInstanceOf(Error);
      expect(keyBlob(k.publicKey).length).toBe(51); // 4+11 "ssh-ed25519", 4+32 key bytes
    }
  });
});
