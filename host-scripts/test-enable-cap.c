/*
 * test-enable-cap: checks libkvmlab-exits.so by standing in for QEMU.
 *
 *   test-enable-cap shim RECORD         KVMLAB_DISABLE_EXITS (and optionally KVMLAB_HALT_POLL_NS)
 *                                       set: expects the rewrite, halt_poll and not_requested lines
 *   test-enable-cap bad-config RECORD   KVMLAB_DISABLE_EXITS unparsable: expects config_error and
 *                                       QEMU's mask passed on unchanged
 *   test-enable-cap passthrough RECORD  no KVMLAB_* set: expects no record file at all
 *
 * Always run under LD_PRELOAD of the shim (checked). Exits 0 with "SKIP" when /dev/kvm cannot be
 * used, 1 on a failed expectation.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvm-compat.h"

#define QEMU_MASK 0xeULL /* what cpu-pm=on asks for on a host that allows HLT|PAUSE|CSTATE */

static int failures;

#define EXPECT(cond, ...)                                                                      \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                   \
			fprintf(stderr, __VA_ARGS__);                                          \
			fputc('\n', stderr);                                                   \
			failures++;                                                            \
		}                                                                              \
	} while (0)

static char record[65536];

static int read_record(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	size_t len = 0;

	if (fd < 0)
		return -1;
	while ((n = read(fd, record + len, sizeof(record) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	record[len] = '\0';
	return 0;
}

/* The n-th (0-based) line whose event is `event`, copied into buf; 0 if absent. */
static int find_line(const char *event, int n, char *buf, size_t len)
{
	char needle[128];
	const char *p = record;

	snprintf(needle, sizeof(needle), "{\"event\":\"%s\",", event);
	while ((p = strstr(p, needle)) != NULL) {
		const char *eol = strchr(p, '\n');
		size_t l = eol ? (size_t)(eol - p) : strlen(p);
		if (n-- == 0) {
			if (l >= len)
				l = len - 1;
			memcpy(buf, p, l);
			buf[l] = '\0';
			return 1;
		}
		p += l;
	}
	return 0;
}

static int count_lines(const char *event)
{
	char buf[1024];
	int n = 0;

	while (find_line(event, n, buf, sizeof(buf)))
		n++;
	return n;
}

/* Integer field of a flat JSON line; exits the test if absent. */
static long long field(const char *line, const char *name)
{
	char needle[64];
	const char *p;
	char *end;
	long long v;

	snprintf(needle, sizeof(needle), "\"%s\":", name);
	p = strstr(line, needle);
	if (!p) {
		fprintf(stderr, "FAIL: no field %s in %s\n", name, line);
		exit(1);
	}
	v = strtoll(p + strlen(needle), &end, 10);
	if (end == p + strlen(needle) || (*end != ',' && *end != '}')) {
		fprintf(stderr, "FAIL: field %s is not an integer in %s\n", name, line);
		exit(1);
	}
	return v;
}

static int parse_mask(const char *s, unsigned long long *out)
{
	char *end;

	if (!s || !*s)
		return 0;
	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno == 0 && *end == '\0';
}

static int enable_disable_exits(int vm_fd, struct kvm_enable_cap *cap)
{
	memset(cap, 0, sizeof(*cap));
	cap->cap = KVM_CAP_X86_DISABLE_EXITS;
	cap->args[0] = QEMU_MASK;
	return ioctl(vm_fd, KVM_ENABLE_CAP, cap);
}

int main(int argc, char **argv)
{
	const char *mode, *path;
	unsigned long long want = 0, halt_ns = 0;
	int have_halt, kvm_fd, vm_a, vm_b, vcpu_a, vcpu_b, r, err, allowed;
	struct kvm_enable_cap cap;
	Dl_info info;
	char line[1024];

	if (argc != 3) {
		fprintf(stderr, "usage: %s shim|bad-config|passthrough RECORD\n", argv[0]);
		return 2;
	}
	mode = argv[1];
	path = argv[2];

	/* The shim must be what ioctl() resolves to, or every check below would be vacuous. */
	if (!dladdr((void *)ioctl, &info) || !info.dli_fname ||
	    !strstr(info.dli_fname, "libkvmlab-exits")) {
		fprintf(stderr, "FAIL: ioctl() does not come from libkvmlab-exits.so (LD_PRELOAD?)\n");
		return 1;
	}

	if (strcmp(mode, "passthrough") == 0) {
		if (getenv("KVMLAB_DISABLE_EXITS") || getenv("KVMLAB_EXITS_RECORD") ||
		    getenv("KVMLAB_HALT_POLL_NS")) {
			fprintf(stderr, "FAIL: passthrough mode needs every KVMLAB_* variable unset\n");
			return 1;
		}
	} else if (strcmp(mode, "shim") == 0) {
		if (!parse_mask(getenv("KVMLAB_DISABLE_EXITS"), &want)) {
			fprintf(stderr, "FAIL: shim mode needs a numeric KVMLAB_DISABLE_EXITS\n");
			return 1;
		}
		if (!getenv("KVMLAB_EXITS_RECORD") || strcmp(getenv("KVMLAB_EXITS_RECORD"), path)) {
			fprintf(stderr, "FAIL: KVMLAB_EXITS_RECORD must equal %s\n", path);
			return 1;
		}
	} else if (strcmp(mode, "bad-config") != 0) {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	have_halt = parse_mask(getenv("KVMLAB_HALT_POLL_NS"), &halt_ns);

	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0) {
		printf("SKIP %s: /dev/kvm: %s\n", mode, strerror(errno));
		return 0;
	}
	allowed = ioctl(kvm_fd, KVM_CHECK_EXTENSION, (unsigned long)KVM_CAP_X86_DISABLE_EXITS);
	if (allowed < 0)
		allowed = 0;

	/* VM A: what QEMU does with cpu-pm=on. */
	vm_a = ioctl(kvm_fd, KVM_CREATE_VM, 0UL);
	if (vm_a < 0) {
		printf("SKIP %s: KVM_CREATE_VM: %s\n", mode, strerror(errno));
		return 0;
	}
	r = enable_disable_exits(vm_a, &cap);
	err = r < 0 ? errno : 0;
	EXPECT(cap.args[0] == QEMU_MASK, "caller's kvm_enable_cap was modified (args[0]=%#llx)",
	       (unsigned long long)cap.args[0]);
	vcpu_a = ioctl(vm_a, KVM_CREATE_VCPU, 0UL);
	EXPECT(vcpu_a >= 0, "KVM_CREATE_VCPU on VM A: %s", strerror(errno));

	/* VM B: what QEMU does without cpu-pm=on. */
	vm_b = ioctl(kvm_fd, KVM_CREATE_VM, 0UL);
	EXPECT(vm_b >= 0, "second KVM_CREATE_VM: %s", strerror(errno));
	vcpu_b = vm_b >= 0 ? ioctl(vm_b, KVM_CREATE_VCPU, 0UL) : -1;
	EXPECT(vm_b < 0 || vcpu_b >= 0, "KVM_CREATE_VCPU on VM B: %s", strerror(errno));

	if (strcmp(mode, "passthrough") == 0) {
		struct stat st;
		int expect_ok = (QEMU_MASK & ~(unsigned long long)allowed) == 0;

		EXPECT(stat(path, &st) < 0 && errno == ENOENT, "record %s exists in passthrough mode", path);
		EXPECT(expect_ok ? r == 0 : (r == -1 && err == EINVAL),
		       "passthrough ENABLE_CAP(%#llx) with allowed %#x: ret %d errno %d", QEMU_MASK, allowed, r, err);
		goto out;
	}

	if (read_record(path) < 0) {
		fprintf(stderr, "FAIL: cannot read record %s: %s\n", path, strerror(errno));
		return 1;
	}

	if (strcmp(mode, "bad-config") == 0) {
		EXPECT(count_lines("config_error") == 1, "want one config_error line:\n%s", record);
		EXPECT(strstr(record, "\"variable\":\"KVMLAB_DISABLE_EXITS\"") != NULL,
		       "config_error does not name KVMLAB_DISABLE_EXITS:\n%s", record);
		EXPECT(find_line("disable_exits", 0, line, sizeof(line)), "no disable_exits line:\n%s", record);
		EXPECT(field(line, "requested") == (long long)QEMU_MASK && field(line, "applied") == (long long)QEMU_MASK,
		       "unparsable mask must leave QEMU's mask alone: %s", line);
		EXPECT(count_lines("disable_exits_not_requested") == 0,
		       "no wanted mask, so no not_requested line:\n%s", record);
		goto out;
	}

	/* shim mode */
	EXPECT(count_lines("disable_exits") == 1, "want exactly one disable_exits line:\n%s", record);
	if (find_line("disable_exits", 0, line, sizeof(line))) {
		int expect_ok = (want & ~(unsigned long long)allowed) == 0;

		EXPECT(field(line, "vm_fd") == vm_a, "vm_fd %lld != %d", field(line, "vm_fd"), vm_a);
		EXPECT(field(line, "requested") == (long long)QEMU_MASK, "requested != 0xe: %s", line);
		EXPECT(field(line, "applied") == (long long)want, "applied != %#llx: %s", want, line);
		EXPECT(field(line, "ret") == r && field(line, "errno") == err,
		       "record ret/errno differ from what the caller saw (%d/%d): %s", r, err, line);
		EXPECT(expect_ok ? r == 0 : (r == -1 && err == EINVAL),
		       "ENABLE_CAP(%#llx) with allowed %#x: ret %d errno %d", want, allowed, r, err);
		EXPECT(field(line, "pid") == (long long)getpid(), "pid mismatch: %s", line);
	}
	EXPECT(count_lines("disable_exits_not_requested") == 1, "want one not_requested line (VM B):\n%s", record);
	if (find_line("disable_exits_not_requested", 0, line, sizeof(line))) {
		EXPECT(field(line, "vm_fd") == vm_b, "not_requested vm_fd %lld != %d", field(line, "vm_fd"), vm_b);
		EXPECT(field(line, "wanted") == (long long)want, "wanted != %#llx: %s", want, line);
	}
	if (have_halt) {
		int halt_cap = ioctl(vm_a, KVM_CHECK_EXTENSION, (unsigned long)KVM_CAP_HALT_POLL);
		int i;

		EXPECT(count_lines("halt_poll") == 2, "want one halt_poll line per VM:\n%s", record);
		for (i = 0; i < 2 && find_line("halt_poll", i, line, sizeof(line)); i++) {
			EXPECT(field(line, "vm_fd") == (i == 0 ? vm_a : vm_b), "halt_poll vm_fd: %s", line);
			EXPECT(field(line, "ns") == (long long)halt_ns, "halt_poll ns: %s", line);
			EXPECT(halt_cap > 0 ? field(line, "ret") == 0 : field(line, "ret") == -1,
			       "halt_poll ret with KVM_CAP_HALT_POLL=%d: %s", halt_cap, line);
		}
	} else {
		EXPECT(count_lines("halt_poll") == 0, "halt_poll line without KVMLAB_HALT_POLL_NS:\n%s", record);
	}
	EXPECT(count_lines("config_error") == 0, "unexpected config_error:\n%s", record);

out:
	if (failures) {
		fprintf(stderr, "test-enable-cap %s: %d failure(s)\n", mode, failures);
		return 1;
	}
	printf("ok %s (allowed %#x)\n", mode, allowed);
	return 0;
}
