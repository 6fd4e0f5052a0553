/*
 * kvm-probe: ask the host's KVM what it allows, print one JSON object on stdout.
 *
 * Exit status: 0 whenever a report was printed (including "no /dev/kvm"); 2 on an internal
 * failure (output buffer overflow, write error). Every KVM failure is data, not an error.
 *
 * Output shape (numbers are numbers; an ioctl that failed is {"ok":false,"errno":N,"error":"..."}):
 * {
 *   "probe_version": 1,
 *   "host": {"sysname":"Linux","release":"6.1.0-...","machine":"x86_64"},
 *   "kvm_params": {"halt_poll_ns":200000|null,"mitigate_smt_rsb":false|true|null},
 *   "cpuid_leaf5": {"eax":N,"ebx":N,"ecx":N,"edx":N} | null,   MONITOR/MWAIT leaf; null: no such leaf
 *   "dev_kvm": {"ok":true} | ERR,
 *   "api_version": 12 | ERR | null,                   null: /dev/kvm not open
 *   "vm": {"ok":true,"type":0} | ERR | null,
 *   "caps": null | {                                  null: /dev/kvm not open
 *     "x86_disable_exits": {"vm": N|ERR|null, "system": N|ERR},
 *     "halt_poll": N|ERR|null, "irqchip": ..., "binary_stats_fd": ..., "nr_vcpus": ..., "max_vcpus": ...
 *   },                                                 null inside caps: no VM fd to ask
 *   "enable_disable_exits": null | {"mask":N,"ret":R,"errno":E[,"error":"..."]},
 *   "enable_disable_exits_unsupported": null | {...same...},   bits 0..4 the host does not allow
 *   "vcpu": null | {"ok":true} | ERR,
 *   "enable_disable_exits_after_vcpu": null | {...same...}
 * }
 * Each KVM_ENABLE_CAP attempt uses its own fresh VM so one result cannot influence another.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "kvm-compat.h"

#define KNOWN_EXIT_BITS                                                              \
	(KVM_X86_DISABLE_EXITS_MWAIT | KVM_X86_DISABLE_EXITS_HLT |                   \
	 KVM_X86_DISABLE_EXITS_PAUSE | KVM_X86_DISABLE_EXITS_CSTATE |                \
	 KVM_X86_DISABLE_EXITS_APERFMPERF)

/* ---- JSON output into one buffer, written at the end ---------------------------------------- */

static char out[16384];
static size_t outlen;
static int overflow;

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...)
{
	va_list ap;
	int n;

	if (overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(out + outlen, sizeof(out) - outlen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(out) - outlen) {
		overflow = 1;
		return;
	}
	outlen += (size_t)n;
}

static void emit_str(const char *s)
{
	emit("\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			emit("\\%c", c);
		else if (c < 0x20)
			emit("\\u%04x", c);
		else
			emit("%c", c);
	}
	emit("\"");
}

static void emit_err(int err)
{
	emit("{\"ok\":false,\"errno\":%d,\"error\":", err);
	emit_str(strerror(err));
	emit("}");
}

/* ioctl returning a number, or ERR on -1. */
static void emit_ioctl_num(int fd, unsigned long req, unsigned long arg)
{
	int r = ioctl(fd, req, arg);
	if (r < 0)
		emit_err(errno);
	else
		emit("%d", r);
}

/* ---- helpers ---------------------------------------------------------------------------------- */

static int create_vm(int kvm_fd, int *err)
{
	int fd;

	/* Retry on EINTR: KVM_CREATE_VM can be interrupted on busy hosts. */
	do {
		fd = ioctl(kvm_fd, KVM_CREATE_VM, 0UL);
	} while (fd < 0 && errno == EINTR);
	*err = fd < 0 ? errno : 0;
	return fd;
}

static int enable_cap(int vm_fd, unsigned int cap, unsigned long long arg0, int *err)
{
	struct kvm_enable_cap ec;
	int r;

	memset(&ec, 0, sizeof(ec));
	ec.cap = cap;
	ec.args[0] = arg0;
	r = ioctl(vm_fd, KVM_ENABLE_CAP, &ec);
	*err = r < 0 ? errno : 0;
	return r;
}

static void emit_enable_result(unsigned long long mask, int r, int err)
{
	emit("{\"mask\":%llu,\"ret\":%d,\"errno\":%d", mask, r, err);
	if (err) {
		emit(",\"error\":");
		emit_str(strerror(err));
	}
	emit("}");
}

/* Try KVM_ENABLE_CAP(DISABLE_EXITS, mask) on a fresh VM, optionally after creating vCPU 0. */
static void emit_enable_on_fresh_vm(int kvm_fd, unsigned long long mask, int after_vcpu)
{
	int err, vm_fd, vcpu_fd = -1, r;

	vm_fd = create_vm(kvm_fd, &err);
	if (vm_fd < 0) {
		emit("{\"mask\":%llu,\"ret\":-1,\"errno\":%d,\"error\":", mask, err);
		emit_str(strerror(err));
		emit(",\"stage\":\"create_vm\"}");
		return;
	}
	if (after_vcpu) {
		vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0UL);
		if (vcpu_fd < 0) {
			err = errno;
			emit("{\"mask\":%llu,\"ret\":-1,\"errno\":%d,\"error\":", mask, err);
			emit_str(strerror(err));
			emit(",\"stage\":\"create_vcpu\"}");
			close(vm_fd);
			return;
		}
	}
	r = enable_cap(vm_fd, KVM_CAP_X86_DISABLE_EXITS, mask, &err);
	emit_enable_result(mask, r, err);
	if (vcpu_fd >= 0)
		close(vcpu_fd);
	close(vm_fd);
}

