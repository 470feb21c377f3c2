/* Event delivery shared by the tools, in one of three shapes user space picks before load
 * (src/stream.rs): a BPF ring buffer per CPU (`cpu_rings`, merged in time order by the
 * reader), one ring buffer shared by every CPU (`events`, where the kernel cannot put ring
 * buffers in a map of maps), or a perf buffer (`events` retyped: kernels before 5.8, or
 * forced for tests). */
#ifndef TCPTOOLS_STREAM_BPF_H
#define TCPTOOLS_STREAM_BPF_H

#include "counter.bpf.h"

/* Set by user space before load; the verifier prunes the branches not taken. */
const volatile __u8 use_ringbuf = 1;
const volatile __u8 ring_per_cpu = 0;

/* Sized (and for a perf buffer retyped) by user space before load: src/stream.rs. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
} events SEC(".maps");

/* A ring per possible CPU, indexed by the CPU the program runs on: no lock or cache line
 * shared between CPUs. Created, filled and sized by user space (src/stream.rs); where
 * unused, a one-entry placeholder. */
struct cpu_ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__type(key, __u32);
	__array(values, struct cpu_ring);
} cpu_rings SEC(".maps");

/* Ring-buffer records that found no room. A perf buffer counts its own losses. */
PERCPU_COUNTER(ringbuf_drops);

/* The reader is woken at most once per WAKEUP_NS; records in between are found by its
 * next poll, which never waits longer than its timeout (src/stream.rs). Under load that
 * is one wakeup per batch instead of one per event, the largest cost of a ring buffer
 * write. Racy across CPUs on purpose: an extra or a missed wakeup costs nothing, and one
 * wakeup of any ring has the reader drain them all. */
#define WAKEUP_NS 5000000ULL
__u64 last_wakeup_ns = 0;

/* The ring of the CPU the program runs on, or the shared one. */
static __always_inline void *event_ring(void)
{
	__u32 cpu;

	if (!ring_per_cpu)
		return &events;
	cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&cpu_rings, &cpu);
}

/* `now` is the caller's bpf_ktime_get_ns(), also the record's own time (the reader orders
 * by it): reading the clock again would cost as much as the rest of the write. */
static __always_inline void emit_event(void *ctx, void *event, __u64 size, __u64 now)
{
	if (use_ringbuf) {
		__u64 flags = BPF_RB_NO_WAKEUP;
		void *ring = event_ring();

		if (!ring) {
			counter_add(&ringbuf_drops);
			return;
		}
		if (now - last_wakeup_ns >= WAKEUP_NS) {
			last_wakeup_ns = now;
			flags = BPF_RB_FORCE_WAKEUP;
		}
		if (bpf_ringbuf_output(ring, event, size, flags))
			counter_add(&ringbuf_drops);
	} else {
		bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, event, size);
	}
}

#endif
