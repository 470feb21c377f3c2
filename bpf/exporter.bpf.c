// SPDX-License-Identifier: GPL-2.0
/* tcptools-exporter, kernel side: one program per tracepoint that counts TCP state changes,
 * connect outcomes and latencies, time spent in states and RTTs into per-CPU counters and
 * histograms on Prometheus' native grid (bpf/exporter.h). No record crosses to user
 * space, so none is lost; a scrape sums the maps over the CPUs. Counts are u64 and only
 * ever added to. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "exporter.h"
#include "sock.bpf.h"
#include "container.bpf.h"
#include "sk_store.bpf.h"
#include "programs.bpf.h"

/* Sockets the fixed table of state starts holds (raw_tp programs). */
#define MAX_SOCKETS 16384

const volatile struct exporter_settings settings = {};

/* Never written: they put the structs and enums into the skeleton's generated types. */
struct exporter_hist exporter_hist_layout = {};
struct group_key group_key_layout = {};
struct group_state group_state_layout = {};
enum exporter_layout index_layout = FAMILIES;
enum connect_outcome outcome_layout = OUTCOME_ESTABLISHED;
enum grouped_hists grouped_layout = GROUPED_RTT;

/* Every count without --group-by; with it, the counts of the groups that found no room in
 * the group maps (the "other" group). Arrays: no hash and no insert per event. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HISTS);
	__type(key, __u32);
	__type(value, struct exporter_hist);
} hists SEC(".maps");

/* --group-by: each group's counts, sized by user space before load (--max-groups): state
 * changes and durations by the state left, connect outcomes, connect latencies and RTTs.
 * Shared by the CPUs, not per-CPU: a per-CPU hash is preallocated for every possible CPU
 * (about 0.7 MB per CPU at 100 groups, 130 MB on a node of 192), this costs the same on
 * every node; the adds are atomic anyway. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct group_key);
	__type(value, struct group_state);
} group_states SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct group_key);
	__type(value, __u64);
} group_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct group_key);
	__type(value, struct exporter_hist);
} group_hists SEC(".maps");

/* Counts that went to the "other" group because the group maps were full. */
PERCPU_COUNTER(group_overflow);

/* When each socket entered its current state (ktime ns; 0: not seen). */
SK_STORE(start, __u64, MAX_SOCKETS, 0);

static const __u64 zero_count = 0;
static const struct exporter_hist zero_hist = {};
static const struct group_state zero_state = {};

/* The value of `index` of `group` in `group_map` (created from `zero`); NULL when not
 * grouping or when the group map is full (the count goes to the arrays, "other"). Every
 * add is atomic: the group maps are shared by the CPUs, and a catcher's run may interrupt
 * its main program's on the same CPU. */
static __always_inline void *group_value(void *group_map, const void *zero, __u64 group,
					 __u32 index)
{
	struct group_key key = { .group = group, .index = index };
	void *value;

	if (!settings.group_by)
		return NULL;
	value = lookup_or_init(group_map, &key, zero);
	if (!value)
		counter_add(&group_overflow);
	return value;
}

/* The slot of `ns` nanoseconds: how many bounds lie below it (bpf/exporter.h), found in
 * HIST_SEARCH_STEPS comparisons. */
static __always_inline __u32 hist_slot(__u64 ns)
{
	__u32 slot = 0, step = HIST_BOUND_TABLE / 2;

#pragma unroll
	for (int i = 0; i < HIST_SEARCH_STEPS; i++, step /= 2) {
		__u32 probe = (slot + step - 1) & (HIST_BOUND_TABLE - 1);

		if (settings.hist_bounds[probe] < ns)
			slot += step;
	}
	return slot;
}

/* Records `ns` nanoseconds in `hist`. */
static __always_inline void hist_add(struct exporter_hist *hist, __u64 ns)
{
	__u32 slot = hist_slot(ns);

	/* Only with bounds that are not ascending; the index must be the register the
	 * bound was checked on: older verifiers (6.1) do not carry the bound over to a copy
	 * clang may use instead. */
	barrier_var(slot);
	if (slot >= HIST_SLOTS)
		return;
	__sync_fetch_and_add(&hist->slots[slot], 1);
	__sync_fetch_and_add(&hist->sum_us, ns / 1000);
}

static __always_inline void array_count(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &index);

	if (value)
		__sync_fetch_and_add(value, 1);
}

static __always_inline void array_record(__u32 index, __u64 ns)
{
	struct exporter_hist *hist = bpf_map_lookup_elem(&hists, &index);

	if (hist)
		hist_add(hist, ns);
}

/* Adds one to counter `index` of `group`. */
static __always_inline void count(__u64 group, __u32 index)
{
	__u64 *value = group_value(&group_counters, &zero_count, group, index);

	if (value)
		__sync_fetch_and_add(value, 1);
	else
		array_count(index);
}

/* Records `ns` nanoseconds in histogram `index` (of kind `grouped`, enum grouped_hists) of
 * `group`, or node-wide where that kind is not kept per group. */
static __always_inline void record(__u64 group, __u32 index, __u8 grouped, __u64 ns)
{
	struct exporter_hist *hist = NULL;

	if (settings.grouped_hists & grouped)
		hist = group_value(&group_hists, &zero_hist, group, index);
	if (hist)
		hist_add(hist, ns);
	else
		array_record(index, ns);
}

/* Counts the change from oldstate to newstate of family `fam` and, with `timed`, `ns`
 * spent in oldstate: in one group_states entry, or in the arrays. The duration goes to
 * the arrays too when state durations are not kept per group (--group-histograms). */
