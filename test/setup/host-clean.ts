// After every test file: nothing kvmlab started or changed may be left on the host — no QEMU named
// kvmlab-…, no kvmlab tracefs instance, no pending entry in the default journal. What is found fails
// the file that left it (naming it), and is cleaned up as `kvmlab cleanup` would, so the files after
// it start on a clean host instead of each failing on "run `kvmlab cleanup` first".
import { afterAll } from 'vitest';
import { cleanupHost, describeEntry, hostLeftovers } from '../../src/host/journal.js';

afterAll(() => {
  const left = hostLeftovers();
  if (left.length === 0) return;
  const what = left.map(describeEntry).join('; ');
  throw new Error(`this test file left kvmlab's changes on the host: ${what}. Cleaned up: ${cleanupHost().notes.join('; ')}`);
});
