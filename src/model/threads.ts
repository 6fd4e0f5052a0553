// QEMU's threads as the host sees them, and what pinning did to them: the map collectors sample and
// the record results keep.

export interface VcpuThread {
  /** QEMU cpu-index; kvmlab takes it as the guest CPU number too. */
  index: number;
  tid: number;
  qomPath: string;
  props: Record<string, number>;
}

export interface ThreadMap {
  pid: number;
  vcpus: VcpuThread[];
  /** TIDs of QEMU's other threads (main loop, I/O, RCU, workers). */
  others: number[];
}

export interface PinRecord {
  /** vcpu0, vcpu1 … or emulator */
  thread: string;
  tid: number;
  requested: string;
  actual: string;
}
