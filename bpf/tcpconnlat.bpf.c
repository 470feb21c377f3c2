// SPDX-License-Identifier: GPL-2.0
/* tcpconnlat, kernel side: the time from a connect's SYN_SENT to its answer, from
 * sock:inet_sock_set_state alone. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "tcpconnlat.h"
#include "stream.bpf.h"
#include "sock.bpf.h"
#include "container.bpf.h"
#include "task.bpf.h"
#include "slots.bpf.h"

#define MAX_CONNECTS 4096

const volatile struct tcpconnlat_settings settings = {};

/* Never written: they put the structs into the skeleton's generated types. */
struct connect_latency connect_latency_layout = {};
struct connect_start connect_start_layout = {};

/* Connects in flight, tp_btf programs from Linux 5.11 (settings.sk_storage): in the slot
 * table, or with the socket where its bucket was full. */
SLOT_TABLE(start_slots);
SLOT_VALUES(slot_starts, struct connect_start);

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct connect_start);
} connect_starts SEC(".maps");

/* Connects in flight, programs without socket storage: a fixed table by socket; a full
 * table is counted (table_full). Every way out of SYN_SENT passes through the tracepoint
 * and deletes the entry, so none outlives its socket. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CONNECTS);
	__type(key, __u64);
	__type(value, struct connect_start);
} connect_table SEC(".maps");

/* The start of sk's connect; ref says where it is, for forget_start(). */
static __always_inline struct connect_start *find_start(const struct sock *sk,
							struct slot_ref *ref, const int direct)
{
	__u64 skaddr = (__u64)sk;
	int fresh;

	ref->held = 0;
	if (!(direct == SK_BTF_STORAGE && settings.sk_storage))
		return bpf_map_lookup_elem(&connect_table, &skaddr);
	return slot_value(&start_slots, &slot_starts, &connect_starts, sk, &settings, 0, ref,
			  &fresh);
}

static __always_inline void forget_start(const struct sock *sk, const struct slot_ref *ref,
					 const int direct)
{
	__u64 skaddr = (__u64)sk;

	if (!(direct == SK_BTF_STORAGE && settings.sk_storage))
		bpf_map_delete_elem(&connect_table, &skaddr);
	else if (ref->held)
		slot_free(ref);
	else
		bpf_sk_storage_delete(&connect_starts, (struct sock *)sk);
}

/* CLOSE -> SYN_SENT happens inside connect(), so the current task is the one connecting.
 * A socket connected again after a failed attempt overwrites its old start. */
static __always_inline void start_connect(const struct sock *sk, const int direct)
{
	struct connect_start start = {}, *kept;
	__u64 skaddr = (__u64)sk;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct slot_ref ref;
	int fresh;

	if (settings.pid && pid != settings.pid)
		return;
	start.ts_ns = bpf_ktime_get_ns();
	start.pid = pid;
	current_comm(start.comm, direct);
	if (!(direct == SK_BTF_STORAGE && settings.sk_storage)) {
		if (bpf_map_update_elem(&connect_table, &skaddr, &start, BPF_ANY))
			count_table_full();
		return;
	}
	/* A socket connected again after a failed attempt finds its old start. */
	kept = slot_value(&start_slots, &slot_starts, &connect_starts, sk, &settings, 1, &ref,
			  &fresh);
	if (kept)
		*kept = start;
}

static __always_inline void answer_connect(void *ctx, const struct sock *sk, __u16 family,
					   const int direct)
{
	struct connect_latency ev = {};
	struct connect_start *start;
	struct slot_ref ref;
	__u64 now;
	__s64 delta;
	__u16 lport, rport;

	start = find_start(sk, &ref, direct);
	if (!start)
		return;
	now = bpf_ktime_get_ns();
	delta = (__s64)(now - start->ts_ns);
	if (delta < 0)
		goto forget;
	/* delta / 1000 < min_us, without the division (settings are constants to the
	 * verifier: only the compare is left). */
	if (settings.min_us &&
	    (settings.min_us > ~0ULL / 1000 || (__u64)delta < settings.min_us * 1000))
		goto forget;

	ev.delta_ns = delta;
	ev.ts_ns = now;
	ev.pid = start->pid;
	__builtin_memcpy(ev.comm, start->comm, sizeof(ev.comm));
	ev.family = family;
	lport = sk_lport(sk, direct);
	SK_READ(direct, rport, sk->__sk_common.skc_dport);
	ev.lport = lport;
	ev.rport = bpf_ntohs(rport);
	SK_READ_ADDRS(direct, sk, family, ev.laddr, ev.raddr);
	/* Filtered when the connect started; read now for the record. */
	sk_in_container(sk, &settings.container, &ev.cgroup_id, &ev.netns);
	emit_event(ctx, &ev, sizeof(ev), now);
forget:
	forget_start(sk, &ref, direct);
}

static __always_inline int on_state_change(void *ctx, const struct sock *sk, int oldstate,
					   int newstate, const int direct, const int catcher)
{
	__u64 cgroup_id;
	__u32 netns;
	struct slot_ref ref;
	__u16 family;
	int err;

	if (newstate != TCP_SYN_SENT && oldstate != TCP_SYN_SENT)
		return 0;
	if (!sk_is_tcp(sk, direct))
		return 0;

	if (newstate == TCP_SYN_SENT) {
		SK_READ(direct, family, sk->__sk_common.skc_family);
		if (settings.family && family != settings.family)
			return 0;
		if (!sk_in_container(sk, &settings.container, &cgroup_id, &netns))
			return 0;
		if (oldstate == TCP_CLOSE)
			start_connect(sk, direct);
		return 0;
	}

	/* Leaving SYN_SENT: only sockets with an entry passed the filters. */
	if (newstate == TCP_ESTABLISHED) {
		SK_READ(direct, family, sk->__sk_common.skc_family);
		answer_connect(ctx, sk, family, direct);
		return 0;
	}
	if (newstate == TCP_CLOSE) {
		/* tcp_reset() sets ECONNREFUSED before closing a SYN_SENT socket on an RST: bcc
		 * measures up to that answer too. Timeouts, close() and local failures do not. */
		SK_READ(direct, err, sk->sk_err);
		if (err == ECONNREFUSED) {
			SK_READ(direct, family, sk->__sk_common.skc_family);
			answer_connect(ctx, sk, family, direct);
			return 0;
		}
	}
	if (find_start(sk, &ref, direct))
		forget_start(sk, &ref, direct);
	return 0;
}

SET_STATE_PROGRAMS(on_state_change)

char LICENSE[] SEC("license") = "GPL";
