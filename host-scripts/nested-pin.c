/*
 * nested-pin: hold the nested KVM host's (L1's) kernel text still for its whole life.
 *
 *   nested-pin [SYSTEM:EVENT ...]      e.g. nested-pin kvm:kvm_exit 'sched:*'
 *
 * Why. Flipping a static key or a static call patches kernel text while other CPUs run it
 * (text_poke_bp: an INT3 at each site, IPIs to every CPU, then the new bytes). In a KVM host that
 * QEMU emulates under TCG (7.2 and 10.0 seen), that wedges L1: CPUs loop in the INT3 handler at the
 * patch site (exc_int3 at __schedule+0x1bc, a tracepoint's static call) while the patching CPU waits
 * in smp_call_function_many_cond for them forever. Seen with 2 of 2 runs that enabled and disabled
 * one tracepoint 400 times beside an idle L2 guest, and in about 1 of 10 kvmlab runs, where the flips
 * come from a collector starting or stopping, from a vCPU made without an in-kernel APIC, and from
 * an L2 guest enabling or disabling its APIC. So L1 boots on one CPU, and there, before the other
 * CPUs come online (nested-host-init.sh), this program flips each of those once, into the state it
 * then holds until L1 powers off:
 *   - KVM's kvm_has_noapic_vcpu key on: a VM with a vCPU and no in-kernel irqchip;
 *   - KVM's apic_sw_disabled and apic_hw_disabled keys on: a VM with an in-kernel irqchip and a
 *     vCPU whose APIC is never software-enabled (it never runs) and is hardware-disabled (its
 *     APIC base MSR cleared);
 *   - no cmdline recording (the global options/record-cmd 0, which every tracefs instance made
 *     later inherits; instances have no such option of their own): with it on, enabling any event
 *     registers probes on sched_switch and sched_wakeup, whose static calls sit in __schedule;
 *   - the network stack's once-only keys off: net_get_random_once() (inet_ehashfn, inet6_ehashfn,
 *     the TCP sequence and port secrets) leaves a static branch on until its first call, then
 *     schedules work that turns it off; the first TCP connection in L1 (kvmlab's SSH to an L2 guest,
 *     through QEMU's user-net forward) did that beside running CPUs, and one L1 panicked with an
 *     invalid opcode inside inet_ehashfn's half-patched NOP. A TCP connection over loopback (IPv4,
 *     and IPv6 where it is up) is made here, and the work given time to run;
 *   - each tracepoint named on the command line registered twice, by two tracefs instances
 *     (kvmlab-pin-a, kvmlab-pin-b: tracing off, no filter, a page of ring buffer
 *     per CPU), so its static key stays on and its static call stays on the iterator however many
 *     probes kvmlab's collectors then add or remove (a tracepoint's static call changes only
 *     between 0, 1 and 2+ probes).
 * The cost: each pinned tracepoint calls two probes at every hit, and each returns when its ring
 * buffer refuses the event, before the event is built. No filter: a filter makes a probe build the
 * event in a per-CPU scratch buffer first, to test it (test/bench/exit-trace-cost.mjs: 0.17 µs per
 * kvm_exit for a probe with tracing off, 0.81 µs with a filter nothing matches, in L1).
 *
 * It forks: the child holds the VMs and sleeps until killed (L1 powering off); the parent exits 0
 * once everything is pinned, or 1 with what failed on stderr (the child then exits too). It is not
 * a measurement: nothing here is read back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <arpa/inet.h>
#include <linux/kvm.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define TRACEFS "/sys/kernel/tracing"

static int fail(const char *what)
{
	fprintf(stderr, "nested-pin: %s: %s\n", what, strerror(errno));
	return -1;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return fail(path);
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : fail(path);
}

#define MSR_IA32_APICBASE 0x1b

/* A VM with one vCPU; with an in-kernel irqchip and the vCPU's APIC disabled when `irqchip`. The fds stay open. */
static int hold_vm(int kvm, int irqchip)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entry;
	} base = { .hdr = { .nmsrs = 1 }, .entry = { .index = MSR_IA32_APICBASE, .data = 0 } };
	int vm = ioctl(kvm, KVM_CREATE_VM, 0UL), vcpu;

	if (vm < 0)
		return fail("KVM_CREATE_VM");
	if (irqchip && ioctl(vm, KVM_CREATE_IRQCHIP, 0UL) < 0)
		return fail("KVM_CREATE_IRQCHIP");
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0UL);
	if (vcpu < 0)
		return fail("KVM_CREATE_VCPU");
	if (irqchip && ioctl(vcpu, KVM_SET_MSRS, &base) != 1)
		return fail("KVM_SET_MSRS(IA32_APICBASE = 0)");
	return 0;
}

