/*
 * libkvmlab-exits.so: LD_PRELOAD shim that gives stock QEMU per-bit control of
 * KVM_CAP_X86_DISABLE_EXITS and a per-VM KVM_CAP_HALT_POLL.
 *
 * QEMU only exposes the capability as `-overcommit cpu-pm=on`, which enables everything the host
 * allows of MWAIT|HLT|PAUSE|CSTATE. This shim wraps ioctl() and, for KVM_ENABLE_CAP with cap 143,
 * sends the mask from the environment instead of QEMU's.
 *
 * Environment (all optional; with none of the KVMLAB_* variables set the shim is a pass-through):
 *   KVMLAB_DISABLE_EXITS=<mask>   decimal or 0x-hex; the bits to disable (replaces QEMU's args[0])
 *   KVMLAB_EXITS_RECORD=<path>    append one JSON object per line describing what happened
 *   KVMLAB_HALT_POLL_NS=<ns>      decimal or 0x-hex; KVM_ENABLE_CAP(KVM_CAP_HALT_POLL, ns) on each
 *                                 VM just before its first KVM_CREATE_VCPU
 *
 * Record lines (numbers are numbers):
 *   {"event":"disable_exits","pid":P,"vm_fd":F,"requested":Q,"applied":A,"ret":R,"errno":E}
 *       QEMU asked for Q; A was sent to KVM (A == Q when KVMLAB_DISABLE_EXITS is unset).
 *   {"event":"disable_exits_not_requested","pid":P,"vm_fd":F,"wanted":W}
 *       KVMLAB_DISABLE_EXITS=W was set but no KVM_ENABLE_CAP(143) reached this VM before its
 *       first vCPU (QEMU ran without cpu-pm=on): nothing was applied.
 *   {"event":"halt_poll","pid":P,"vm_fd":F,"ns":N,"ret":R,"errno":E}
 *   {"event":"config_error","pid":P,"variable":"KVMLAB_...","reason":"..."}
 *       A variable could not be parsed; it is ignored (that part of the shim stays pass-through).
 *
 * Concurrency: QEMU creates vCPUs from several threads. All shared state is C11 atomics; each
 * record is one write() to an O_APPEND descriptor. The ioctl path uses no locks, no malloc and no
 * stdio, and errno as seen by the caller is that of the real ioctl.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm-compat.h"

typedef int (*ioctl_fn)(int, unsigned long, ...);

static _Atomic(ioctl_fn) real_ioctl;

/* Configuration, parsed once in the constructor (single-threaded, before QEMU's main). */
static int cfg_loaded;
static int have_mask;
static uint64_t cfg_mask;
static int have_halt_poll;
static uint64_t cfg_halt_poll_ns;
static const char *cfg_record; /* points into environ; QEMU does not modify its environment */

/*
 * Per-VM state, keyed by the fd KVM_CREATE_VM returned. A small fixed table: QEMU creates one VM.
 * vcpu_state: 0 = no vCPU yet, 1 = first KVM_CREATE_VCPU is doing the pre-vCPU work, 2 = done.
 */
#define MAX_VMS 32
struct vm_slot {
	atomic_int fd;         /* -1 = free */
	atomic_int exits_seen; /* KVM_ENABLE_CAP(143) went through on this VM */
	atomic_int vcpu_state;
};
static struct vm_slot vms[MAX_VMS];

/* ---- small async-signal-safe formatting --------------------------------------------------------- */

struct line {
	char buf[512];
	size_t len;
};

static void put_str(struct line *l, const char *s)
{
	while (*s && l->len < sizeof(l->buf) - 2)
		l->buf[l->len++] = *s++;
}

/* A JSON string: only used for fixed names and reasons, but escape anyway. */
static void put_json_str(struct line *l, const char *s)
{
	put_str(l, "\"");
	for (; *s && l->len < sizeof(l->buf) - 8; s++) {
		char c = *s;
		if (c == '"' || c == '\\') {
			l->buf[l->len++] = '\\';
			l->buf[l->len++] = c;
		} else if ((unsigned char)c < 0x20) {
			l->buf[l->len++] = '?';
		} else {
			l->buf[l->len++] = c;
		}
	}
	put_str(l, "\"");
}

static void put_u64(struct line *l, uint64_t v)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n && l->len < sizeof(l->buf) - 2)
		l->buf[l->len++] = tmp[--n];
}

