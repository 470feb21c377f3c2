/* Per-socket state kept in a fixed table where socket storage is not available (raw_tp
 * programs, and tp_btf before 5.11): what did not fit is counted. */
#ifndef TCPTOOLS_TABLE_BPF_H
#define TCPTOOLS_TABLE_BPF_H

/* Sockets the raw_tp programs could not track because their fixed table was full (tp_btf
 * programs keep per-socket state in socket storage, which has no such limit): their next
 * change has no known start. Reported like lost events. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} table_full SEC(".maps");

static __always_inline void count_table_full(void)
{
	__u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(&table_full, &zero);

	if (count)
		*count += 1;
}

#endif
