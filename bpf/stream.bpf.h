/* Event delivery shared by the tools: a BPF ring buffer, or a perf buffer when user space
 * retypes the `events` map before load (kernels before 5.8, or forced for tests). */
#ifndef TCPTOOLS_STREAM_BPF_H
#define TCPTOOLS_STREAM_BPF_H

/* Set by user space before load; the verifier prunes the branch not taken. */
const volatile __u8 use_ringbuf = 1;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

/* Ring-buffer records that found no room. A perf buffer counts its own losses. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ringbuf_drops SEC(".maps");

static __always_inline void emit_event(void *ctx, void *event, __u64 size)
{
	if (use_ringbuf) {
		if (bpf_ringbuf_output(&events, event, size, 0)) {
			__u32 zero = 0;
			__u64 *drops = bpf_map_lookup_elem(&ringbuf_drops, &zero);

			if (drops)
				*drops += 1;
		}
	} else {
		bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, event, size);
	}
}

#endif
