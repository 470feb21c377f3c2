/* tcprtt's settings and the histograms its BPF program fills and user space reads once
 * per interval. */
#ifndef TCPTOOLS_TCPRTT_H
#define TCPTOOLS_TCPRTT_H

#include "container.h"

/* log2 slots; the last one also holds every RTT of 2^26 units or more, as bcc's. */
#define MAX_SLOTS 27

/* What the histograms are keyed by. */
enum hist_key_kind {
	KEY_ALL = 0,    /* one histogram for every socket */
	KEY_LADDR = 1,  /* -b: one per local address */
	KEY_RADDR = 2,  /* -B: one per remote address */
	KEY_CGROUP = 3, /* --bycgroup: one per cgroup v2 */
};

/* Set by user space before load; 0 everywhere counts every socket into one histogram. */
struct tcprtt_settings {
	struct container_settings container;
	__u32 laddr_v4;         /* network order; 0: no filter */
	__u32 raddr_v4;
	__u8 laddr_v6[16];      /* with filter_laddr_v6 */
	__u8 raddr_v6[16];
	__u16 family;           /* AF_INET or AF_INET6; 0: both */
	__u16 lport;            /* host order; 0: no filter */
	__u16 rport;
	__u8 filter_laddr_v6;
	__u8 filter_raddr_v6;
	__u8 millisecond;       /* 1: samples in ms, else us */
	__u8 pad[3];
	enum hist_key_kind key;
};

struct hist_key {
	__u32 generation; /* which interval the samples belong to (see tcprtt.bpf.c) */
	__u16 family;     /* 0 when not keyed by address (one histogram for all) */
	__u8 addr[16];    /* IPv4 in the first 4 bytes, network order; zero when family is 0 */
	__u8 pad[2];
	__u64 cgroup_id;  /* KEY_CGROUP: the sockets' cgroup v2 id; else 0 */
};

struct hist {
	__u64 latency; /* sum of the samples, in the histogram's unit */
	__u64 cnt;     /* number of samples */
	__u32 slots[MAX_SLOTS];
	__u32 pad;
};

#endif