/* Reads a small sysfs file; returns 1 and fills buf on success. */
static int read_param(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 1;
}

static void emit_kvm_params(void)
{
	char buf[64];
	char *end;
	long long v;

	emit("\"kvm_params\":{\"halt_poll_ns\":");
	if (read_param("/sys/module/kvm/parameters/halt_poll_ns", buf, sizeof(buf)) &&
	    (v = strtoll(buf, &end, 10), end != buf && *end == '\0'))
		emit("%lld", v);
	else
		emit("null");
	emit(",\"mitigate_smt_rsb\":");
	if (read_param("/sys/module/kvm/parameters/mitigate_smt_rsb", buf, sizeof(buf)) &&
	    (buf[0] == 'Y' || buf[0] == 'N'))
		emit(buf[0] == 'Y' ? "true" : "false");
	else
		emit("null");
	emit("}");
}

/*
 * CPUID leaf 5 as this CPU reports it: with cpu-pm=on QEMU gives the guest exactly this leaf, and
 * whether its EDX lists C1 sub-states decides whether Linux idles in MWAIT or HLT.
 */
static void emit_leaf5(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned int eax, ebx, ecx, edx;

	if (__get_cpuid_max(0, NULL) >= 5 && __get_cpuid(5, &eax, &ebx, &ecx, &edx)) {
		emit(",\"cpuid_leaf5\":{\"eax\":%u,\"ebx\":%u,\"ecx\":%u,\"edx\":%u}", eax, ebx, ecx, edx);
		return;
	}
#endif
	emit(",\"cpuid_leaf5\":null");
}

/* ---- main ------------------------------------------------------------------------------------- */

