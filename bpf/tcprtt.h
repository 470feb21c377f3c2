/* The histogram map tcprtt's BPF program fills and user space reads once per interval. */
#ifndef TCPTOOLS_TCPRTT_H
#define TCPTOOLS_TCPRTT_H

/* log2 slots; the last one also holds every RTT of 2^26 units or more, as bcc's. */
#define MAX_SLOTS 27

struct hist_key {
	__u32 generation; /* which interval the samples belong to (see tcprtt.bpf.c) */
	__u16 family;     /* 0 when not keyed by address (one histogram for all) */
	__u8 addr[16];    /* IPv4 in the first 4 bytes, network order; zero when family is 0 */
	__u8 pad[2];
};

struct hist {
	__u64 latency; /* sum of the samples, in the histogram's unit */
	__u64 cnt;     /* number of samples */
	__u32 slots[MAX_SLOTS];
	__u32 pad;
};

#endif
