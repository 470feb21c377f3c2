// SPDX-License-Identifier: GPL-2.0
/* tcptools-exporter, kernel side: one program per tracepoint that counts TCP state changes,
 * connect outcomes and latencies, time spent in states and RTTs into per-CPU counters and
 * log2 histograms (bpf/exporter.h). No record crosses to user space, so none is lost; a
 * scrape sums the maps over the CPUs. Counts are u64 and only ever added to. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "exporter.h"
#include "sock.bpf.h"
#include "table.bpf.h"
#include "container.bpf.h"
#include "hist.bpf.h"
#include "slots.bpf.h"

/* Sockets the fixed table of state starts holds (programs without socket storage). */
#define MAX_SOCKETS 16384

const volatile struct exporter_settings settings = {};

/* Never written: they put the structs into the skeleton's generated types. */
struct exporter_hist exporter_hist_layout = {};
struct group_key group_key_layout = {};

/* Every count without --group-by; with it, the counts of the groups that found no room in
 * the group maps (the "other" group). Arrays: no hash and no insert per event. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * HISTS);
	__type(key, __u32);
	__type(value, struct exporter_hist);
} hists SEC(".maps");

/* --group-by: each group's counts, sized by user space before load (--max-groups). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1);
	__type(key, struct group_key);
	__type(value, __u64);
} group_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1);
	__type(key, struct group_key);
	__type(value, struct exporter_hist);
} group_hists SEC(".maps");

/* Counts that went to the "other" group because the group maps were full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} group_overflow SEC(".maps");

/* tp_btf programs from Linux 5.11 (settings.sk_storage): when the socket entered its
 * current state (ktime ns; 0: not seen), in the slot table, or kept with the socket where
 * its bucket was full. */
SLOT_TABLE(start_slots);
SLOT_VALUES(slot_starts, __u64);

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} socket_starts SEC(".maps");

/* The same, by socket address, for programs without socket storage. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SOCKETS);
	__type(key, __u64);
	__type(value, __u64);
} start_table SEC(".maps");

static const __u64 zero_count = 0;
static const struct exporter_hist zero_hist = {};

static __always_inline void count_group_overflow(void)
{
	__u32 zero = 0;
	__u64 *count = bpf_map_lookup_elem(&group_overflow, &zero);

	if (count)
		__sync_fetch_and_add(count, 1);
}

/* The arrays' counters and histograms come in two copies, the main programs' and, at
 * index + COUNTERS (+ HISTS), the catchers' (user space sums both). Each tracepoint has
 * indexes of its own, so a copy is written by one program alone and, where the kernel
 * never re-enters a program (NESTED_GUARDED), takes plain adds. The group maps, whose
 * keys the catchers share, take atomic adds: a catcher may interrupt its main program on
 * the same CPU. The value of `index` of `group`: in `group_map` (created from `zero`), or
 * in `array`, whose catchers' copy starts at `copy_size`; *atomic says how to add to it. */
static __always_inline void *value_of(void *group_map, const void *zero, void *array,
				      __u32 copy_size, __u64 group, __u32 index,
				      const int catcher, int *atomic)
{
	*atomic = 1;
	if (settings.group_by) {
		struct group_key key = { .group = group, .index = index };
		void *value = lookup_or_init(group_map, &key, zero);

		if (value)
			return value;
		count_group_overflow();
	}
	*atomic = !NESTED_GUARDED;
	index += catcher ? copy_size : 0;
	return bpf_map_lookup_elem(array, &index);
}

/* Adds one to counter `index` of `group`. */
static __always_inline void count(__u64 group, __u32 index, const int catcher)
{
	int atomic;
	__u64 *value = value_of(&group_counters, &zero_count, &counters, COUNTERS, group, index,
				catcher, &atomic);

	if (!value)
		return;
	if (atomic)
		__sync_fetch_and_add(value, 1);
	else
		*value += 1;
}

/* Records `us` microseconds in histogram `index` of `group`. */
static __always_inline void record(__u64 group, __u32 index, __u64 us, const int catcher)
{
	int atomic;
	struct exporter_hist *hist = value_of(&group_hists, &zero_hist, &hists, HISTS, group,
					      index, catcher, &atomic);
	__u64 slot;

	if (!hist)
		return;
	slot = log2_u64(us);
	if (slot >= HIST_SLOTS)
		slot = HIST_SLOTS - 1;
	/* The index must be the register the bound was checked on: older verifiers (6.1)
	 * do not carry the bound over to a copy clang may use instead. */
	barrier_var(slot);
	if (atomic) {
		__sync_fetch_and_add(&hist->slots[slot], 1);
		__sync_fetch_and_add(&hist->sum_us, us);
	} else {
		hist->slots[slot] += 1;
		hist->sum_us += us;
	}
}

/* 0 for AF_INET, 1 for AF_INET6, -1 for anything else. */
static __always_inline int family_index(__u16 family)
{
	if (family == AF_INET)
		return 0;
	return family == AF_INET6 ? 1 : -1;
}

/* The group sk counts in: its cgroup v2 id or its network namespace inode. */
static __always_inline __u64 sk_group(const struct sock *sk)
{
	if (settings.group_by == GROUP_CGROUP)
		return cgroup_id_of(sk_cgroup(sk));
	if (settings.group_by == GROUP_NETNS)
		return sk_netns(sk);
	return 0;
}

