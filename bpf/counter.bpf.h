/* Per-CPU values in one-entry arrays, which user space sums over the CPUs: the counts of
 * what went wrong (records without room, sockets without state) and the catchers' state. */
#ifndef TCPTOOLS_COUNTER_BPF_H
#define TCPTOOLS_COUNTER_BPF_H

#define PERCPU_VALUE(name, value_type)                                                  \
	struct {                                                                        \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);                                \
		__uint(max_entries, 1);                                                 \
		__type(key, __u32);                                                     \
		__type(value, value_type);                                              \
	} name SEC(".maps")

#define PERCPU_COUNTER(name) PERCPU_VALUE(name, __u64)

/* Adds one to counter `map`, atomically: a catcher's run may interrupt its main program's
 * on the same CPU (bpf/nested.bpf.h). */
static __always_inline void counter_add(void *map)
{
	__u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(map, &zero);

	if (count)
		__sync_fetch_and_add(count, 1);
}

#endif
