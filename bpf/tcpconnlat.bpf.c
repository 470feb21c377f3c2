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
#include "sk_store.bpf.h"
#include "programs.bpf.h"

#define MAX_CONNECTS 4096

const volatile struct tcpconnlat_settings settings = {};

/* Never written: they put the structs into the skeleton's generated types. */
struct connect_latency connect_latency_layout = {};
struct connect_start connect_start_layout = {};

/* Connects in flight. Every way out of SYN_SENT passes through the tracepoint and releases
 * the socket's start, so none outlives its socket. */
SK_STORE(start, struct connect_start, MAX_CONNECTS, 0);

/* CLOSE -> SYN_SENT happens inside connect(), so the current task is the one connecting.
 * A socket connected again after a failed attempt overwrites its old start. */
static __always_inline void start_connect(const struct sock *sk, const int hook)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct connect_start *start;
	struct sk_ref ref;

	if (settings.pid && pid != settings.pid)
		return;
	start = sk_store_get(start, sk, hook, 1, &ref);
	if (!start)
		return;
	start->ts_ns = bpf_ktime_get_ns();
	start->pid = pid;
	current_comm(start->comm, hook);
}

static __always_inline void answer_connect(void *ctx, const struct sock *sk, __u16 family,
					   const int hook)
{
	struct connect_latency ev = {};
	struct connect_start *start;
	struct sk_ref ref;
	__u64 now;
	__s64 delta;
	__u16 lport, rport;

	start = sk_store_get(start, sk, hook, 0, &ref);
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
	lport = sk_lport(sk, hook);
	SK_READ(hook, rport, sk->__sk_common.skc_dport);
	ev.lport = lport;
	ev.rport = bpf_ntohs(rport);
	SK_READ_ADDRS(hook, sk, family, ev.laddr, ev.raddr);
	/* Filtered when the connect started; read now for the record. */
	sk_container_record(sk, &settings.container, &ev.cgroup_id, &ev.netns, hook);
	emit_event(ctx, &ev, sizeof(ev), now);
forget:
	sk_store_release(start, sk, hook, &ref);
}

static __always_inline int on_state_change(void *ctx, const struct sock *sk, int oldstate,
					   int newstate, const int hook)
{
	__u64 cgroup_id;
	__u32 netns;
	struct sk_ref ref;
	__u16 family;
	int err;

	if (newstate != TCP_SYN_SENT && oldstate != TCP_SYN_SENT)
		return 0;
	if (!sk_is_tcp(sk, hook))
		return 0;

	if (newstate == TCP_SYN_SENT) {
		SK_READ(hook, family, sk->__sk_common.skc_family);
		if (settings.family && family != settings.family)
			return 0;
		if (!sk_in_container(sk, &settings.container, &cgroup_id, &netns, hook))
			return 0;
		if (oldstate == TCP_CLOSE)
			start_connect(sk, hook);
		return 0;
	}

	/* Leaving SYN_SENT: only sockets with an entry passed the filters. */
	if (newstate == TCP_ESTABLISHED) {
		SK_READ(hook, family, sk->__sk_common.skc_family);
		answer_connect(ctx, sk, family, hook);
		return 0;
	}
	if (newstate == TCP_CLOSE) {
		/* tcp_reset() sets ECONNREFUSED before closing a SYN_SENT socket on an RST: bcc
		 * measures up to that answer too. Timeouts, close() and local failures do not. */
		SK_READ(hook, err, sk->sk_err);
		if (err == ECONNREFUSED) {
			SK_READ(hook, family, sk->__sk_common.skc_family);
			answer_connect(ctx, sk, family, hook);
			return 0;
		}
	}
	if (sk_store_get(start, sk, hook, 0, &ref))
		sk_store_release(start, sk, hook, &ref);
	return 0;
}

SET_STATE_PROGRAMS(on_state_change)

char LICENSE[] SEC("license") = "GPL";
