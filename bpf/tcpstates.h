/* tcpstates' settings and the record its BPF program sends for every traced state change. */
#ifndef TCPTOOLS_TCPSTATES_H
#define TCPTOOLS_TCPSTATES_H

#include "container.h"

#define TASK_COMM_LEN 16
#define PORT_SET_WORDS 1024

/* Set by user space before load; 0 everywhere traces every TCP socket. */
struct tcpstates_settings {
	__u64 lports[PORT_SET_WORDS]; /* bit p set: local port p traced (with filter_lports) */
	__u64 rports[PORT_SET_WORDS];
	struct container_settings container;
	__u16 family;                 /* AF_INET or AF_INET6; 0: both */
	__u8 filter_lports;
	__u8 filter_rports;
	__u8 owners;                  /* 1: keep sockets' owners, and send them (tp_btf) */
	__u8 pad[3];
};

/* What tcpstates keeps per socket (bpf/sk_store.bpf.h). */
struct socket_state {
	__u64 ts_ns;      /* when the socket entered its current state; 0: not seen */
	__u64 skaddr;     /* the socket that set ts_ns: a clone starts with its listener's */
	struct sock_owner owner;
};

/* The record of one state change. A ring buffer record costs about 0.7 ns a byte to
 * write here: where the output shows neither the container nor the owner, the program
 * sends only the fields before cgroup_id (STATE_CHANGE_SHORT), 96 bytes of 136. */
struct state_change {
	__u8 laddr[16];  /* IPv4 in the first 4 bytes, network order */
	__u8 raddr[16];
	__u64 skaddr;
	__u64 ts_ns;     /* ktime: user space divides, a division costs the program ~7 ns */
	__u64 delta_ns;  /* time in oldstate: the JSON prints it to the ns, the columns to the us */
	__u32 pid;
	__s32 oldstate;
	__s32 newstate;
	__u16 family;
	__u16 lport;     /* host order */
	__u16 rport;     /* host order */
	__u8 comm[TASK_COMM_LEN];
	__u8 delta_known; /* 1: delta_ns counts from a state start this program saw */
	__u8 pad[5];
	/* Sent only with settings.owners or settings.container.record. */
	__u64 cgroup_id; /* with settings.container.record */
	__u32 netns;
	struct sock_owner owner;
};

#define STATE_CHANGE_SHORT __builtin_offsetof(struct state_change, cgroup_id)

#endif
