// SPDX-License-Identifier: GPL-2.0
/* tcprtt, kernel side: a log2 histogram of the smoothed RTT of every segment an
 * ESTABLISHED TCP socket receives, from tcp:tcp_probe (fired at the top of
 * tcp_rcv_established with the socket bcc's kprobe/fentry sees). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "tcprtt.h"
#include "sock.bpf.h"
#include "container.bpf.h"
#include "hist.bpf.h"
#include "programs.bpf.h"

/* Keys per interval (bcc's capacity); twice that, since two generations coexist for a
 * moment at every interval boundary. */
#define MAX_KEYS 10240

const volatile struct tcprtt_settings settings = {};

/* The interval samples go to. User space moves it on at every interval boundary, waits
 * until no program run can still hold the old value, then reads and clears the old
 * generation's histograms: nothing writes them any more, so no sample is lost or counted
 * twice. */
__u32 generation = 0;

/* Never written: it puts struct hist_key and struct hist into the skeleton's types. */
struct hist_key hist_key_layout = {};
struct hist hist_layout = {};

/* The histograms are per-CPU: each CPU adds to its own copy, so no cache line bounces
 * between CPUs on every segment; user space sums the copies. The default key's histogram
 * is at index generation & 1 of an array (no hash, no insert): the current generation's,
 * and the old one user space reads and zeroes. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct hist);
} hists SEC(".maps");

/* The histograms of -b, -B and --bycgroup, by struct hist_key, shared by the CPUs: per-CPU,
 * its room would cost max_entries * value size on every CPU (168 MB on 64 CPUs). User
 * space shrinks it to one entry for the default key. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * MAX_KEYS);
	__type(key, struct hist_key);
	__type(value, struct hist);
} keyed_hists SEC(".maps");

static const struct hist zero_hist = {};

static __always_inline int v6_equal(const __u8 *a, const volatile __u8 *b)
{
	int i;

#pragma unroll
	for (i = 0; i < 16; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* The address filters of -a/-A. As bcc: a filter of one family excludes every socket of
 * the other. */
static __always_inline int addrs_match(__u16 family, const __u8 *laddr, const __u8 *raddr)
{
	if (family == AF_INET) {
		__u32 laddr4, raddr4;

		if (settings.filter_laddr_v6 || settings.filter_raddr_v6)
			return 0;
		__builtin_memcpy(&laddr4, laddr, 4);
		__builtin_memcpy(&raddr4, raddr, 4);
		if (settings.laddr_v4 && settings.laddr_v4 != laddr4)
			return 0;
		return !settings.raddr_v4 || settings.raddr_v4 == raddr4;
	}
	if (settings.laddr_v4 || settings.raddr_v4)
		return 0;
	if (settings.filter_laddr_v6 && !v6_equal(laddr, settings.laddr_v6))
		return 0;
	return !settings.filter_raddr_v6 || v6_equal(raddr, settings.raddr_v6);
}

/* The histogram of key for this run's generation; NULL when the keyed map is full. */
static __always_inline struct hist *hist_of(struct hist_key *key)
{
	__u32 index;

	key->generation = *(volatile __u32 *)&generation;
	if (settings.key == KEY_ALL) {
		index = key->generation & 1;
		return bpf_map_lookup_elem(&hists, &index);
	}
	return lookup_or_init(&keyed_hists, key, &zero_hist);
}

/* Atomic adds: the keyed histograms are shared by the CPUs, and a catcher's run may
 * interrupt its main program's on the same CPU. */
static __always_inline void hist_add(struct hist *hist, __u32 srtt)
{
	__u32 slot = log2_u32(srtt);

	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	__sync_fetch_and_add(&hist->slots[slot], 1);
	__sync_fetch_and_add(&hist->latency, srtt);
	__sync_fetch_and_add(&hist->cnt, 1);
}

static __always_inline int record_rtt(const struct sock *sk, const int hook)
{
	struct hist_key key = {};
	__u8 laddr[16] = {}, raddr[16] = {};
	__u16 family, lport, rport;
	__u32 srtt, netns = 0;
	struct hist *hist;

	SK_READ(hook, family, sk->__sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (settings.family && family != settings.family)
		return 0;
	/* skc_num is the local port in host order (inet_sport in network order). */
	SK_READ(hook, lport, sk->__sk_common.skc_num);
	SK_READ(hook, rport, sk->__sk_common.skc_dport);
	rport = bpf_ntohs(rport);
	if (settings.lport && lport != settings.lport)
		return 0;
	if (settings.rport && rport != settings.rport)
		return 0;

	/* Addresses cost two reads per packet: only when a filter or the key needs them. */
	if (settings.laddr_v4 || settings.raddr_v4 || settings.filter_laddr_v6 ||
	    settings.filter_raddr_v6 || settings.key == KEY_LADDR || settings.key == KEY_RADDR)
		SK_READ_ADDRS(hook, sk, family, laddr, raddr);
	if (!addrs_match(family, laddr, raddr))
		return 0;
	if (!sk_in_container(sk, &settings.container, &key.cgroup_id, &netns, hook))
		return 0;
	if (settings.key != KEY_CGROUP)
		key.cgroup_id = 0;

	if (settings.key == KEY_LADDR)
		__builtin_memcpy(key.addr, laddr, sizeof(key.addr));
	else if (settings.key == KEY_RADDR)
		__builtin_memcpy(key.addr, raddr, sizeof(key.addr));
	if (settings.key == KEY_LADDR || settings.key == KEY_RADDR)
		key.family = family;

	if (!sk_srtt_us(sk, hook, &srtt))
		return 0;
	if (settings.millisecond)
		srtt /= 1000;

	hist = hist_of(&key);
	if (!hist)
		return 0; /* map full: dropped, as bcc does */
	hist_add(hist, srtt);
	return 0;
}

TCP_PROBE_PROGRAMS(record_rtt)

char LICENSE[] SEC("license") = "GPL";
