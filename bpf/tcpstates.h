/* The record tcpstates' BPF program sends to user space for every traced state change. */
#ifndef TCPTOOLS_TCPSTATES_H
#define TCPTOOLS_TCPSTATES_H

#define TASK_COMM_LEN 16

struct state_change {
	__u8 saddr[16];  /* IPv4 in the first 4 bytes, network order */
	__u8 daddr[16];
	__u64 skaddr;
	__u64 ts_us;
	__u64 delta_us;
	__u32 pid;
	__s32 oldstate;
	__s32 newstate;
	__u16 family;
	__u16 sport;     /* host order */
	__u16 dport;     /* host order */
	__u8 comm[TASK_COMM_LEN];
	__u8 delta_known; /* 1: delta_us counts from a state start this program saw */
	__u8 pad;
};

#endif
