#!/bin/sh
# /init of kvmlab's nested KVM host (L1): a Debian kernel under QEMU/TCG with SVM and NPT, where the
# KVM code is real and only the hardware is emulated. busybox sh, PID 1.
#
# Contract with `kvmlab run --on nested` (src/targets/nested.ts):
# - 9p share `kvmlab-root`: the L0 host's / read-only; it becomes L1's / by chroot, so L1 runs the
#   very node, kvmlab, QEMU, images and native helpers of the L0 host.
# - 9p share `kvmlab-out`: the results directory, writable, mounted at the same path it has on L0
#   (kernel parameter kvmlab.out=PATH), so paths in the results are the same on both sides.
# - 9p share `kvmlab-ctl`: job.sh to run (inside the chroot), keep (host paths under /tmp, /run, …
#   that L1's own tmpfs would hide), stop (created by L0 on Ctrl-C), sysrq (sysrq keys L0 asks for,
#   e.g. "l w" for every CPU's backtrace and the blocked tasks when it finds L1 wedged), heartbeat
#   (written by the job's kvmlab), kallsyms (this kernel's text symbols, written here), pin.sh (run
#   before the other CPUs come online), and status, where the job's exit status is written before L1
#   powers off.
# - The boot is quiet; once ready the console shows KERN_INFO and above, so the kernel's lockup,
#   stall and hung-task reports reach L0 with their stacks.
# - Console lines "kvmlab-nested: …" report progress; "kvmlab-nested: FATAL …" a setup failure.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
say() { echo "kvmlab-nested: $*"; }
fatal() { say "FATAL $*"; poweroff -f; sleep 5; }

kver=$(uname -r)
while read -r m; do
	[ -n "$m" ] || continue
	insmod "/lib/modules/$kver/$m.ko" || fatal "insmod $m failed (dmesg: $(dmesg | tail -n 3 | tr '\n' ' '))"
done </etc/kvmlab-modules
[ -c /dev/kvm ] || fatal "kvm-amd loaded but /dev/kvm did not appear (dmesg: $(dmesg | grep -i -e kvm -e svm | tail -n 3 | tr '\n' ' '))"
say "kvm-amd loaded: $(dmesg | grep -o -e 'Nested Virtualization enabled' -e 'Nested Paging enabled' | tr '\n' ',')"

out=
for w in $(cat /proc/cmdline); do
	case "$w" in kvmlab.out=*) out=${w#kvmlab.out=} ;; esac
done
[ -n "$out" ] || fatal "no kvmlab.out= on the kernel command line"

opts=trans=virtio,version=9p2000.L,msize=512000
R=/host
mkdir -p $R
mount -t 9p -o "$opts,ro,cache=loose" kvmlab-root $R || fatal "cannot mount the host root share"
# The host's tree as it is, before L1's own tmpfs hide parts of it (see "keep" below).
mkdir -p /hostro
mount --bind $R /hostro
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm 2>/dev/null
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
for d in /tmp /run /var/tmp /var/lock; do [ -d $R$d ] && mount -t tmpfs -o mode=1777 tmpfs $R$d; done
mkdir -p $R/run/kvmlab-nested
mount -t 9p -o "$opts" kvmlab-ctl $R/run/kvmlab-nested || fatal "cannot mount the control share"
# Host paths under those tmpfs that the run needs (a checkout, a cache or an experiment file in /tmp):
# shown again, read-only.
while read -r p; do
	[ -n "$p" ] || continue
	if [ -d "/hostro$p" ]; then mkdir -p "$R$p"; else mkdir -p "${R}${p%/*}" && : >"$R$p"; fi &&
		mount --bind "/hostro$p" "$R$p" || fatal "cannot show the host's $p in L1"
done <$R/run/kvmlab-nested/keep
mkdir -p "$R$out" 2>/dev/null
mount -t 9p -o "$opts" kvmlab-out "$R$out" || fatal "cannot mount the results share at $out"
ip link set lo up 2>/dev/null
echo 7 >/proc/sys/kernel/printk
ctl=$R/run/kvmlab-nested

# L1 boots on one CPU (maxcpus=1). Patching kernel text while other CPUs run it wedges a host TCG
# emulates, so what kvmlab would otherwise flip during the run is flipped once here, alone (pin.sh
# runs host-scripts/nested-pin, which says what and why), and only then are the other CPUs onlined.
if [ -e $ctl/pin.sh ]; then
	chroot $R /bin/sh /run/kvmlab-nested/pin.sh || say "warning: pinning failed (above): a collector starting or stopping may patch kernel text and wedge L1"
fi
for c in /sys/devices/system/cpu/cpu[0-9]*; do
	[ -e $c/online ] && [ "$(cat $c/online)" = 0 ] && { echo 1 >$c/online || fatal "cannot online ${c##*/}"; }
done
# online CPUs, isolated ones included (nproc counts only those this process may run on, which isolcpus= shrinks)
say "ready: $(grep -c ^processor /proc/cpuinfo) CPUs, $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB, kernel $kver"

chroot $R /bin/sh /run/kvmlab-nested/job.sh &
job=$!
# This kernel's text symbols (nokaslr: the addresses are the running ones), for L0 to name the
# functions L1's CPUs are in should L1 wedge; beside the run (Debian's busybox has no nice).
(grep -E ' [tTwW] ' /proc/kallsyms >$ctl/kallsyms.part && mv $ctl/kallsyms.part $ctl/kallsyms) &
# Ctrl-C on L0 becomes SIGINT for the run in L1, which tears its guests down as on any host.
(stopped=
while kill -0 $job 2>/dev/null; do
	if [ -z "$stopped" ] && [ -e $ctl/stop ]; then kill -INT $job; stopped=1; fi
	if [ -e $ctl/sysrq ]; then
		for k in $(cat $ctl/sysrq); do echo "$k" >/proc/sysrq-trigger; done
		rm -f $ctl/sysrq
	fi
	sleep 1
done) &
wait $job
echo $? >$R/run/kvmlab-nested/status
sync
say "done"
poweroff -f
