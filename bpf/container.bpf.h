/* Reading a socket's cgroup v2 and network namespace, and the -c/--netns filter, with CO-RE
 * probe reads that work in tp_btf and raw_tp programs alike, on every kernel from 5.10
 * (where sk_cgrp_data was a tagged u64 and cgroups kept ancestor ids) to today. */
#ifndef TCPTOOLS_CONTAINER_BPF_H
#define TCPTOOLS_CONTAINER_BPF_H

#include "container.h"

#define MAX_CGROUP_LEVEL 64

/* Linux < 5.15: the cgroup pointer shares a u64 with net_cls/net_prio data; the low bit set
 * means the u64 holds that data and the socket counts as in the root cgroup. */
struct sock_cgroup_data___old {
	__u64 val;
};

struct sock___old {
	struct sock_cgroup_data___old sk_cgrp_data;
};

/* Linux < 6.1: ancestors kept by id. */
struct cgroup___old {
	int level;
	__u64 ancestor_ids[];
};

static __always_inline struct cgroup *sk_cgroup(const struct sock *sk)
{
	if (bpf_core_field_exists(sk->sk_cgrp_data.cgroup))
		return BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	__u64 val = BPF_CORE_READ((const struct sock___old *)sk, sk_cgrp_data.val);

	return (val & 1) ? NULL : (struct cgroup *)val;
}

/* The cgroup v2 id: the kernfs id of its directory, which user space sees as its inode
 * number; 1 (the root) where the socket has none. */
static __always_inline __u64 cgroup_id_of(const struct cgroup *cgrp)
{
	return cgrp ? BPF_CORE_READ(cgrp, kn, id) : 1;
}

static __always_inline __u32 sk_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* Whether cgrp is the cgroup with id `id` at depth `level`, or below it. */
static __always_inline int cgroup_under(const struct cgroup *cgrp, __u64 id, __u32 level)
{
	__u64 ancestor_id;

	if (!cgrp || level >= MAX_CGROUP_LEVEL)
		return level == 0 && id == 1;
	if ((__u32)BPF_CORE_READ(cgrp, level) < level)
		return 0;
	if (bpf_core_field_exists(cgrp->ancestors)) {
		struct cgroup *ancestor = NULL;

		bpf_core_read(&ancestor, sizeof(ancestor), &cgrp->ancestors[level]);
		ancestor_id = cgroup_id_of(ancestor);
	} else {
		const struct cgroup___old *old = (const void *)cgrp;

		bpf_core_read(&ancestor_id, sizeof(ancestor_id), &old->ancestor_ids[level]);
	}
	return ancestor_id == id;
}

/* Applies the -c/--netns filter of `c` to sk; when it passes and c->record is set, fills
 * *cgroup_id and *netns for the record. */
static __always_inline int sk_in_container(const struct sock *sk,
					   const volatile struct container_settings *c,
					   __u64 *cgroup_id, __u32 *netns)
{
	struct cgroup *cgrp = NULL;

	if (c->netns || c->record) {
		*netns = sk_netns(sk);
		if (c->netns && *netns != c->netns)
			return 0;
	}
	if (c->cgroup_id || c->record) {
		cgrp = sk_cgroup(sk);
		if (c->cgroup_id && !cgroup_under(cgrp, c->cgroup_id, c->cgroup_level))
			return 0;
		*cgroup_id = cgroup_id_of(cgrp);
	}
	return 1;
}

#endif
