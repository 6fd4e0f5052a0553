import { defineConfig } from 'vitest/config';

// Tests live beside each other by tier: unit (pure), mock (whole pipeline on the simulated host),
// tcg (real QEMU under TCG), kvm (real /dev/kvm). Real-QEMU tests are slow on 2 cores, so files run
// one at a time and each test carries its own generous timeout.
export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    setupFiles: ['test/setup/host-clean.ts'],
    reporters: ['default'],
  },
});