/* Register every event matching SYSTEM:EVENT (a glob) in both pin instances. */
static int pin_events(const char *spec)
{
	char pattern[512];
	const char *colon = strchr(spec, ':');
	glob_t g;
	size_t i;
	int inst;

	if (!colon) {
		errno = EINVAL;
		return fail(spec);
	}
	for (inst = 0; inst < 2; inst++) {
		snprintf(pattern, sizeof(pattern), TRACEFS "/instances/kvmlab-pin-%c/events/%.*s/%s/enable", 'a' + inst, (int)(colon - spec), spec, colon + 1);
		if (glob(pattern, 0, NULL, &g) != 0) {
			fprintf(stderr, "nested-pin: no tracefs event matches %s\n", spec);
			return -1;
		}
		for (i = 0; i < g.gl_pathc; i++) {
			if (write_file(g.gl_pathv[i], "1")) {
				globfree(&g);
				return -1;
			}
		}
		globfree(&g);
	}
	return 0;
}

static int make_instances(void)
{
	char path[256];
	int inst;

	if (write_file(TRACEFS "/options/record-cmd", "0"))
		return -1;
	for (inst = 0; inst < 2; inst++) {
		snprintf(path, sizeof(path), TRACEFS "/instances/kvmlab-pin-%c", 'a' + inst);
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return fail(path);
		snprintf(path, sizeof(path), TRACEFS "/instances/kvmlab-pin-%c/tracing_on", 'a' + inst);
		if (write_file(path, "0"))
			return -1;
		/* they never record: give their ring buffers back (a page per CPU is the least there is) */
		snprintf(path, sizeof(path), TRACEFS "/instances/kvmlab-pin-%c/buffer_size_kb", 'a' + inst);
		if (write_file(path, "1"))
			return -1;
	}
	return 0;
}

/* One TCP connection to itself over loopback: listen, connect, accept, close. */
static int loopback_connection(int family)
{
	struct sockaddr_storage ss = {0};
	socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int l, c, a;

	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
	}
	l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -1;
	if (bind(l, (struct sockaddr *)&ss, len) || listen(l, 1) || getsockname(l, (struct sockaddr *)&ss, &len)) {
		close(l);
		return -1;
	}
	c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&ss, len)) {
		if (c >= 0)
			close(c);
		close(l);
		return -1;
	}
	a = accept(l, NULL, NULL);
	if (a >= 0)
		close(a);
	close(c);
	close(l);
	return a >= 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	int ready[2], kvm, i;
	char ok = 0;
	pid_t child;

	if (pipe(ready) < 0)
		return fail("pipe"), 1;
	child = fork();
	if (child < 0)
		return fail("fork"), 1;
	if (child > 0) {
		close(ready[1]);
		if (read(ready[0], &ok, 1) != 1 || ok != 1) {
			waitpid(child, NULL, 0);
			return 1;
		}
		return 0;
	}
	close(ready[0]);
	setsid();
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		fail("/dev/kvm");
		return 1;
	}
	if (hold_vm(kvm, 0) || hold_vm(kvm, 1))
		return 1;
	if (make_instances())
		return 1;
	for (i = 1; i < argc; i++)
		if (pin_events(argv[i]))
			return 1;
	if (loopback_connection(AF_INET))
		return fail("a TCP connection over 127.0.0.1"), 1;
	loopback_connection(AF_INET6); /* IPv6 may be off in L1; nothing there to pin then */
	/* the once-only keys are turned off by work queued on this CPU: let it run */
	usleep(200 * 1000);
	ok = 1;
	if (write(ready[1], &ok, 1) != 1)
		return 1;
	close(ready[1]);
	i = open("/dev/null", O_RDWR);
	if (i >= 0) {
		dup2(i, 0);
		dup2(i, 1);
		dup2(i, 2);
	}
	for (;;)
		pause();
}
