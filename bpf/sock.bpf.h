/* Reading socket fields from a tp_btf program (plain BTF-checked loads) or a raw_tp program
 * (probe reads), with one body of code for both. `direct` is a compile-time constant in
 * every caller, so each program keeps only its own kind of access. */
#ifndef TCPTOOLS_SOCK_BPF_H
#define TCPTOOLS_SOCK_BPF_H

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

/* dst = expr, where expr is a kernel field reached through a pointer. */
#define SK_READ(direct, dst, expr)                                           \
	do {                                                                 \
		if (direct)                                                  \
			dst = (expr);                                        \
		else                                                         \
			bpf_core_read(&(dst), sizeof(dst), &(expr));         \
	} while (0)

/* The local port as the tracepoints report it: ntohs(inet_sport), not skc_num, which
 * the kernel clears before SYN_SENT -> CLOSE of a refused connect. inet_sport lies
 * beyond struct sock, where the verifier stops a tp_btf program's plain loads, so it is
 * always a probe read. */
#define SK_READ_SPORT(sk, dst)                                                       \
	do {                                                                         \
		const struct inet_sock *inet__ = (const struct inet_sock *)(sk);    \
		bpf_core_read(&(dst), sizeof(dst), &inet__->inet_sport);             \
		dst = bpf_ntohs(dst);                                                \
	} while (0)

/* Copies an address field of n bytes into dst. */
#define SK_READ_ADDR(direct, dst, field, n)                                  \
	do {                                                                 \
		if (direct)                                                  \
			__builtin_memcpy(dst, &(field), n);                  \
		else                                                         \
			bpf_core_read(dst, n, &(field));                     \
	} while (0)

/* The socket's local and remote addresses: IPv4 in the first 4 bytes, anything else
 * read as IPv6, as bcc does. */
#define SK_READ_ADDRS(direct, sk, family, saddr, daddr)                               \
	do {                                                                          \
		if ((family) == AF_INET) {                                            \
			SK_READ_ADDR(direct, saddr, (sk)->__sk_common.skc_rcv_saddr, 4); \
			SK_READ_ADDR(direct, daddr, (sk)->__sk_common.skc_daddr, 4);  \
		} else {                                                              \
			SK_READ_ADDR(direct, saddr, (sk)->__sk_common.skc_v6_rcv_saddr, 16); \
			SK_READ_ADDR(direct, daddr, (sk)->__sk_common.skc_v6_daddr, 16); \
		}                                                                     \
	} while (0)

#endif