int main(void)
{
	struct utsname uts;
	int kvm_fd, vm_fd = -1, err, api, sys_mask = -1;

	emit("{\"probe_version\":1,\"host\":");
	if (uname(&uts) == 0) {
		emit("{\"sysname\":");
		emit_str(uts.sysname);
		emit(",\"release\":");
		emit_str(uts.release);
		emit(",\"machine\":");
		emit_str(uts.machine);
		emit("}");
	} else {
		emit("null");
	}
	emit(",");
	emit_kvm_params();
	emit_leaf5();

	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	emit(",\"dev_kvm\":");
	if (kvm_fd < 0) {
		emit_err(errno);
		emit(",\"api_version\":null,\"vm\":null,\"caps\":null,\"enable_disable_exits\":null,"
		     "\"enable_disable_exits_unsupported\":null,\"vcpu\":null,"
		     "\"enable_disable_exits_after_vcpu\":null}\n");
		goto done;
	}
	emit("{\"ok\":true}");

	api = ioctl(kvm_fd, KVM_GET_API_VERSION, 0UL);
	emit(",\"api_version\":");
	if (api < 0)
		emit_err(errno);
	else
		emit("%d", api);

	/* Machine type 0: the default VM type on x86 (and most architectures). */
	vm_fd = create_vm(kvm_fd, &err);
	emit(",\"vm\":");
	if (vm_fd < 0)
		emit_err(err);
	else
		emit("{\"ok\":true,\"type\":0}");

	emit(",\"caps\":{\"x86_disable_exits\":{\"vm\":");
	if (vm_fd >= 0)
		emit_ioctl_num(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_DISABLE_EXITS);
	else
		emit("null");
	emit(",\"system\":");
	sys_mask = ioctl(kvm_fd, KVM_CHECK_EXTENSION, (unsigned long)KVM_CAP_X86_DISABLE_EXITS);
	if (sys_mask < 0)
		emit_err(errno);
	else
		emit("%d", sys_mask);
	emit("}");

	{
		static const struct {
			const char *name;
			unsigned long cap;
		} vm_caps[] = {
			{ "halt_poll", KVM_CAP_HALT_POLL },
			{ "irqchip", KVM_CAP_IRQCHIP },
			{ "binary_stats_fd", KVM_CAP_BINARY_STATS_FD },
			{ "nr_vcpus", KVM_CAP_NR_VCPUS },
			{ "max_vcpus", KVM_CAP_MAX_VCPUS },
		};
		size_t i;

		for (i = 0; i < sizeof(vm_caps) / sizeof(vm_caps[0]); i++) {
			emit(",\"%s\":", vm_caps[i].name);
			if (vm_fd >= 0)
				emit_ioctl_num(vm_fd, KVM_CHECK_EXTENSION, vm_caps[i].cap);
			else
				emit("null");
		}
	}
	emit("}");

	if (vm_fd < 0) {
		emit(",\"enable_disable_exits\":null,\"enable_disable_exits_unsupported\":null,"
		     "\"vcpu\":null,\"enable_disable_exits_after_vcpu\":null}\n");
		goto done;
	}

	/*
	 * The mask to try is what the VM fd says is allowed (what KVM checks against); fall back to
	 * the system answer if the VM fd refused the question.
	 */
	{
		int vm_mask = ioctl(vm_fd, KVM_CHECK_EXTENSION, (unsigned long)KVM_CAP_X86_DISABLE_EXITS);
		unsigned long long allowed = vm_mask >= 0 ? (unsigned long long)vm_mask
				       : sys_mask >= 0 ? (unsigned long long)sys_mask : 0ULL;
		unsigned long long unsupported = KNOWN_EXIT_BITS & ~allowed;
		int vcpu_fd;

		emit(",\"enable_disable_exits\":");
		emit_enable_on_fresh_vm(kvm_fd, allowed, 0);

		emit(",\"enable_disable_exits_unsupported\":");
		if (unsupported)
			emit_enable_on_fresh_vm(kvm_fd, unsupported, 0);
		else
			emit("null");

		/* vCPU creation on the first VM (no ENABLE_CAP was issued on it). */
		emit(",\"vcpu\":");
		vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0UL);
		if (vcpu_fd < 0) {
			emit_err(errno);
		} else {
			emit("{\"ok\":true}");
			close(vcpu_fd);
		}

		emit(",\"enable_disable_exits_after_vcpu\":");
		emit_enable_on_fresh_vm(kvm_fd, allowed, 1);
	}
	emit("}\n");

done:
	if (vm_fd >= 0)
		close(vm_fd);
	if (kvm_fd >= 0)
		close(kvm_fd);
	if (overflow) {
		fputs("kvm-probe: output buffer overflow\n", stderr);
		return 2;
	}
	if (fwrite(out, 1, outlen, stdout) != outlen || fflush(stdout) != 0) {
		perror("kvm-probe: write");
		return 2;
	}
	return 0;
}
