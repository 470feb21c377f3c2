/* Catching the runs the kernel skips. The kernel never re-enters a tp_btf or raw_tp program
 * on a CPU where it is already running (a per-program `active` counter in __bpf_trace_run):
 * a state change or tcp_probe fired from a softirq that interrupts the tool's program is
 * skipped and only counted (`recursion_misses`). So every tool has, on the same tracepoint,
 * a second program, the catcher, with a counter of its own. User space attaches the main
 * program first, so for every event the kernel runs the main program, then the catcher
 * (src/nested.rs). The catcher calls the same handler only when the main program did not
 * run for this event: the kernel skipped it.
 *
 * How the catcher knows: events on one CPU nest by context, never within one context: a
 * state change in a softirq interrupts one in a task, not the other way round, and neither
 * interrupts itself. Softirqs run on the CPU's interrupt stack (x86_64 and arm64 from Linux
 * 5.12), so the context of a run is told by where its arguments lie: on the current task's
 * stack (level 0) or elsewhere (level 1). (preempt_count would say it too, but it is a
 * per-CPU variable that kernels without CONFIG_KALLSYMS_ALL do not let BPF programs
 * address, this machine's among them.) Each level has a per-CPU counter of main program
 * runs: the main program adds one to its level's at entry, and at level 0 clears level 1's
 * (left over when a softirq's catcher was skipped: when a task-level main program starts,
 * no softirq is in progress on its CPU). The catcher takes one from its level's counter
 * when there is one, else it catches. This holds in the kernel's own prologue and epilogue
 * around the main program too, where the program is already `active` but has not yet, or
 * no longer, run any of its code. On a kernel that re-enters programs instead of skipping
 * them (older kernels lack the per-program counter), every main program run is followed by
 * its catcher's, the counts pair up and the catcher never catches, even where softirqs run
 * on the task's stack and both contexts read as level 0.
 *
 * Not the arguments' address alone (tried): the main program and catcher of one event
 * see the same ctx, but a softirq between the two can run any number of other events'
 * pairs, and a catcher the kernel skipped leaves its main program's note behind; notes
 * by address then go stale or get overwritten, and an event runs twice or not at all.
 * Counts per level balance whatever runs in between, and a task-level run clears what
 * skipped catchers left.
 *
 * What is still lost: an event whose main program and catcher are both skipped (a catcher
 * catching in a softirq interrupted by a hardirq that changes a socket's state, which TCP
 * does not do). Lost = main programs' recursion_misses − catches, exactly (src/nested.rs);
 * the catcher's own misses are not losses: the main program ran for those events. */
#ifndef TCPTOOLS_NESTED_BPF_H
#define TCPTOOLS_NESTED_BPF_H

#include "counter.bpf.h"
#include "hook.bpf.h"

/* THREAD_SIZE of x86_64 and arm64 kernels (without KASAN). */
#define NESTED_THREAD_SIZE 16384

/* What one tracepoint's pair of programs shares per CPU. */
struct nested_state {
	__u32 ran[2];    /* main program runs at each level whose catcher has not run yet */
	__u64 catches;   /* events the catcher ran the handler for: runs the kernel skipped */
	__u64 where[2];  /* raw_tp scratch, one per program: the arguments' address */
};

/* The context level of this run: 0 when its arguments are on the current task's stack, 1
 * elsewhere (the interrupt stack). The arguments' address must become a number, and a BPF
 * program may not turn a pointer into one, except by subtracting another pointer (the
 * loader holds CAP_PERFMON): the current task's BTF pointer, whose number
 * bpf_get_current_task() gives (Linux 5.11+). One BTF pointer serves for both the
 * distance and the stack base: every helper call here is paid on every event. A raw_tp
 * program writes the pointer to a map and reads it back, in a slot of its own: no other
 * run of the same program can come in between (on kernels that skip nested runs). */
static __always_inline __u32 nested_level(void *ctx, struct nested_state *st, int slot,
					  const int hook)
{
	__u64 where, base;

	if (hook == HOOK_TP_BTF &&
	    bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)) {
		struct task_struct *task = bpf_get_current_task_btf();
		__u64 offset = (__u64)ctx - (__u64)task;

		/* Keeps clang from folding it into scalar - pointer, which the verifier refuses. */
		asm volatile("" : "+r"(offset));
		where = offset + bpf_get_current_task();
		base = (__u64)task->stack;
	} else {
		base = (__u64)BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), stack);
		st->where[slot] = (__u64)ctx;
		where = *(volatile __u64 *)&st->where[slot];
	}
	return where - base >= NESTED_THREAD_SIZE;
}

/* The main program's entry: it runs for this event at its level. */
static __always_inline void nested_enter(void *ctx, void *map, const int hook)
{
	__u32 zero = 0, level;
	struct nested_state *st = bpf_map_lookup_elem(map, &zero);

	if (!st)
		return;
	level = nested_level(ctx, st, 0, hook);
	if (level == 0) {
		st->ran[0] += 1;
		st->ran[1] = 0;
	} else {
		st->ran[1] += 1;
	}
}

/* The catcher: true when the main program did not run for this event (counted as caught). */
static __always_inline int nested_skipped(void *ctx, void *map, const int hook)
{
	__u32 zero = 0, level;
	struct nested_state *st = bpf_map_lookup_elem(map, &zero);

	if (!st)
		return 0;
	level = nested_level(ctx, st, 1, hook) & 1;
	if (st->ran[level]) {
		st->ran[level] -= 1;
		return 0;
	}
	st->catches += 1;
	return 1;
}
/* The per-CPU state of the pair `pair`: map nested_PAIR, whose catches user space reads
 * (src/nested.rs). */
#define NESTED_STATE(pair) PERCPU_VALUE(nested_##pair, struct nested_state)

#define NESTED_UNPAREN(...) __VA_ARGS__

/* A main program `main` and its catcher `catcher` in section `sec`, both with the
 * tracepoint's arguments `args` (parenthesized) and the same body `call` (a statement
 * that returns); `hook`: the program's hook (bpf/hook.bpf.h). User space attaches the
 * catcher after its main program (src/nested.rs). */
#define NESTED_PROGRAMS(pair, sec, main, catcher, hook, args, call)                    \
	SEC(sec)                                                                        \
	int BPF_PROG(main, NESTED_UNPAREN args)                                         \
	{                                                                               \
		nested_enter(ctx, &nested_##pair, hook);                                \
		call;                                                                   \
	}                                                                               \
	SEC(sec)                                                                        \
	int BPF_PROG(catcher, NESTED_UNPAREN args)                                      \
	{                                                                               \
		if (!nested_skipped(ctx, &nested_##pair, hook))                         \
			return 0;                                                       \
		call;                                                                   \
	}

#endif
