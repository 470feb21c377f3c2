/* tcpconnlat's settings, what its BPF program keeps per connecting socket, and the record it
 * sends for every traced connect. */
#ifndef TCPTOOLS_TCPCONNLAT_H
#define TCPTOOLS_TCPCONNLAT_H

#include "container.h"

#define TASK_COMM_LEN 16

/* Set by user space before load; 0 everywhere traces every connect. */
struct tcpconnlat_settings {
	struct container_settings container;
	__u64 min_us;   /* connects faster than this are not sent */
	__u32 pid;      /* only connects by this process (tgid) */
	__u16 family;   /* AF_INET or AF_INET6; 0: both */
	__u8 pad[2];
};

/* Who started a connect and when, kept per socket (bpf/sk_store.bpf.h). */
struct connect_start {
	__u64 ts_ns;     /* ktime when the socket entered SYN_SENT */
	__u32 pid;
	__u8 comm[TASK_COMM_LEN];
	__u8 pad[4];
};

/* One connect that got its answer (SYN-ACK, or RST: refused). */
struct connect_latency {
	__u8 laddr[16];  /* IPv4 in the first 4 bytes, network order */
	__u8 raddr[16];
	__u64 delta_ns;  /* SYN_SENT until the answer (user space divides: cheaper there) */
	__u64 ts_ns;     /* ktime of the answer */
	__u64 cgroup_id; /* with settings.container.record */
	__u32 netns;
	__u32 pid;
	__u16 family;
	__u16 lport;     /* host order */
	__u16 rport;     /* host order */
	__u8 comm[TASK_COMM_LEN];
	__u8 pad[2];
};

#endif
