/* Catching the runs the kernel skips. The kernel never re-enters a tp_btf or raw_tp program
 * on a CPU where it is already running (a per-program `active` counter in __bpf_trace_run):
 * a state change or tcp_probe fired from a softirq that interrupts the tool's program is
 * skipped and only counted (`recursion_misses`). So every tool has, on the same tracepoint,
 * a second program, the catcher, with a counter of its own. User space attaches the main
 * program first, so for every event the kernel runs the main program, then the catcher
 * (src/attach.rs). The catcher calls the same handler only when the main program did not
 * run for this event: the kernel skipped it.
 *
 * How the catcher knows: by the address of the event's arguments, `ctx`. The kernel calls
 * each program attached to a tracepoint from the same frame (one bpf_trace_runN() call per
 * program, each building the argument array at the same place on the stack), so the main
 * program and the catcher of one event see the same ctx. An event nested in another one's
 * programs (a softirq on the interrupt stack, or deeper on the task's stack) has its
 * arguments elsewhere. The main program notes its ctx in one of NESTED_RAN per-CPU slots,
 * round robin; the catcher looks for its own ctx there and clears the slot it finds: found,
 * the main program ran for this event; not found, it was skipped, and the catcher runs the
 * handler. No helper call on either side: a store in the main program, four compares in the
 * catcher.
 *
 * Why it holds. Slots outlive their event only until its catcher runs, and between a main
 * program's run and its catcher's only nested events can come in: one per context above it
 * (softirq, hardirq, NMI), fewer than NESTED_RAN, so no slot is overwritten while its
 * catcher is still to come (that would run an event twice). The kernel's own prologue and
 * epilogue around the main program (already `active`, not yet or no longer running its
 * code) are covered too: an event nested there finds no slot with its ctx. A slot goes
 * stale only when its catcher was itself skipped; a later event at the same address whose
 * main program is skipped can then go uncaught: it is lost, and counted as lost. On a
 * kernel that re-enters programs instead of skipping them, every main program run is
 * followed by its catcher's before the run it interrupted goes on, and the catcher never
 * catches.
 *
 * What is still lost: an event whose main program and catcher are both skipped (a catcher
 * catching in a softirq interrupted by a hardirq that changes a socket's state, which TCP
 * does not do). Lost = main programs' recursion_misses − catches, exactly (src/stream.rs);
 * the catcher's own misses are not losses: the main program ran for those events. */
#ifndef TCPTOOLS_NESTED_BPF_H
#define TCPTOOLS_NESTED_BPF_H

extern int LINUX_KERNEL_VERSION __kconfig;

/* Whether the kernel skips a program's nested runs (Linux 6.1+) rather than re-entering it.
 * Where it does, two runs of one program never interleave on a CPU, and the catcher's
 * runs of the handler are the ones nested in the main program's: memory that only one of
 * the two programs writes, per CPU, takes plain adds. */
#define NESTED_GUARDED (LINUX_KERNEL_VERSION >= KERNEL_VERSION(6, 1, 0))

/* Main program runs whose catcher may still be to come: more than the contexts that can
 * nest (task, softirq, hardirq, NMI). */
#define NESTED_RAN 4

/* What one tracepoint's pair of programs shares per CPU. */
struct nested_state {
	__u64 catches;          /* events the catcher ran the handler for: runs the kernel skipped */
	__u64 ran[NESTED_RAN];  /* ctx of the main program's last runs; 0 once its catcher ran */
	__u32 next;             /* the slot the main program's next run notes its ctx in */
};

/* The main program's entry: it runs for this event. */
static __always_inline void nested_enter(void *ctx, void *map)
{
	__u32 zero = 0;
	struct nested_state *st = bpf_map_lookup_elem(map, &zero);

	if (!st)
		return;
	*(void *volatile *)&st->ran[st->next & (NESTED_RAN - 1)] = ctx;
	st->next += 1;
}

/* The catcher: true when the main program did not run for this event (counted as caught). */
static __always_inline int nested_skipped(void *ctx, void *map)
{
	__u32 zero = 0;
	struct nested_state *st = bpf_map_lookup_elem(map, &zero);
	__u32 last;
	int i;

	if (!st)
		return 0;
	/* A pointer stored to a map and compared with one: both need the loader's
	 * CAP_PERFMON, which the tools hold. Most often the last slot noted is this event's. */
	last = (st->next - 1) & (NESTED_RAN - 1);
	if (st->ran[last] == (__u64)ctx) {
		st->ran[last] = 0;
		return 0;
	}
#pragma unroll
	for (i = 0; i < NESTED_RAN; i++) {
		if (st->ran[i] == (__u64)ctx) {
			st->ran[i] = 0;
			return 0;
		}
	}
	st->catches += 1;
	return 1;
}

/* The per-CPU state of the pair `pair`: map nested_PAIR, which user space finds by its
 * prefix `nested_` and reads the catches of. */
#define NESTED_STATE(pair)                                                               \
	struct {                                                                         \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                 \
		__uint(max_entries, 1);                                                  \
		__type(key, __u32);                                                      \
		__type(value, struct nested_state);                                      \
	} nested_##pair SEC(".maps")

#define NESTED_UNPAREN(...) __VA_ARGS__

/* A main program `main` and its catcher `catcher` in section `sec`, both with the
 * tracepoint's arguments `args` (parenthesized) and the same body `call` (a statement
 * that returns), in which `nested_catcher` is 1 in the catcher and 0 in the main program.
 * The catcher's name starts with `catch_`: user space attaches it last. */
#define NESTED_PROGRAMS(pair, sec, main, catcher, args, call)                           \
	SEC(sec)                                                                         \
	int BPF_PROG(main, NESTED_UNPAREN args)                                          \
	{                                                                                \
		const int nested_catcher = 0;                                            \
										 \
		nested_enter(ctx, &nested_##pair);                                       \
		call;                                                                    \
	}                                                                                \
	SEC(sec)                                                                         \
	int BPF_PROG(catcher, NESTED_UNPAREN args)                                       \
	{                                                                                \
		const int nested_catcher = 1;                                            \
										 \
		if (!nested_skipped(ctx, &nested_##pair))                                \
			return 0;                                                        \
		call;                                                                    \
	}

#endif
