/* Reading a socket's cgroup v2 and network namespace, and the -c/--netns filter, in tp_btf
 * programs with plain BTF loads (a probe read each costs about a bpf_ktime_get_ns()) and in
 * raw_tp programs with CO-RE probe reads, on every kernel from 5.10 (where sk_cgrp_data was
 * a tagged u64 and cgroups kept ancestor ids) to today.
 *
 * The cgroup filter is a set of cgroups (cgroup_set), which user space (src/container.rs,
 * CgroupSet) sizes before load and may grow and shrink while the programs run: a socket
 * passes when its cgroup or one of its ancestors is in the set. `-c PATH` is a set of one. */
#ifndef TCPTOOLS_CONTAINER_BPF_H
#define TCPTOOLS_CONTAINER_BPF_H

#include "container.h"
#include "hook.bpf.h"

/* The levels a member of the set may sit at: one bit each in cgroup_set_levels' mask. */
#define CGROUP_SET_LEVELS (sizeof(__u64) * 8)

/* The members of the cgroup set by id (the kernfs id of the cgroup's directory); the value
 * is unused. One entry here; user space gives it room before load when it filters. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_set SEC(".maps");

/* Bit L set: a member of the set sits at level L (depth below the root), so only the
 * socket's ancestors at those levels are looked up. An array, not a .bss global: user space
 * writes it from any thread with the map's descriptor alone. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cgroup_set_levels SEC(".maps");

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

static __always_inline struct cgroup *sk_cgroup(const struct sock *sk, const int hook)
{
	if (bpf_core_field_exists(sk->sk_cgrp_data.cgroup)) {
		if (hook == HOOK_TP_BTF)
			return sk->sk_cgrp_data.cgroup;
		return BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	}
	__u64 val = BPF_CORE_READ((const struct sock___old *)sk, sk_cgrp_data.val);

	return (val & 1) ? NULL : (struct cgroup *)val;
}

/* The cgroup v2 id: the kernfs id of its directory, which user space sees as its inode
 * number; 1 (the root) where the socket has none. */
static __always_inline __u64 cgroup_id_of(const struct cgroup *cgrp, const int hook)
{
	if (!cgrp)
		return 1;
	/* Not on 5.10, whose tagged u64 gives a cgroup pointer the verifier cannot follow. */
	if (hook == HOOK_TP_BTF && bpf_core_field_exists(((struct sock *)0)->sk_cgrp_data.cgroup))
		return cgrp->kn->id;
	return BPF_CORE_READ(cgrp, kn, id);
}

static __always_inline __u32 sk_netns(const struct sock *sk, const int hook)
{
	if (hook == HOOK_TP_BTF)
		return sk->__sk_common.skc_net.net->ns.inum;
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* The id of cgrp's ancestor at `level` (cgrp's own at its own level); 0 if unreadable. */
static __always_inline __u64 cgroup_ancestor_id(const struct cgroup *cgrp, __u32 level)
{
	__u64 id = 0;

	if (bpf_core_field_exists(cgrp->ancestors)) {
		struct cgroup *ancestor = NULL;

		bpf_core_read(&ancestor, sizeof(ancestor), &cgrp->ancestors[level]);
		return ancestor ? BPF_CORE_READ(ancestor, kn, id) : 0;
	}
	bpf_core_read(&id, sizeof(id), &((const struct cgroup___old *)cgrp)->ancestor_ids[level]);
	return id;
}

/* The id of cgrp's parent (NULL: the root): its ancestor one level up, which outlives it
 * (a container's cgroup and its pod's); the root's own id at level 0, and cgrp's own where
 * the ancestor cannot be read. */
static __always_inline __u64 cgroup_parent_id(const struct cgroup *cgrp, const int hook)
{
	__u64 id = 0;
	int level;

	if (!cgrp)
		return 1;
	level = BPF_CORE_READ(cgrp, level);
	if (level > 0)
		id = cgroup_ancestor_id(cgrp, level - 1);
	return id ? id : cgroup_id_of(cgrp, hook);
}

/* Whether cgrp (NULL: the root) is a member of the cgroup set or below one: for each level
 * a member sits at, up to cgrp's own, one ancestor read and one hash lookup. */
static __always_inline int cgroup_in_set(const struct cgroup *cgrp)
{
	__u32 zero = 0, level, at;
	__u64 *levels, mask, id = 1;

	levels = bpf_map_lookup_elem(&cgroup_set_levels, &zero);
	if (!levels)
		return 0;
	mask = *levels;
	if (!cgrp)
		return (mask & 1) && bpf_map_lookup_elem(&cgroup_set, &id);
	level = BPF_CORE_READ(cgrp, level);
	for (at = 0; at < CGROUP_SET_LEVELS && at <= level; at++) {
		if (!(mask >> at))
			return 0;
		if (!((mask >> at) & 1))
			continue;
		id = cgroup_ancestor_id(cgrp, at);
		if (bpf_map_lookup_elem(&cgroup_set, &id))
			return 1;
	}
	return 0;
}

/* Applies the -c/--netns filter of `c` to sk; when it passes and c->record is set, fills
 * *cgroup_id and *netns for the record. */
static __always_inline int sk_in_container(const struct sock *sk,
					   const volatile struct container_settings *c,
					   __u64 *cgroup_id, __u32 *netns, const int hook)
{
	struct cgroup *cgrp = NULL;

	if (c->netns || c->record) {
		*netns = sk_netns(sk, hook);
		if (c->netns && *netns != c->netns)
			return 0;
	}
	if (c->filter_cgroups || c->record) {
		cgrp = sk_cgroup(sk, hook);
		if (c->filter_cgroups && !cgroup_in_set(cgrp))
			return 0;
		*cgroup_id = cgroup_id_of(cgrp, hook);
	}
	return 1;
}

/* Fills *cgroup_id and *netns of sk where c->record asks for them, filtering nothing: for a
 * record of a socket that passed sk_in_container() earlier (the set may have changed since). */
static __always_inline void sk_container_record(const struct sock *sk,
						const volatile struct container_settings *c,
						__u64 *cgroup_id, __u32 *netns, const int hook)
{
	if (!c->record)
		return;
	*netns = sk_netns(sk, hook);
	*cgroup_id = cgroup_id_of(sk_cgroup(sk, hook), hook);
}

#endif
