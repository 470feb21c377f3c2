// SPDX-License-Identifier: GPL-2.0
/* The benchmarks' lock contention counter: every lock:contention_begin/contention_end pair
 * (any lock of the kernel that had to wait: spinlocks, mutexes, rwsems), counted and timed
 * per CPU, and apart from them the waits for a BPF ring buffer's spinlock (those whose
 * kernel stack passes through __bpf_ringbuf_reserve). Loaded beside the floor by
 * bench/floor.rs (`floor contention`), which sets where that function lies. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* include/trace/events/lock.h's flags of contention_begin. */
#define LCB_F_SPIN (1U << 0)
#define LCB_F_MUTEX (1U << 5)
/* Frames of the kernel stack searched for the ring buffer's reserve: the tracepoint's
 * own frames, the spinlock's slow path and its lock call come first. */
#define STACK_FRAMES 16

/* [ring_reserve_lo, ring_reserve_hi): __bpf_ringbuf_reserve's text, from /proc/kallsyms;
 * 0, 0 where it was not found (no ring waits are told apart). */
const volatile __u64 ring_reserve_lo = 0;
const volatile __u64 ring_reserve_hi = 0;

/* Per CPU: contentions begun (every kind of lock); of them spinning (spinlocks, rwlocks:
 * the kind a ring buffer's lock is), and the ns those spun (begin to end); spinning ones
 * begun while the CPU already spun for another (an interrupt's lock inside a wait:
 * counted, not timed); waits for a ring buffer's lock, and their ns. A mutex's optimistic
 * spin is left untimed: it may go on to sleep, and end on another CPU. */
enum { ALL, SPINS, SPIN_NS, NESTED, RING, RING_NS, SLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} contention SEC(".maps");

/* Per CPU: the spin in progress, since = 0 when none. */
struct spin {
	__u64 since;
	__u64 ring;
	__u64 stack[STACK_FRAMES];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct spin);
} spinning SEC(".maps");

static __always_inline void count(__u32 slot, __u64 v)
{
	__u64 *c = bpf_map_lookup_elem(&contention, &slot);

	if (c)
		*c += v;
}

/* Whether the kernel stack passes through the ring buffer's reserve. */
static __always_inline __u64 in_ring_reserve(void *ctx, struct spin *s)
{
	long bytes;
	int i;

	if (!ring_reserve_hi)
		return 0;
	bytes = bpf_get_stack(ctx, s->stack, sizeof(s->stack), 0);
	for (i = 0; i < STACK_FRAMES; i++) {
		if (i * 8 >= bytes)
			break;
		if (s->stack[i] >= ring_reserve_lo && s->stack[i] < ring_reserve_hi)
			return 1;
	}
	return 0;
}

SEC("tp_btf/contention_begin")
int BPF_PROG(contention_begin, void *lock, unsigned int flags)
{
	__u32 zero = 0;
	struct spin *s = bpf_map_lookup_elem(&spinning, &zero);

	count(ALL, 1);
	if (!(flags & LCB_F_SPIN) || (flags & LCB_F_MUTEX))
		return 0;
	count(SPINS, 1);
	if (!s)
		return 0;
	if (s->since) {
		count(NESTED, 1);
		return 0;
	}
	s->ring = in_ring_reserve(ctx, s);
	if (s->ring)
		count(RING, 1);
	s->since = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/contention_end")
int BPF_PROG(contention_end, void *lock, int ret)
{
	__u32 zero = 0;
	struct spin *s = bpf_map_lookup_elem(&spinning, &zero);
	__u64 ns;

	if (!s || !s->since)
		return 0;
	ns = bpf_ktime_get_ns() - s->since;
	count(SPIN_NS, ns);
	if (s->ring)
		count(RING_NS, ns);
	s->since = 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
