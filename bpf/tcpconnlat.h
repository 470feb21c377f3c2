/* The records tcpconnlat's BPF program keeps per connecting socket and sends to user space
 * for every traced connect. */
#ifndef TCPTOOLS_TCPCONNLAT_H
#define TCPTOOLS_TCPCONNLAT_H

#define TASK_COMM_LEN 16

/* Who started a connect and when: the start map's value, keyed by the socket. */
struct connect_start {
	__u64 ts_ns;     /* ktime when the socket entered SYN_SENT */
	__u32 tgid;
	__u8 comm[TASK_COMM_LEN];
	__u8 pad[4];
};

/* One connect that got its answer (SYN-ACK, or RST: refused). */
struct connect_latency {
	__u8 saddr[16];  /* IPv4 in the first 4 bytes, network order */
	__u8 daddr[16];
	__u64 delta_us;  /* SYN_SENT until the answer */
	__u64 ts_us;     /* ktime of the answer */
	__u32 tgid;
	__u16 family;
	__u16 lport;     /* host order */
	__u16 dport;     /* host order */
	__u8 comm[TASK_COMM_LEN];
	__u8 pad[6];
};

#endif