static __always_inline void count_state(__u64 group, int fam, __u32 oldstate, __u32 newstate,
					int timed, __u64 ns)
{
	__u32 hist = fam * HISTS_PER_FAMILY + HIST_STATE + oldstate;
	struct group_state *state;

	state = group_value(&group_states, &zero_state, group, fam * STATES + oldstate);
	if (!state) {
		array_count(fam * COUNTERS_PER_FAMILY + oldstate * STATES + newstate);
		if (timed)
			array_record(hist, ns);
		return;
	}
	/* newstate < STATES already; clang drops a bound it knows, the verifier needs one. */
	barrier_var(newstate);
	newstate &= STATES - 1;
	__sync_fetch_and_add(&state->to[newstate], 1);
	if (!timed)
		return;
	if (settings.grouped_hists & GROUPED_STATE)
		hist_add(&state->time, ns);
	else
		array_record(hist, ns);
}

/* 0 for AF_INET, 1 for AF_INET6, -1 for anything else. */
static __always_inline int family_index(__u16 family)
{
	if (family == AF_INET)
		return 0;
	return family == AF_INET6 ? 1 : -1;
}

/* The group sk counts in: its cgroup v2 id, its cgroup's parent's, or its network
 * namespace inode. */
static __always_inline __u64 sk_group(const struct sock *sk, const int hook)
{
	if (settings.group_by == GROUP_CGROUP)
		return cgroup_id_of(sk_cgroup(sk, hook), hook);
	if (settings.group_by == GROUP_CGROUP_PARENT)
		return cgroup_parent_id(sk_cgroup(sk, hook), hook);
	if (settings.group_by == GROUP_NETNS)
		return sk_netns(sk, hook);
	return 0;
}

/* When sk entered the state it leaves now (0: not seen), and `now` kept as the start of
 * newstate. */
static __always_inline __u64 swap_start(const struct sock *sk, int newstate, __u64 now,
					const int hook)
{
	struct sk_ref ref;
	__u64 *kept, start;

	kept = sk_store_get(start, sk, hook, newstate != TCP_CLOSE, &ref);
	if (!kept)
		return 0;
	start = *kept;
	/* After CLOSE nothing is kept: a socket connected again starts anew. */
	if (newstate == TCP_CLOSE)
		sk_store_release(start, sk, hook, &ref);
	else
		*kept = now;
	return start;
}

/* How a connect that leaves SYN_SENT for newstate ended. */
static __always_inline int connect_outcome(const struct sock *sk, int newstate, const int hook)
{
	int err;

	if (newstate == TCP_ESTABLISHED)
		return OUTCOME_ESTABLISHED;
	if (newstate != TCP_CLOSE)
		return OUTCOME_OTHER;
	SK_READ(hook, err, sk->sk_err);
	if (err == ECONNREFUSED)
		return OUTCOME_REFUSED;
	return err == ETIMEDOUT ? OUTCOME_TIMEOUT : OUTCOME_OTHER;
}

/* Whether sk passes -L/-D; lport as the tracepoint reports it (see sk_lport). */
static __always_inline int ports_pass(const struct sock *sk, __u16 lport, const int hook)
{
	__u16 rport;

	if (settings.filter_lports && !port_in(settings.lports, lport))
		return 0;
	if (!settings.filter_rports)
		return 1;
	SK_READ(hook, rport, sk->__sk_common.skc_dport);
	return port_in(settings.rports, bpf_ntohs(rport));
}

static __always_inline int count_change(void *ctx, const struct sock *sk, int oldstate,
					int newstate, const int hook)
{
	__u64 group, now, start;
	__u16 family, lport = 0;
	int fam, outcome;

	if ((__u32)oldstate >= STATES || (__u32)newstate >= STATES || !sk_is_tcp(sk, hook))
		return 0;
	SK_READ(hook, family, sk->__sk_common.skc_family);
	fam = family_index(family);
	if (fam < 0)
		return 0;
	if (settings.filter_lports)
		lport = sk_lport(sk, hook);
	if (!ports_pass(sk, lport, hook))
		return 0;
	group = sk_group(sk, hook);

	now = bpf_ktime_get_ns();
	start = swap_start(sk, newstate, now, hook);
	count_state(group, fam, oldstate, newstate, start != 0, now - start);
	if (oldstate != TCP_SYN_SENT)
		return 0;
	outcome = connect_outcome(sk, newstate, hook);
	count(group, fam * COUNTERS_PER_FAMILY + TRANSITIONS + outcome);
	if (start && outcome <= OUTCOME_REFUSED)
		record(group, fam * HISTS_PER_FAMILY + HIST_CONNECT + outcome, GROUPED_CONNECT,
		       now - start);
	return 0;
}

static __always_inline int count_rtt(const struct sock *sk, const int hook)
{
	__u16 family, lport = 0;
	__u32 srtt;
	int fam;

	SK_READ(hook, family, sk->__sk_common.skc_family);
	fam = family_index(family);
	if (fam < 0)
		return 0;
	/* skc_num is the local port in host order (inet_sport in network order). */
	if (settings.filter_lports)
		SK_READ(hook, lport, sk->__sk_common.skc_num);
	if (!ports_pass(sk, lport, hook) || !sk_srtt_us(sk, hook, &srtt))
		return 0;
	record(sk_group(sk, hook), fam * HISTS_PER_FAMILY + HIST_RTT, GROUPED_RTT,
	       (__u64)srtt * 1000);
	return 0;
}

SET_STATE_PROGRAMS(count_change)
TCP_PROBE_PROGRAMS(count_rtt)

char LICENSE[] SEC("license") = "GPL";
