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

/* Keys per interval (bcc's capacity); twice that, since two generations coexist for a
 * moment at every interval boundary. */
#define MAX_KEYS 10240

const volatile __u8 targ_laddr_hist = 0;
const volatile __u8 targ_raddr_hist = 0;
const volatile __u8 targ_ms = 0;
const volatile __u16 targ_family = 0;  /* 0: both */
const volatile __u16 targ_sport = 0;   /* host order; 0: no filter */
const volatile __u16 targ_dport = 0;
const volatile __u32 targ_saddr = 0;   /* network order; 0: no filter */
const volatile __u32 targ_daddr = 0;
const volatile __u8 targ_saddr_v6[16] = {};
const volatile __u8 targ_daddr_v6[16] = {};
const volatile __u8 filter_saddr_v6 = 0;
const volatile __u8 filter_daddr_v6 = 0;
/* For tcptools-exporter (the tool leaves them 0): key the histograms by family alone, and
 * count only sockets whose local (remote) port is in a set (bit p set: port p). */
const volatile __u8 targ_family_key = 0;
const volatile __u8 filter_lports = 0;
const volatile __u8 filter_rports = 0;
const volatile __u64 lports[1024] = {};
const volatile __u64 rports[1024] = {};

/* The interval samples go to. User space moves it on at every interval boundary, waits
 * until no program run can still hold the old value, then reads and deletes the old
 * generation's keys: nothing writes them any more, so no sample is lost or counted twice. */
__u32 generation = 0;

/* Never written: it puts struct hist_key and struct hist into the skeleton's types. */
struct hist_key hist_key_layout = {};
struct hist hist_layout = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * MAX_KEYS);
	__type(key, struct hist_key);
	__type(value, struct hist);
} hists SEC(".maps");

static const struct hist zero_hist = {};

static __always_inline __u32 log2_u32(__u32 v)
{
	__u32 r, shift;

	r = (v > 0xFFFF) << 4; v >>= r;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline int v6_equal(const __u8 *a, const volatile __u8 *b)
{
	int i;

#pragma unroll
	for (i = 0; i < 16; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

static __always_inline int port_in(const volatile __u64 *set, __u16 port)
{
	return (set[port >> 6] >> (port & 63)) & 1;
}

static __always_inline int record_rtt(const struct sock *sk, const int direct)
{
	struct hist_key key = {};
	__u8 saddr[16] = {}, daddr[16] = {};
	__u16 family, lport, dport;
	__u32 srtt, slot;
	struct hist *hist;

	SK_READ(direct, family, sk->__sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (targ_family && family != targ_family)
		return 0;
	/* skc_num is the local port in host order (inet_sport in network order). */
	SK_READ(direct, lport, sk->__sk_common.skc_num);
	SK_READ(direct, dport, sk->__sk_common.skc_dport);
	dport = bpf_ntohs(dport);
	if (targ_sport && lport != targ_sport)
		return 0;
	if (targ_dport && dport != targ_dport)
		return 0;
	if (filter_lports && !port_in(lports, lport))
		return 0;
	if (filter_rports && !port_in(rports, dport))
		return 0;

	/* Addresses cost two reads per packet: only when a filter or the key needs them. */
	if (targ_saddr || targ_daddr || filter_saddr_v6 || filter_daddr_v6 || targ_laddr_hist ||
	    targ_raddr_hist)
		SK_READ_ADDRS(direct, sk, family, saddr, daddr);
	/* As bcc: an address filter of one family excludes every socket of the other. */
	if (family == AF_INET) {
		__u32 saddr4, daddr4;

		if (filter_saddr_v6 || filter_daddr_v6)
			return 0;
		__builtin_memcpy(&saddr4, saddr, 4);
		__builtin_memcpy(&daddr4, daddr, 4);
		if (targ_saddr && targ_saddr != saddr4)
			return 0;
		if (targ_daddr && targ_daddr != daddr4)
			return 0;
	} else {
		if (targ_saddr || targ_daddr)
			return 0;
		if (filter_saddr_v6 && !v6_equal(saddr, targ_saddr_v6))
			return 0;
		if (filter_daddr_v6 && !v6_equal(daddr, targ_daddr_v6))
			return 0;
	}

	key.generation = *(volatile __u32 *)&generation;
	if (targ_laddr_hist) {
		key.family = family;
		__builtin_memcpy(key.addr, saddr, sizeof(key.addr));
	} else if (targ_raddr_hist) {
		key.family = family;
		__builtin_memcpy(key.addr, daddr, sizeof(key.addr));
	} else if (targ_family_key) {
		key.family = family;
	}

	/* srtt_us holds the smoothed RTT in 1/8 us (tcp_rtt_estimator keeps it << 3). It lies
	 * beyond struct sock: a tp_btf program reaches it through bpf_skc_to_tcp_sock(), a
	 * raw_tp program with a probe read. */
	if (direct) {
		const struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

		if (!tp)
			return 0;
		srtt = tp->srtt_us >> 3;
	} else {
		srtt = BPF_CORE_READ((const struct tcp_sock *)sk, srtt_us) >> 3;
	}
	if (targ_ms)
		srtt /= 1000;

	hist = bpf_map_lookup_elem(&hists, &key);
	if (!hist) {
		/* BPF_NOEXIST: a racing CPU may have created it first; use whichever won. */
		bpf_map_update_elem(&hists, &key, &zero_hist, BPF_NOEXIST);
		hist = bpf_map_lookup_elem(&hists, &key);
		if (!hist)
			return 0; /* map full: dropped, as bcc does */
	}
	slot = log2_u32(srtt);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	__sync_fetch_and_add(&hist->slots[slot], 1);
	__sync_fetch_and_add(&hist->latency, srtt);
	__sync_fetch_and_add(&hist->cnt, 1);
	return 0;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tcp_probe_btf, const struct sock *sk, const struct sk_buff *skb)
{
	return record_rtt(sk, 1);
}

SEC("raw_tp/tcp_probe")
int BPF_PROG(tcp_probe_raw, const struct sock *sk, const struct sk_buff *skb)
{
	return record_rtt(sk, 0);
}

char LICENSE[] SEC("license") = "GPL";
