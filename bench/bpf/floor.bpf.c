// SPDX-License-Identifier: GPL-2.0
/* The benchmarks' floor: empty programs on the tools' tracepoints. What they cost per run
 * is the price of merely being attached, which no tracer can go below (bench/). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(floor_set_state)
{
	return 0;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(floor_tcp_probe)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
