/* A socket's container as the tools filter and record it: its cgroup v2 and its network
 * namespace, taken from the socket itself (not from the task on the CPU, which in softirq
 * or for an accepted socket is often another process). Shared by bpf/NAME.h. */
#ifndef TCPTOOLS_CONTAINER_H
#define TCPTOOLS_CONTAINER_H

/* Set by user space before load; 0 everywhere filters nothing and records nothing. */
struct container_settings {
	__u32 netns;          /* --netns: only sockets in this network namespace (inode) */
	__u8 filter_cgroups;  /* 1: only sockets in a cgroup of the cgroup set or below one
	                       * (bpf/container.bpf.h), even while the set is empty */
	__u8 record;          /* 1: records carry cgroup_id and netns */
	__u8 pad[2];
};

/* Who acted on a socket: the connect() caller at CLOSE -> SYN_SENT, the listen() caller
 * at CLOSE -> LISTEN; accepted sockets inherit their listener's. */
struct sock_owner {
	__u32 pid;
	__u8 comm[16];
	__u8 known;          /* 1: pid and comm are set */
	__u8 pad[3];
};

#endif