/* swap_start() with socket storage: the slot table first, socket storage for a socket
 * whose bucket was full. A socket's first change finds no start. */
static __always_inline __u64 swap_start_stored(const struct sock *sk, int newstate, __u64 now)
{
	struct slot_ref ref;
	__u64 *kept, start;
	int fresh;

	kept = slot_value(&start_slots, &slot_starts, &socket_starts, sk, &settings,
			  newstate != TCP_CLOSE, &ref, &fresh);
	if (!kept)
		return 0;
	start = fresh ? 0 : *kept;
	/* After CLOSE nothing is kept: a socket connected again starts anew. */
	*kept = newstate == TCP_CLOSE ? 0 : now;
	if (newstate == TCP_CLOSE)
		slot_free(&ref);
	return start;
}

/* When sk entered the state it leaves now (0: not seen), and `now` kept as the start of
 * newstate. */
static __always_inline __u64 swap_start(const struct sock *sk, int newstate, __u64 now,
					const int direct)
{
	__u64 skaddr = (__u64)sk, start = 0, *kept;

	if (direct == SK_BTF_STORAGE && settings.sk_storage)
		return swap_start_stored(sk, newstate, now);
	/* As tcpstates' table: inserted once, rewritten in place, deleted at CLOSE. */
	kept = bpf_map_lookup_elem(&start_table, &skaddr);
	if (kept)
		start = *kept;
	if (newstate == TCP_CLOSE)
		bpf_map_delete_elem(&start_table, &skaddr);
	else if (kept)
		*kept = now;
	else if (bpf_map_update_elem(&start_table, &skaddr, &now, BPF_ANY))
		count_table_full();
	return start;
}

/* How a connect that leaves SYN_SENT for newstate ended. */
static __always_inline int connect_outcome(const struct sock *sk, int newstate, const int direct)
{
	int err;

	if (newstate == TCP_ESTABLISHED)
		return OUTCOME_ESTABLISHED;
	if (newstate != TCP_CLOSE)
		return OUTCOME_OTHER;
	SK_READ(direct, err, sk->sk_err);
	if (err == ECONNREFUSED)
		return OUTCOME_REFUSED;
	return err == ETIMEDOUT ? OUTCOME_TIMEOUT : OUTCOME_OTHER;
}

/* Whether sk passes -L/-D; lport as the tracepoint reports it (see sk_lport). */
static __always_inline int ports_pass(const struct sock *sk, __u16 lport, const int direct)
{
	__u16 rport;

	if (settings.filter_lports && !port_in(settings.lports, lport))
		return 0;
	if (!settings.filter_rports)
		return 1;
	SK_READ(direct, rport, sk->__sk_common.skc_dport);
	return port_in(settings.rports, bpf_ntohs(rport));
}

static __always_inline int count_change(void *ctx, const struct sock *sk, int oldstate,
					int newstate, const int direct, const int catcher)
{
	__u64 group, now, start;
	__u16 family, lport = 0;
	__u32 base;
	int fam, outcome;

	if ((__u32)oldstate >= STATES || (__u32)newstate >= STATES || !sk_is_tcp(sk, direct))
		return 0;
	SK_READ(direct, family, sk->__sk_common.skc_family);
	fam = family_index(family);
	if (fam < 0)
		return 0;
	if (settings.filter_lports)
		lport = sk_lport(sk, direct);
	if (!ports_pass(sk, lport, direct))
		return 0;
	group = sk_group(sk);

	now = bpf_ktime_get_ns();
	start = swap_start(sk, newstate, now, direct);
	base = fam * COUNTERS_PER_FAMILY;
	count(group, base + oldstate * STATES + newstate, catcher);
	if (start)
		record(group, fam * HISTS_PER_FAMILY + HIST_STATE + oldstate, (now - start) / 1000,
		       catcher);
	if (oldstate != TCP_SYN_SENT)
		return 0;
	outcome = connect_outcome(sk, newstate, direct);
	count(group, base + TRANSITIONS + outcome, catcher);
	if (start && outcome <= OUTCOME_REFUSED)
		record(group, fam * HISTS_PER_FAMILY + HIST_CONNECT + outcome, (now - start) / 1000,
		       catcher);
	return 0;
}

static __always_inline int count_rtt(const struct sock *sk, const int direct, const int catcher)
{
	__u16 family, lport = 0;
	__u32 srtt;
	int fam;

	SK_READ(direct, family, sk->__sk_common.skc_family);
	fam = family_index(family);
	if (fam < 0)
		return 0;
	/* skc_num is the local port in host order (inet_sport in network order). */
	if (settings.filter_lports)
		SK_READ(direct, lport, sk->__sk_common.skc_num);
	if (!ports_pass(sk, lport, direct) || !sk_srtt_us(sk, direct, &srtt))
		return 0;
	record(sk_group(sk), fam * HISTS_PER_FAMILY + HIST_RTT, srtt, catcher);
	return 0;
}

SET_STATE_PROGRAMS(count_change)
TCP_PROBE_PROGRAMS(count_rtt)

char LICENSE[] SEC("license") = "GPL";
