/*
 * exit-count-bpf: count kvm:kvm_exit hits per (thread, exit reason) with a BPF program on the
 * tracepoint, for test/bench/exit-trace-cost.mjs to price against kvmlab's histogram trigger. Not a
 * kvmlab collector: a measurement of the alternative (what a counter that skips the histogram's
 * update would cost per exit).
 *
 *   exit-count-bpf      (as root; the bench compiles it with cc -O2)
 *
 * It loads a hash map (key: tid << 32 | exit_reason, value: hits) and a 27-instruction program that
 * reads exit_reason from the event at the offset the tracepoint's format file gives, then attaches
 * it with perf_event_open (PERF_TYPE_TRACEPOINT, all CPUs through the tracepoint's program array)
 * and prints "attached". On SIGTERM it prints "hits N keys K" (the map's sum) and exits, which
 * detaches it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EVENT "/sys/kernel/tracing/events/kvm/kvm_exit/"

static int fail(const char *what)
{
	printf("not attached: %s: %s\n", what, strerror(errno));
	return 1;
}

static long bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

/* The tracepoint's id, and a field's offset in its event, from tracefs. */
static long read_id(void)
{
	FILE *f = fopen(EVENT "id", "r");
	long id = -1;
	if (f && fscanf(f, "%ld", &id) != 1)
		id = -1;
	if (f)
		fclose(f);
	return id;
}

static int field_offset(const char *field)
{
	char line[512], want[64];
	FILE *f = fopen(EVENT "format", "r");
	int off = -1;
	snprintf(want, sizeof(want), " %s;", field);
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, want) && sscanf(strstr(line, "offset:"), "offset:%d;", &off) == 1)
			break;
	if (f)
		fclose(f);
	return off;
}

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

int main(void)
{
	char log[65536] = "";
	union bpf_attr a;
	long id = read_id();
	int reason = field_offset("exit_reason");
	int map, prog, ev;

	if (id < 0 || reason < 8)
		return errno = ENOENT, fail(EVENT "id or format");

	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_HASH;
	a.key_size = 8;
	a.value_size = 8;
	a.max_entries = 16384;
	map = bpf(BPF_MAP_CREATE, &a);
	if (map < 0)
		return fail("BPF_MAP_CREATE");

	struct bpf_insn insns[] = {
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, 6, 1, 0, 0),			/* r6 = ctx */
		INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_current_pid_tgid),	/* r0 = tgid << 32 | tid */
		INSN(BPF_ALU64 | BPF_LSH | BPF_K, 0, 0, 0, 32),			/* r0 = tid << 32 */
		INSN(BPF_LDX | BPF_MEM | BPF_W, 7, 6, (short)reason, 0),		/* r7 = exit_reason */
		INSN(BPF_ALU64 | BPF_OR | BPF_X, 0, 7, 0, 0),			/* key = tid << 32 | exit_reason */
		INSN(BPF_STX | BPF_MEM | BPF_DW, 10, 0, -8, 0),			/* *(fp - 8) = key */
		INSN(BPF_LD | BPF_DW | BPF_IMM, 1, BPF_PSEUDO_MAP_FD, 0, map),	/* r1 = map */
		INSN(0, 0, 0, 0, 0),
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0),			/* r2 = fp - 8 */
		INSN(BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, -8),
		INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
		INSN(BPF_JMP | BPF_JNE | BPF_K, 0, 0, 11, 0),			/* found: add one */
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, 1, 0, 0, 1),			/* first hit: insert 1 */
		INSN(BPF_STX | BPF_MEM | BPF_DW, 10, 1, -16, 0),
		INSN(BPF_LD | BPF_DW | BPF_IMM, 1, BPF_PSEUDO_MAP_FD, 0, map),
		INSN(0, 0, 0, 0, 0),
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0),
		INSN(BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, -8),
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, 3, 10, 0, 0),
		INSN(BPF_ALU64 | BPF_ADD | BPF_K, 3, 0, 0, -16),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, 4, 0, 0, BPF_NOEXIST),
		INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_update_elem),
		INSN(BPF_JMP | BPF_JA, 0, 0, 2, 0),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, 1, 0, 0, 1),			/* found: */
		INSN(BPF_STX | BPF_ATOMIC | BPF_DW, 0, 1, 0, BPF_ADD),		/* lock *(u64 *)r0 += 1 */
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0),
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_TRACEPOINT;
	a.insns = (uintptr_t)insns;
	a.insn_cnt = sizeof(insns) / sizeof(insns[0]);
	a.license = (uintptr_t)"GPL";
	a.log_buf = (uintptr_t)log;
	a.log_size = sizeof(log);
	a.log_level = 1;
	prog = bpf(BPF_PROG_LOAD, &a);
	if (prog < 0) {
		fprintf(stderr, "%s", log);
		return fail("BPF_PROG_LOAD");
	}

	struct perf_event_attr pa = { .type = PERF_TYPE_TRACEPOINT, .size = sizeof(pa), .config = (uint64_t)id, .sample_period = 1, .wakeup_events = 1 };
	ev = syscall(__NR_perf_event_open, &pa, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
	if (ev < 0)
		return fail("perf_event_open");
	if (ioctl(ev, PERF_EVENT_IOC_SET_BPF, prog) < 0)
		return fail("PERF_EVENT_IOC_SET_BPF");
	if (ioctl(ev, PERF_EVENT_IOC_ENABLE, 0) < 0)
		return fail("PERF_EVENT_IOC_ENABLE");

	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	printf("attached\n");
	fflush(stdout);
	while (!stop)
		pause();

	uint64_t key = 0, next, value, hits = 0, keys = 0;
	int first = 1;
	for (;;) {
		memset(&a, 0, sizeof(a));
		a.map_fd = map;
		a.key = first ? 0 : (uintptr_t)&key;
		a.next_key = (uintptr_t)&next;
		if (bpf(BPF_MAP_GET_NEXT_KEY, &a) < 0)
			break;
		first = 0;
		key = next;
		memset(&a, 0, sizeof(a));
		a.map_fd = map;
		a.key = (uintptr_t)&key;
		a.value = (uintptr_t)&value;
		if (bpf(BPF_MAP_LOOKUP_ELEM, &a) == 0) {
			hits += value;
			keys++;
		}
	}
	printf("hits %llu keys %llu\n", (unsigned long long)hits, (unsigned long long)keys);
	return 0;
}
