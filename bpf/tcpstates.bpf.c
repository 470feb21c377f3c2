// SPDX-License-Identifier: GPL-2.0
/* tcpstates, kernel side: every TCP state change from sock:inet_sock_set_state, with the
 * time spent in the state it leaves and the socket's owner and container. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "tcpstates.h"
#include "stream.bpf.h"
#include "sock.bpf.h"
#include "container.bpf.h"
#include "task.bpf.h"
#include "sk_store.bpf.h"
#include "programs.bpf.h"

#define MAX_SOCKETS 10240

const volatile struct tcpstates_settings settings = {};

/* Never written: it puts struct state_change into the skeleton's generated types. */
struct state_change state_change_layout = {};

/* Each socket's state start and owner. BPF_F_CLONE: an accepted socket starts with its
 * listener's copy, which is how it knows its owner; with owners to keep (settings.owners,
 * tp_btf only), user space leaves the store no slot table (src/tcpstates/bpf.rs), so every
 * socket's state is in socket storage. */
SK_STORE(state, struct socket_state, MAX_SOCKETS, BPF_F_CLONE);

/* The connect() or listen() caller: inside the syscall, the task on the CPU. */
static __always_inline void set_owner(struct sock_owner *owner, const int hook)
{
	owner->pid = bpf_get_current_pid_tgid() >> 32;
	current_comm(owner->comm, hook);
	owner->known = 1;
}

/* Fills ev's start and owner from the socket's state and moves it on. */
static __always_inline void track(struct state_change *ev, const struct sock *sk, __u64 ts,
				  const int hook)
{
	struct socket_state *st;
	struct sk_ref ref;

	st = sk_store_get(state, sk, hook, ev->newstate != TCP_CLOSE, &ref);
	if (!st)
		return;
	/* A clone starts with its listener's start, which is not its own. */
	if (st->skaddr == ev->skaddr && st->ts_ns) {
		ev->delta_ns = ts - st->ts_ns;
		ev->delta_known = 1;
	}
	/* Owners only where an accepted socket learns its own (cloned socket storage):
	 * with the raw_tp programs' fixed table it would have none. */
	if (settings.owners && hook == HOOK_TP_BTF) {
		if (ev->oldstate == TCP_CLOSE &&
		    (ev->newstate == TCP_SYN_SENT || ev->newstate == TCP_LISTEN))
			set_owner(&st->owner, hook);
		ev->owner = st->owner;
	}
	if (ev->newstate == TCP_CLOSE) {
		/* A socket connected again after CLOSE starts anew. */
		sk_store_release(state, sk, hook, &ref);
		return;
	}
	st->skaddr = ev->skaddr;
	st->ts_ns = ts;
}

static __always_inline int record_change(void *ctx, const struct sock *sk, int oldstate,
					 int newstate, const int hook)
{
	struct state_change ev = {};
	__u16 family, lport, rport;
	__u64 ts;

	if (!sk_is_tcp(sk, hook))
		return 0;
	SK_READ(hook, family, sk->__sk_common.skc_family);
	if (settings.family && family != settings.family)
		return 0;
	lport = sk_lport(sk, hook);
	SK_READ(hook, rport, sk->__sk_common.skc_dport);
	rport = bpf_ntohs(rport);
	if (settings.filter_lports && !port_in(settings.lports, lport))
		return 0;
	if (settings.filter_rports && !port_in(settings.rports, rport))
		return 0;
	if (!sk_in_container(sk, &settings.container, &ev.cgroup_id, &ev.netns, hook))
		return 0;

	ts = bpf_ktime_get_ns();
	ev.skaddr = (__u64)sk;
	ev.ts_ns = ts;
	ev.oldstate = oldstate;
	ev.newstate = newstate;
	track(&ev, sk, ts, hook);
	ev.pid = bpf_get_current_pid_tgid() >> 32;
	ev.family = family;
	ev.lport = lport;
	ev.rport = rport;
	current_comm(ev.comm, hook);
	SK_READ_ADDRS(hook, sk, family, ev.laddr, ev.raddr);
	/* The container and the owner only where the output shows them. */
	emit_event(ctx, &ev,
		   settings.owners || settings.container.record ? sizeof(ev) : STATE_CHANGE_SHORT,
		   ts);
	return 0;
}

SET_STATE_PROGRAMS(record_change)

char LICENSE[] SEC("license") = "GPL";
