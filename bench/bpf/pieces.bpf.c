// SPDX-License-Identifier: GPL-2.0
/* The benchmarks' cost breakdown: one tp_btf program per piece of work the tools do on
 * inet_sock_set_state, each alone. Its ns/run over the floor's is what that piece costs. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "hist.bpf.h"
#include "container.bpf.h"
#include "slots.bpf.h"
#include "exporter.h"
#include "sock.bpf.h"

/* Keeps a piece's result alive without a store: a store to a global both CPUs write would
 * add a cache line's trips between them to every piece. */
#define KEEP(x) asm volatile("" : : "r"(x))

/* Never written: an input clang cannot fold. */
__u64 input;

struct rec120 { __u8 b[120]; };

struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 22); } rb_out SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 22); } rb_res SEC(".maps");
/* Never read: every output after the first few fails for want of room. */
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 12); } rb_full SEC(".maps");
/* One ring per CPU (this machine has 2), each with a lock and lines of its own. */
struct rb_cpu { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 21); };
struct rb_cpu rb_cpu0 SEC(".maps"), rb_cpu1 SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct rb_cpu);
} rb_cpus SEC(".maps") = { .values = { &rb_cpu0, &rb_cpu1 } };


struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct rec120);
} st SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} st8 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, __u64);
} hash SEC(".maps");

#define P(name) SEC("tp_btf/inet_sock_set_state") \
	int BPF_PROG(name, const struct sock *sk, const int oldstate, const int newstate)

P(p_empty) { return 0; }

P(p_ktime) { KEEP(bpf_ktime_get_ns()); return 0; }

P(p_pidtgid) { KEEP(bpf_get_current_pid_tgid()); return 0; }

P(p_comm)
{
	char c[16];
	bpf_get_current_comm(c, sizeof(c));
	KEEP(c[0]);
	return 0;
}

P(p_direct_fields)
{
	KEEP(BPF_CORE_READ_BITFIELD(sk, sk_protocol) + sk->__sk_common.skc_family +
		  sk->__sk_common.skc_dport + sk->__sk_common.skc_daddr + sk->__sk_common.skc_rcv_saddr);
	return 0;
}

P(p_probe_sport)
{
	__u16 port;
	bpf_core_read(&port, sizeof(port), &((const struct inet_sock *)sk)->inet_sport);
	KEEP(port);
	return 0;
}

P(p_storage120)
{
	struct rec120 *v = bpf_sk_storage_get(&st, (struct sock *)sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (v)
		v->b[0] = newstate;
	return 0;
}

P(p_storage8)
{
	__u64 *v = bpf_sk_storage_get(&st8, (struct sock *)sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (v)
		*v = newstate;
	return 0;
}

P(p_hash)
{
	__u64 key = (__u64)sk, one = 1, *v = bpf_map_lookup_elem(&hash, &key);
	if (newstate == 7)
		bpf_map_delete_elem(&hash, &key);
	else if (v)
		*v += 1;
	else
		bpf_map_update_elem(&hash, &key, &one, BPF_ANY);
	return 0;
}

P(p_percpu_add)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&pcpu, &zero);
	if (v)
		*v += 1;
	return 0;
}

P(p_percpu_atomic)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&pcpu, &zero);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

P(p_shared_atomic)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&arr, &zero);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

P(p_rb_output)
{
	struct rec120 r = {};
	r.b[0] = newstate;
	bpf_ringbuf_output(&rb_out, &r, sizeof(r), BPF_RB_NO_WAKEUP);
	return 0;
}

P(p_rb_full)
{
	struct rec120 r = {};
	r.b[0] = newstate;
	bpf_ringbuf_output(&rb_full, &r, sizeof(r), BPF_RB_NO_WAKEUP);
	return 0;
}

P(p_rb_percpu)
{
	struct rec120 r = {};
	__u32 cpu = bpf_get_smp_processor_id() & 1;
	void *rb = bpf_map_lookup_elem(&rb_cpus, &cpu);

	if (!rb)
		return 0;
	r.b[0] = newstate;
	bpf_ringbuf_output(rb, &r, sizeof(r), BPF_RB_NO_WAKEUP);
	return 0;
}

P(p_rb_reserve)
{
	struct rec120 *r = bpf_ringbuf_reserve(&rb_res, sizeof(*r), 0);
	if (!r)
		return 0;
	__builtin_memset(r, 0, sizeof(*r));
	r->b[0] = newstate;
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}

P(p_task_stack)
{
	__u64 off = (__u64)ctx - (__u64)bpf_get_current_task_btf();
	asm volatile("" : "+r"(off));
	KEEP(off + bpf_get_current_task() - (__u64)bpf_get_current_task_btf()->stack);
	return 0;
}


P(p_storage8_get)
{
	__u64 *v = bpf_sk_storage_get(&st8, (struct sock *)sk, NULL, 0);
	if (v)
		KEEP(*v);
	return 0;
}

P(p_div)
{
	KEEP((input + newstate) / 1000);
	return 0;
}

P(p_log2)
{
	KEEP(log2_u64(input + newstate));
	return 0;
}

P(p_task_stack2)
{
	struct task_struct *t = bpf_get_current_task_btf();
	__u64 off = (__u64)ctx - (__u64)t;
	asm volatile("" : "+r"(off));
	KEEP(off + bpf_get_current_task() - (__u64)t->stack);
	return 0;
}

P(p_cgroup)
{
	KEEP(cgroup_id_of(sk_cgroup(sk, HOOK_RAW_TP), HOOK_RAW_TP));
	return 0;
}

P(p_cgroup_btf)
{
	KEEP(cgroup_id_of(sk_cgroup(sk, HOOK_TP_BTF), HOOK_TP_BTF));
	return 0;
}

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

P(p_sport_cast)
{
	const struct inet_sock *inet = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct inet_sock));
	KEEP(inet->inet_sport);
	return 0;
}

P(p_sport_tcp_sock)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (tp)
		KEEP(tp->inet_conn.icsk_inet.inet_sport);
	return 0;
}

SLOT_TABLE(piece_slots);
SLOT_VALUES(piece_slot_values, __u64);

P(p_slot)
{
	struct slot_ref ref;
	__u64 *v;

	if (!slot_find(&piece_slots, slot_key(sk, &input), &ref)) {
		if (newstate == 7 || !slot_claim(&ref))
			return 0;
	} else if (newstate == 7) {
		slot_free(&ref);
		return 0;
	}
	v = bpf_map_lookup_elem(&piece_slot_values, &ref.index);
	if (v)
		*v = newstate;
	return 0;
}

/* The exporter's group entries (bpf/exporter.bpf.c, --group-by): a hash shared by the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct group_key);
	__type(value, struct group_state);
} piece_groups SEC(".maps");

static const struct group_state zero_group_state = {};

/* What --group-by adds to a state change once the group is known: the group's entry for
 * the state left (one group here, as the storm is one cgroup), found or made, and the
 * transition counted with an atomic add on a line both CPUs write. */
P(p_group_hash)
{
	struct group_key key = { .group = input + 1, .index = oldstate & (STATES - 1) };
	struct group_state *v = lookup_or_init(&piece_groups, &key, &zero_group_state);

	if (v)
		__sync_fetch_and_add(&v->to[newstate & (STATES - 1)], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
