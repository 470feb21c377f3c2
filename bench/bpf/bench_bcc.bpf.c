// SPDX-License-Identifier: GPL-2.0
/* The benchmarks' reference: what bcc's libbpf-tools handlers do per event, on tp_btf (their
 * own fentry/kprobe programs cannot attach here), written from how they work, so that
 * bench/ measures ours against bcc's in the same run. Loaded by bench/floor.rs. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "tcpconnlat.h"

#define MAX_SLOTS 27
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7

/* tcprtt: one histogram per u64 key (0: bcc's default, no -b/-B), created on first use. */
struct bcc_hist {
	__u64 latency;
	__u64 cnt;
	__u32 slots[MAX_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, struct bcc_hist);
} bcc_hists SEC(".maps");

static const struct bcc_hist bcc_zero = {};

static __always_inline __u64 bcc_log2(__u32 v)
{
	__u32 r = 0;

	while (v > 1 && r < 32) {
		v >>= 1;
		r++;
	}
	return r;
}

/* bcc's tcprtt handler with -e (sum and count kept, as ours always keeps them): a hash
 * lookup_or_try_init on a u64 key, then three atomic adds. */
SEC("tp_btf/tcp_probe")
int BPF_PROG(bcc_tcprtt, struct sock *sk)
{
	const struct tcp_sock *ts = (const struct tcp_sock *)sk;
	struct bcc_hist *hist;
	__u64 key = 0, slot;
	__u32 srtt;

	hist = bpf_map_lookup_elem(&bcc_hists, &key);
	if (!hist) {
		bpf_map_update_elem(&bcc_hists, &key, &bcc_zero, BPF_NOEXIST);
		hist = bpf_map_lookup_elem(&bcc_hists, &key);
		if (!hist)
			return 0;
	}
	srtt = BPF_CORE_READ(ts, srtt_us) >> 3;
	slot = bcc_log2(srtt);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	__sync_fetch_and_add(&hist->slots[slot], 1);
	__sync_fetch_and_add(&hist->latency, srtt);
	__sync_fetch_and_add(&hist->cnt, 1);
	return 0;
}

/* tcpconnlat: who connected and when, by socket address, from connect to the answer. */
struct bcc_piddata {
	char comm[TASK_COMM_LEN];
	__u64 ts;
	__u32 tgid;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct sock *);
	__type(value, struct bcc_piddata);
} bcc_start SEC(".maps");

/* bcc's tcpconnlat record (comm, addresses, times, pid, ports, family), padded to the size of
 * ours (struct connect_latency, bpf/tcpconnlat.h) so that both write the same bytes. */
struct bcc_connlat_event {
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[TASK_COMM_LEN];
	__u64 delta_us;
	__u64 ts_us;
	__u32 tgid;
	int af;
	__u16 lport;
	__u16 dport;
	__u8 pad[12];
};

_Static_assert(sizeof(struct bcc_connlat_event) == sizeof(struct connect_latency),
	       "the reference writes a record of the size tcpconnlat writes");

/* The reference's own ring, drained by bench/floor.rs every few milliseconds so that every
 * reserve finds room, as ours does (a full ring would measure a failed reserve instead). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} bcc_connlat_events SEC(".maps");

/* bcc's tcpconnlat handlers on one tracepoint: at connect a start-map insert (clock, task
 * name, pid); at the answer a lookup, the clock, the record (reserved in the ring, filled
 * from the start entry and the socket, submitted without a wakeup, as ours mostly does)
 * and a delete. (bcc's destroy_sock cleanup is left out: the reference is a lower bound
 * of bcc's cost.) */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(bcc_tcpconnlat, struct sock *sk, int oldstate, int newstate)
{
	struct bcc_piddata piddata = {}, *start;
	struct bcc_connlat_event *ev;
	__u64 now, delta;

	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
		piddata.tgid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(&piddata.comm, sizeof(piddata.comm));
		piddata.ts = bpf_ktime_get_ns();
		bpf_map_update_elem(&bcc_start, &sk, &piddata, 0);
		return 0;
	}
	if (oldstate != TCP_SYN_SENT)
		return 0;
	start = bpf_map_lookup_elem(&bcc_start, &sk);
	if (!start)
		return 0;
	now = bpf_ktime_get_ns();
	delta = now - start->ts;
	ev = bpf_ringbuf_reserve(&bcc_connlat_events, sizeof(*ev), 0);
	if (!ev)
		goto cleanup;
	__builtin_memcpy(ev->comm, start->comm, sizeof(ev->comm));
	ev->delta_us = delta / 1000;
	ev->ts_us = now / 1000;
	ev->tgid = start->tgid;
	ev->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	ev->af = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (ev->af == 2 /* AF_INET */) {
		__builtin_memset(ev->saddr, 0, sizeof(ev->saddr));
		__builtin_memset(ev->daddr, 0, sizeof(ev->daddr));
		BPF_CORE_READ_INTO((__u32 *)ev->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)ev->daddr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO(ev->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(ev->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
	__builtin_memset(ev->pad, 0, sizeof(ev->pad));
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
cleanup:
	bpf_map_delete_elem(&bcc_start, &sk);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
