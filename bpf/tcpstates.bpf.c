// SPDX-License-Identifier: GPL-2.0
/* tcpstates, kernel side: every TCP state change from sock:inet_sock_set_state, with the
 * time spent in the state it leaves. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "tcpstates.h"
#include "stream.bpf.h"
#include "sock.bpf.h"

#define TCP_CLOSE 7
#define MAX_SOCKETS 10240

const volatile struct tcpstates_settings settings = {};

/* Never written: it puts struct state_change into the skeleton's generated types. */
struct state_change state_change_layout = {};

/* When each socket entered its current state (ktime ns), for the MS column. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SOCKETS);
	__type(key, __u64);
	__type(value, __u64);
} timestamps SEC(".maps");

static __always_inline int record_change(void *ctx, const struct sock *sk, int oldstate,
					 int newstate, const int direct)
{
	struct state_change ev = {};
	__u16 family, lport, rport;
	__u64 skaddr = (__u64)sk, ts, *tsp;

	if (!sk_is_tcp(sk, direct))
		return 0;
	SK_READ(direct, family, sk->__sk_common.skc_family);
	if (settings.family && family != settings.family)
		return 0;
	SK_READ_LPORT(sk, lport);
	SK_READ(direct, rport, sk->__sk_common.skc_dport);
	rport = bpf_ntohs(rport);
	if (settings.filter_lports && !port_in(settings.lports, lport))
		return 0;
	if (settings.filter_rports && !port_in(settings.rports, rport))
		return 0;

	ts = bpf_ktime_get_ns();
	tsp = bpf_map_lookup_elem(&timestamps, &skaddr);
	ev.delta_us = tsp ? (ts - *tsp) / 1000 : 0;
	/* The tools print 0 for an unseen start; tcptools-exporter must tell it from 0 us. */
	ev.delta_known = tsp != NULL;
	ev.skaddr = skaddr;
	ev.ts_us = ts / 1000;
	ev.pid = bpf_get_current_pid_tgid() >> 32;
	ev.oldstate = oldstate;
	ev.newstate = newstate;
	ev.family = family;
	ev.lport = lport;
	ev.rport = rport;
	bpf_get_current_comm(&ev.comm, sizeof(ev.comm));
	SK_READ_ADDRS(direct, sk, family, ev.laddr, ev.raddr);
	emit_event(ctx, &ev, sizeof(ev), ts);

	/* A socket's entry is inserted once, rewritten in place and deleted at CLOSE: an
	 * update of an existing key would allocate a new element and free the old one. */
	if (newstate == TCP_CLOSE)
		bpf_map_delete_elem(&timestamps, &skaddr);
	else if (tsp)
		*tsp = ts;
	else
		bpf_map_update_elem(&timestamps, &skaddr, &ts, BPF_ANY);
	return 0;
}

SET_STATE_PROGRAMS(record_change)

char LICENSE[] SEC("license") = "GPL";
