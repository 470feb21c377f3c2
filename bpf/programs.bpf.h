/* The tools' program sets: on each tracepoint a tool uses, one main program and its catcher
 * (bpf/nested.bpf.h) per hook (bpf/hook.bpf.h), all calling the tool's handler with the
 * hook as a constant. User space loads one hook's programs, tp_btf where the kernel takes
 * them, else raw_tp, and names them through src/programs.rs, which a rename here breaks at
 * build time. */
#ifndef TCPTOOLS_PROGRAMS_BPF_H
#define TCPTOOLS_PROGRAMS_BPF_H

#include "hook.bpf.h"
#include "nested.bpf.h"

/* sock:inet_sock_set_state: set_state_btf and catch_state_btf (tp_btf), set_state_raw and
 * catch_state_raw (raw_tp), sharing nested_set_state; each calls
 * handler(ctx, sk, oldstate, newstate, hook). */
#define SET_STATE_PROGRAMS(handler)                                                     \
	NESTED_STATE(set_state);                                                        \
	NESTED_PROGRAMS(set_state, "tp_btf/inet_sock_set_state", set_state_btf,         \
			catch_state_btf, HOOK_TP_BTF,                                   \
			(const struct sock *sk, const int oldstate, const int newstate), \
			return handler(ctx, sk, oldstate, newstate, HOOK_TP_BTF))       \
	NESTED_PROGRAMS(set_state, "raw_tp/inet_sock_set_state", set_state_raw,         \
			catch_state_raw, HOOK_RAW_TP,                                   \
			(const struct sock *sk, const int oldstate, const int newstate), \
			return handler(ctx, sk, oldstate, newstate, HOOK_RAW_TP))

/* tcp:tcp_probe: tcp_probe_btf and catch_probe_btf (tp_btf), tcp_probe_raw and
 * catch_probe_raw (raw_tp), sharing nested_tcp_probe; each calls handler(sk, hook). */
#define TCP_PROBE_PROGRAMS(handler)                                                     \
	NESTED_STATE(tcp_probe);                                                        \
	NESTED_PROGRAMS(tcp_probe, "tp_btf/tcp_probe", tcp_probe_btf, catch_probe_btf,  \
			HOOK_TP_BTF, (const struct sock *sk, const struct sk_buff *skb), \
			return handler(sk, HOOK_TP_BTF))                                \
	NESTED_PROGRAMS(tcp_probe, "raw_tp/tcp_probe", tcp_probe_raw, catch_probe_raw,  \
			HOOK_RAW_TP, (const struct sock *sk, const struct sk_buff *skb), \
			return handler(sk, HOOK_RAW_TP))

#endif
