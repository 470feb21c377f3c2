/* Reading socket fields from a tp_btf program (plain BTF-checked loads) or a raw_tp program
 * (probe reads), with one body of code for both, and the filters the tools share. `hook`
 * (bpf/hook.bpf.h) is a compile-time constant in every caller, so each program keeps only
 * its own kind of access. */
#ifndef TCPTOOLS_SOCK_BPF_H
#define TCPTOOLS_SOCK_BPF_H

#include "hook.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

/* sk_err of a SYN_SENT socket as it closes: an RST (tcp_reset) or the SYN retries running
 * out (tcp_write_err). */
#define ETIMEDOUT 110
#define ECONNREFUSED 111

/* The kernel's TCP states (include/net/tcp_states.h) the programs act on. */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7
#define TCP_LISTEN 10

/* dst = expr, where expr is a kernel field reached through a pointer. */
#define SK_READ(hook, dst, expr)                                                \
	do {                                                                    \
		if (hook == HOOK_TP_BTF)                                        \
			dst = (expr);                                           \
		else                                                            \
			bpf_core_read(&(dst), sizeof(dst), &(expr));            \
	} while (0)

/* The socket retyped for plain loads beyond struct sock, where the verifier stops a tp_btf
 * program's: bpf_core_cast() (bpf_rdonly_cast, Linux 6.2+: untrusted loads, no helper
 * call; declared weak, so where the kernel lacks it bpf_ksym_exists() is false and the
 * verifier drops the branch), else bpf_skc_to_tcp_sock() (a helper call, which costs here
 * about what a cache miss does; NULL for a socket that is no full TCP socket). The
 * tracepoints' sockets are full TCP sockets. */
static __always_inline const struct tcp_sock *sk_tcp(const struct sock *sk)
{
	if (bpf_ksym_exists(bpf_rdonly_cast))
		return bpf_core_cast(sk, struct tcp_sock);
	return bpf_skc_to_tcp_sock(sk);
}

/* The local port as the tracepoints report it: ntohs(inet_sport), not skc_num, which
 * the kernel clears before SYN_SENT -> CLOSE of a refused connect. inet_sport lies
 * beyond struct sock: a tp_btf program reaches it through sk_tcp(), a raw_tp program
 * (or where sk_tcp() finds no tcp_sock) with a probe read. */
static __always_inline __u16 sk_lport(const struct sock *sk, const int hook)
{
	/* Through struct tcp_sock, as the tp_btf path, not struct inet_sock, the first member
	 * of its first member: the same offset, and one kernel type fewer for libbpf to look
	 * up when it relocates (a scan of every kernel type each, at every start). */
	const struct tcp_sock *tcp = (const struct tcp_sock *)sk;
	__u16 sport;

	if (hook == HOOK_TP_BTF) {
		const struct tcp_sock *tp = sk_tcp(sk);

		if (tp)
			return bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	}
	bpf_core_read(&sport, sizeof(sport), &tcp->inet_conn.icsk_inet.inet_sport);
	return bpf_ntohs(sport);
}

/* Copies an address field of n bytes into dst. */
#define SK_READ_ADDR(hook, dst, field, n)                                       \
	do {                                                                    \
		if (hook == HOOK_TP_BTF)                                        \
			__builtin_memcpy(dst, &(field), n);                     \
		else                                                            \
			bpf_core_read(dst, n, &(field));                        \
	} while (0)

/* The socket's local and remote addresses: IPv4 in the first 4 bytes, anything else
 * read as IPv6, as bcc does. */
#define SK_READ_ADDRS(hook, sk, family, laddr, raddr)                           \
	do {                                                                    \
		if ((family) == AF_INET) {                                      \
			SK_READ_ADDR(hook, laddr, (sk)->__sk_common.skc_rcv_saddr, 4); \
			SK_READ_ADDR(hook, raddr, (sk)->__sk_common.skc_daddr, 4); \
		} else {                                                        \
			SK_READ_ADDR(hook, laddr, (sk)->__sk_common.skc_v6_rcv_saddr, 16); \
			SK_READ_ADDR(hook, raddr, (sk)->__sk_common.skc_v6_daddr, 16); \
		}                                                               \
	} while (0)

/* inet_sock_set_state also fires for SCTP and MPTCP sockets. */
static __always_inline int sk_is_tcp(const struct sock *sk, const int hook)
{
	__u16 protocol;

	if (hook == HOOK_TP_BTF)
		protocol = BPF_CORE_READ_BITFIELD(sk, sk_protocol);
	else
		protocol = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
	return protocol == IPPROTO_TCP;
}

/* A port set as a 65536-bit bitmap (bit p set: port p is in it): one load per test. */
static __always_inline int port_in(const volatile __u64 *set, __u16 port)
{
	return (set[port >> 6] >> (port & 63)) & 1;
}

/* The value of key, created from init first if the map has none; NULL when the map is
 * full. BPF_NOEXIST: a racing CPU may have created it first, and then that one is used. */
static __always_inline void *lookup_or_init(void *map, const void *key, const void *init)
{
	void *value = bpf_map_lookup_elem(map, key);

	if (value)
		return value;
	bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

/* Reads the smoothed RTT in us into *srtt (tcp_rtt_estimator keeps srtt_us << 3); 0 if sk
 * is no tcp_sock. srtt_us lies beyond struct sock: a tp_btf program reaches it through
 * sk_tcp(), a raw_tp program with a probe read. */
static __always_inline int sk_srtt_us(const struct sock *sk, const int hook, __u32 *srtt)
{
	if (hook == HOOK_TP_BTF) {
		const struct tcp_sock *tp = sk_tcp(sk);

		if (!tp)
			return 0;
		*srtt = tp->srtt_us >> 3;
	} else {
		*srtt = BPF_CORE_READ((const struct tcp_sock *)sk, srtt_us) >> 3;
	}
	return 1;
}

#endif
