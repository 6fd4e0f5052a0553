// Choosing the backend for `run --backend auto|qemu|mock`.
import { HostError } from '../errors.js';
import type { Progress } from '../run/progress.js';
import type { Backend } from './backend.js';
import { MockBackend } from './mock/mock-backend.js';

export async function selectBackend(asked: 'auto' | 'qemu' | 'mock', _arch: 'x86_64' | 'ppc64', progress: Progress): Promise<Backend> {
  if (asked === 'mock') return new MockBackend();
  if (asked === 'qemu') throw new HostError('the QEMU backend is not part of this kvmlab build yet; use --backend mock');
  progress.notice('QEMU backend not available in this build: using the mock backend (results are simulated)');
  return new MockBackend();
}