static void put_i64(struct line *l, int64_t v)
{
	if (v < 0) {
		put_str(l, "-");
		put_u64(l, (uint64_t)0 - (uint64_t)v);
	} else {
		put_u64(l, (uint64_t)v);
	}
}

static void put_field_i(struct line *l, const char *name, int64_t v)
{
	put_str(l, ",\"");
	put_str(l, name);
	put_str(l, "\":");
	put_i64(l, v);
}

static void put_field_u(struct line *l, const char *name, uint64_t v)
{
	put_str(l, ",\"");
	put_str(l, name);
	put_str(l, "\":");
	put_u64(l, v);
}

static void line_start(struct line *l, const char *event)
{
	l->len = 0;
	put_str(l, "{\"event\":");
	put_json_str(l, event);
	put_field_i(l, "pid", (int64_t)getpid());
}

/* Appends the line to the record file. Never changes errno. */
static void line_emit(struct line *l)
{
	int saved = errno;
	int fd;
	size_t off = 0;

	l->buf[l->len++] = '}';
	l->buf[l->len++] = '\n';
	if (!cfg_record || !*cfg_record)
		goto out;
	fd = open(cfg_record, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		goto out;
	while (off < l->len) {
		ssize_t n = write(fd, l->buf + off, l->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
out:
	errno = saved;
}

/* ---- configuration -------------------------------------------------------------------------- */

/* Decimal or 0x-hex, whole string, digits only, no overflow. Returns 1 on success. */
static int parse_u64(const char *s, uint64_t *out)
{
	unsigned base = 10;
	uint64_t v = 0;

	if (!s)
		return 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return 0;
	for (; *s; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return 0;
		if (v > (UINT64_MAX - d) / base)
			return 0;
		v = v * base + d;
	}
	*out = v;
	return 1;
}

static void config_error(const char *variable, const char *reason)
{
	static const char prefix[] = "libkvmlab-exits: ignoring ";
	struct line l;

	/* Also tell stderr: a variant that silently ran unmodified would be a wrong measurement. */
	(void)!write(2, prefix, sizeof(prefix) - 1);
	(void)!write(2, variable, strlen(variable));
	(void)!write(2, ": ", 2);
	(void)!write(2, reason, strlen(reason));
	(void)!write(2, "\n", 1);

	line_start(&l, "config_error");
	put_str(&l, ",\"variable\":");
	put_json_str(&l, variable);
	put_str(&l, ",\"reason\":");
	put_json_str(&l, reason);
	line_emit(&l);
}

static void load_config(void)
{
	const char *s;
	int saved = errno;

	cfg_record = getenv("KVMLAB_EXITS_RECORD");

	s = getenv("KVMLAB_DISABLE_EXITS");
	if (s) {
		if (parse_u64(s, &cfg_mask) && cfg_mask <= 0xffffffffULL)
			have_mask = 1;
		else
			config_error("KVMLAB_DISABLE_EXITS", "not a decimal or 0x-hex 32-bit mask");
	}
	s = getenv("KVMLAB_HALT_POLL_NS");
	if (s) {
		if (parse_u64(s, &cfg_halt_poll_ns) && cfg_halt_poll_ns <= 0xffffffffULL)
			have_halt_poll = 1;
		else
			config_error("KVMLAB_HALT_POLL_NS", "not a decimal or 0x-hex 32-bit count of ns");
	}
	errno = saved;
}

static ioctl_fn get_real_ioctl(void)
{
	ioctl_fn f = atomic_load_explicit(&real_ioctl, memory_order_acquire);

	if (!f) {
		/* Only reached if ioctl() runs before our constructor (another library's constructor). */
		f = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
		atomic_store_explicit(&real_ioctl, f, memory_order_release);
	}
	return f;
}

__attribute__((constructor)) static void shim_init(void)
{
	int i;

	for (i = 0; i < MAX_VMS; i++) {
		atomic_init(&vms[i].fd, -1);
		atomic_init(&vms[i].exits_seen, 0);
		atomic_init(&vms[i].vcpu_state, 0);
	}
	get_real_ioctl();
	load_config();
	cfg_loaded = 1;
}

static int active(void)
{
	return cfg_loaded && (have_mask || have_halt_poll || (cfg_record && *cfg_record));
}

/* ---- VM tracking ------------------------------------------------------------------------------ */

static struct vm_slot *find_vm(int fd)
{
	int i;

	for (i = 0; i < MAX_VMS; i++)
		if (atomic_load(&vms[i].fd) == fd)
			return &vms[i];
	return NULL;
}

static void track_vm(int fd)
{
	struct vm_slot *s = find_vm(fd); /* fd number reused after a close: start over */
	int i;

	if (!s) {
		for (i = 0; i < MAX_VMS && !s; i++) {
			int expected = -1;
			if (atomic_compare_exchange_strong(&vms[i].fd, &expected, fd))
				s = &vms[i];
		}
		if (!s)
			return; /* table full: this VM gets no per-VM handling */
	}
	atomic_store(&s->exits_seen, 0);
	atomic_store(&s->vcpu_state, 0);
}

/* ---- the work -------------------------------------------------------------------------------- */

static int do_enable_disable_exits(ioctl_fn f, int fd, unsigned long req, struct kvm_enable_cap *qemu_cap)
{
	struct kvm_enable_cap cap;
	struct vm_slot *s;
	struct line l;
	int ret, err;

	/* Work on a copy: the caller's struct is left as it passed it. */
	memcpy(&cap, qemu_cap, sizeof(cap));
	if (have_mask)
		cap.args[0] = cfg_mask;
	ret = f(fd, req, &cap);
	err = ret < 0 ? errno : 0;

	if ((s = find_vm(fd)) != NULL)
		atomic_store(&s->exits_seen, 1);

	line_start(&l, "disable_exits");
	put_field_i(&l, "vm_fd", fd);
	put_field_u(&l, "requested", qemu_cap->args[0]);
	put_field_u(&l, "applied", cap.args[0]);
	put_field_i(&l, "ret", ret);
	put_field_i(&l, "errno", err);
	line_emit(&l);

	errno = err;
	return ret;
}

/* Runs once per VM, before its first KVM_CREATE_VCPU; later callers wait until it is done. */
static void before_first_vcpu(ioctl_fn f, int vm_fd)
{
	struct vm_slot *s = find_vm(vm_fd);
	int expected = 0;
	struct line l;

	if (!s)
		return;
	if (!atomic_compare_exchange_strong(&s->vcpu_state, &expected, 1)) {
		while (atomic_load(&s->vcpu_state) == 1)
			sched_yield();
		return;
	}

	if (have_mask && !atomic_load(&s->exits_seen)) {
		line_start(&l, "disable_exits_not_requested");
		put_field_i(&l, "vm_fd", vm_fd);
		put_field_u(&l, "wanted", cfg_mask);
		line_emit(&l);
	}
	if (have_halt_poll) {
		struct kvm_enable_cap cap;
		int ret, err;

		memset(&cap, 0, sizeof(cap));
		cap.cap = KVM_CAP_HALT_POLL;
		cap.args[0] = cfg_halt_poll_ns;
		ret = f(vm_fd, KVM_ENABLE_CAP, &cap);
		err = ret < 0 ? errno : 0;
		line_start(&l, "halt_poll");
		put_field_i(&l, "vm_fd", vm_fd);
		put_field_u(&l, "ns", cfg_halt_poll_ns);
		put_field_i(&l, "ret", ret);
		put_field_i(&l, "errno", err);
		line_emit(&l);
	}
	atomic_store(&s->vcpu_state, 2);
}

/* Same prototype as glibc's <sys/ioctl.h>. The third argument is an int or a pointer; on the
 * LP64 ABIs QEMU runs on either fits in, and is passed on unchanged as, one pointer-sized word. */
int ioctl(int fd, unsigned long request, ...)
{
	ioctl_fn f = get_real_ioctl();
	va_list ap;
	void *arg;
	int ret, saved;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);

	if (!f) {
		errno = ENOSYS;
		return -1;
	}
	if (!active())
		return f(fd, request, arg);

	switch (request) {
	case KVM_ENABLE_CAP:
		if (arg && ((struct kvm_enable_cap *)arg)->cap == KVM_CAP_X86_DISABLE_EXITS)
			return do_enable_disable_exits(f, fd, request, (struct kvm_enable_cap *)arg);
		return f(fd, request, arg);
	case KVM_CREATE_VM:
		ret = f(fd, request, arg);
		if (ret >= 0) {
			saved = errno;
			track_vm(ret);
			errno = saved;
		}
		return ret;
	case KVM_CREATE_VCPU:
		saved = errno;
		before_first_vcpu(f, fd);
		errno = saved;
		return f(fd, request, arg);
	default:
		return f(fd, request, arg);
	}
}
