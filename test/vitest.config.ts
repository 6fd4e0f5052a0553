import { defineConfig } from 'vitest/config';

// Tests live beside each other by tier: unit (pure), mock (whole pipeline on the simulated host),
// report, hostile input, tcg (real QEMU under TCG), kvm (a real /dev/kvm, or the nested KVM host).
// The tiers without hardware run first, three files at a time: they only use CPU, but their tests
// also wait on the kvmlab processes they start, and a third file fills those waits on 2 cores. The
// files a worker runs share the modules they import (none stubs a module, the environment or the
// timers): importing src/ afresh for each file was a sixth of those tiers' CPU. Then the real-QEMU tiers, one
// file at a time, since two TCG guests on 2 cores already compete, with the benchmarks' --smoke runs. Each test carries its own
// generous timeout where it boots something.
export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'without hardware', include: ['test/{unit,mock,report,hostile}/**/*.test.ts'], fileParallelism: true, maxWorkers: 3, isolate: false, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        // After each of these files, nothing it started may be left on the host (the check would see a
        // neighbour's work if files ran side by side, so it is here, where they run one at a time).
        test: { name: 'real QEMU', include: ['test/{tcg,kvm,bench}/**/*.test.ts'], setupFiles: ['test/setup/host-clean.ts'], fileParallelism: false, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
