/* Event delivery shared by the tools: a BPF ring buffer, or a perf buffer when user space
 * retypes the `events` map before load (kernels before 5.8, or forced for tests). */
#ifndef TCPTOOLS_STREAM_BPF_H
#define TCPTOOLS_STREAM_BPF_H

#include "counter.bpf.h"

/* Set by user space before load; the verifier prunes the branch not taken. */
const volatile __u8 use_ringbuf = 1;

/* Sized (and for a perf buffer retyped) by user space before load: src/stream.rs. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
} events SEC(".maps");

/* Ring-buffer records that found no room. A perf buffer counts its own losses. */
PERCPU_COUNTER(ringbuf_drops);

/* The reader is woken at most once per WAKEUP_NS; records in between are found by its
 * next poll, which never waits longer than its timeout (src/stream.rs). Under load that
 * is one wakeup per batch instead of one per event, the largest cost of a ring buffer
 * write. Racy across CPUs on purpose: an extra or a missed wakeup costs nothing. */
#define WAKEUP_NS 5000000ULL
__u64 last_wakeup_ns = 0;

/* `now` is the caller's bpf_ktime_get_ns(): reading the clock again would cost as much
 * as the rest of the write. */
static __always_inline void emit_event(void *ctx, void *event, __u64 size, __u64 now)
{
	if (use_ringbuf) {
		__u64 flags = BPF_RB_NO_WAKEUP;

		if (now - last_wakeup_ns >= WAKEUP_NS) {
			last_wakeup_ns = now;
			flags = BPF_RB_FORCE_WAKEUP;
		}
		if (bpf_ringbuf_output(&events, event, size, flags))
			counter_add(&ringbuf_drops);
	} else {
		bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, event, size);
	}
}

#endif
