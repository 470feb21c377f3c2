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
#include "slots.bpf.h"

#define MAX_SOCKETS 10240

const volatile struct tcpstates_settings settings = {};

/* Never written: it puts struct state_change into the skeleton's generated types. */
struct state_change state_change_layout = {};

/* tp_btf programs from Linux 5.11 (settings.sk_storage): the socket's state start and
 * owner live with the socket, as many as there are sockets. BPF_F_CLONE: an accepted
 * socket starts with its listener's copy, which is how it knows its owner. Without owners
 * to keep (settings.owners 0), the slot table first (bpf/slots.bpf.h: no allocation per
 * socket), and socket storage for a socket whose bucket is full. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct socket_state);
} socket_states SEC(".maps");

SLOT_TABLE(state_slots);
SLOT_VALUES(slot_states, struct socket_state);

/* Programs that cannot use socket storage (raw_tp, and tp_btf before 5.11): state starts
 * (ktime ns) by socket, in a fixed table; a full table is counted (table_full). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SOCKETS);
	__type(key, __u64);
	__type(value, __u64);
} timestamps SEC(".maps");

/* Only tp_btf programs with socket storage keep owners (settings.owners). */
static __always_inline void set_owner(struct sock_owner *owner)
{
	owner->pid = bpf_get_current_pid_tgid() >> 32;
	current_comm(owner->comm, SK_BTF_STORAGE);
	owner->known = 1;
}

/* Socket storage (or a slot): fills ev's start and owner from the socket's state and moves
 * it on. */
static __always_inline void track_in_storage(struct state_change *ev, const struct sock *sk,
					     __u64 ts)
{
	struct slot_ref ref = {};
	struct socket_state *st;
	int fresh = 0;

	if (settings.owners)
		st = bpf_sk_storage_get(&socket_states, (struct sock *)sk, NULL,
					BPF_SK_STORAGE_GET_F_CREATE);
	else
		st = slot_value(&state_slots, &slot_states, &socket_states, sk, &settings, 1,
				&ref, &fresh);
	if (!st)
		return;
	/* A freshly claimed slot holds what its last socket left. */
	if (!fresh && st->skaddr == ev->skaddr && st->ts_ns) {
		ev->delta_ns = ts - st->ts_ns;
		ev->delta_known = 1;
	}
	/* The connect() or listen() caller: inside the syscall, the task on the CPU. */
	if (settings.owners) {
		if (ev->oldstate == TCP_CLOSE &&
		    (ev->newstate == TCP_SYN_SENT || ev->newstate == TCP_LISTEN))
			set_owner(&st->owner);
		ev->owner = st->owner;
	}
	st->skaddr = ev->skaddr;
	/* As the table's entry is deleted: a socket connected again after CLOSE starts anew. */
	st->ts_ns = ev->newstate == TCP_CLOSE ? 0 : ts;
	if (ev->newstate == TCP_CLOSE)
		slot_free(&ref);
}

/* The fixed table: the start only. An entry is inserted once, rewritten in place
 * and deleted at CLOSE: an update of an existing key would allocate a new element. */
static __always_inline void track_in_table(struct state_change *ev, __u64 ts)
{
	__u64 skaddr = ev->skaddr, *tsp;

	tsp = bpf_map_lookup_elem(&timestamps, &skaddr);
	if (tsp) {
		ev->delta_ns = ts - *tsp;
		ev->delta_known = 1;
	}
	if (ev->newstate == TCP_CLOSE)
		bpf_map_delete_elem(&timestamps, &skaddr);
	else if (tsp)
		*tsp = ts;
	else if (bpf_map_update_elem(&timestamps, &skaddr, &ts, BPF_ANY))
		count_table_full();
}

static __always_inline int record_change(void *ctx, const struct sock *sk, int oldstate,
					 int newstate, const int direct, const int catcher)
{
	struct state_change ev = {};
	__u16 family, lport, rport;
	__u64 ts;

	if (!sk_is_tcp(sk, direct))
		return 0;
	SK_READ(direct, family, sk->__sk_common.skc_family);
	if (settings.family && family != settings.family)
		return 0;
	lport = sk_lport(sk, direct);
	SK_READ(direct, rport, sk->__sk_common.skc_dport);
	rport = bpf_ntohs(rport);
	if (settings.filter_lports && !port_in(settings.lports, lport))
		return 0;
	if (settings.filter_rports && !port_in(settings.rports, rport))
		return 0;
	if (!sk_in_container(sk, &settings.container, &ev.cgroup_id, &ev.netns))
		return 0;

	ts = bpf_ktime_get_ns();
	ev.skaddr = (__u64)sk;
	ev.ts_ns = ts;
	ev.oldstate = oldstate;
	ev.newstate = newstate;
	/* `direct` is a constant: only set_state_btf has the storage helpers and the slot
	 * table's compare-and-swap, which Linux 5.10's verifier refuses even unreached. */
	if (direct == SK_BTF_STORAGE && settings.sk_storage)
		track_in_storage(&ev, sk, ts);
	else
		track_in_table(&ev, ts);
	ev.pid = bpf_get_current_pid_tgid() >> 32;
	ev.family = family;
	ev.lport = lport;
	ev.rport = rport;
	current_comm(ev.comm, direct);
	SK_READ_ADDRS(direct, sk, family, ev.laddr, ev.raddr);
	/* The container and the owner only where the output shows them. */
	emit_event(ctx, &ev,
		   settings.owners || settings.container.record ? sizeof(ev) : STATE_CHANGE_SHORT,
		   ts);
	return 0;
}

SET_STATE_PROGRAMS(record_change)

char LICENSE[] SEC("license") = "GPL";
