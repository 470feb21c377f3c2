// SPDX-License-Identifier: GPL-2.0
/* The benchmarks' lock contention counter: every lock:contention_begin/contention_end pair
 * (any lock of the kernel that had to wait: spinlocks, mutexes, rwsems), counted and timed
 * per CPU. A ring buffer's spinlock is one of them: the total bounds what the rings add.
 * Loaded beside the floor by bench/floor.rs (`floor contention`). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* include/trace/events/lock.h's flags of contention_begin. */
#define LCB_F_SPIN (1U << 0)
#define LCB_F_MUTEX (1U << 5)

/* Per CPU: [0] contentions begun (every kind of lock), [1] of them spinning (spinlocks,
 * rwlocks: the kind a ring buffer's lock is), [2] ns those spun (begin to end), [3]
 * spinning ones begun while the CPU already spun for another (an interrupt's lock inside a
 * wait: counted, not timed). A mutex's optimistic spin is left untimed: it may go on to
 * sleep, and end on another CPU. */
enum { ALL, SPINS, SPIN_NS, NESTED, SLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} contention SEC(".maps");

/* Per CPU: when the spin in progress began, 0 when none. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} waiting_since SEC(".maps");

static __always_inline void count(__u32 slot, __u64 v)
{
	__u64 *c = bpf_map_lookup_elem(&contention, &slot);

	if (c)
		*c += v;
}

SEC("tp_btf/contention_begin")
int BPF_PROG(contention_begin, void *lock, unsigned int flags)
{
	__u32 zero = 0;
	__u64 *since = bpf_map_lookup_elem(&waiting_since, &zero);

	count(ALL, 1);
	if (!(flags & LCB_F_SPIN) || (flags & LCB_F_MUTEX))
		return 0;
	count(SPINS, 1);
	if (!since)
		return 0;
	if (*since) {
		count(NESTED, 1);
		return 0;
	}
	*since = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/contention_end")
int BPF_PROG(contention_end, void *lock, int ret)
{
	__u32 zero = 0;
	__u64 *since = bpf_map_lookup_elem(&waiting_since, &zero);

	if (!since || !*since)
		return 0;
	count(SPIN_NS, bpf_ktime_get_ns() - *since);
	*since = 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
