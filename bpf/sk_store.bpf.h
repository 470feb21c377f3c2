/* Per-socket state: one store per tool, and one way in. A handler asks for a socket's value
 * (sk_store_get) and gives it back when done with the socket (sk_store_release); where the
 * value lives follows the program's hook (bpf/hook.bpf.h), a compile-time constant, so each
 * program keeps only its own store's code:
 * - tp_btf: the slot table first (bpf/slots.bpf.h: no allocation per socket), socket storage
 *   for a socket whose bucket is full. The kernel refuses these programs before Linux 5.12
 *   (socket storage in tracing programs came in 5.11, compare-and-swap in 5.12); the tool
 *   then runs its raw_tp programs.
 * - raw_tp: a fixed hash table by socket address; a socket it has no room for is counted
 *   (table_full) and has no state.
 * User space sizes what the loaded hook does not use to one entry (src/sk_store.rs). */
#ifndef TCPTOOLS_SK_STORE_BPF_H
#define TCPTOOLS_SK_STORE_BPF_H

#include "counter.bpf.h"
#include "hook.bpf.h"
#include "sock.bpf.h"
#include "slots.bpf.h"

/* Sockets the fixed table had no room for: their next change has no known start. Reported
 * like lost events. */
PERCPU_COUNTER(table_full);

/* The store `name` of value_type per socket: maps name_slots and name_values (the slot
 * table), name_storage (socket storage; BPF_F_NO_PREALLOC | storage_flags: BPF_F_CLONE gives
 * an accepted socket its listener's value) and name_table (the fixed table, table_size
 * sockets). A new value reads as zeroes (or, cloned, as its listener's). */
#define SK_STORE(name, value_type, table_size, storage_flags)                           \
	SLOT_TABLE(name##_slots);                                                       \
	SLOT_VALUES(name##_values, value_type);                                         \
	struct {                                                                        \
		__uint(type, BPF_MAP_TYPE_SK_STORAGE);                                  \
		__uint(map_flags, BPF_F_NO_PREALLOC | (storage_flags));                 \
		__type(key, int);                                                       \
		__type(value, value_type);                                              \
	} name##_storage SEC(".maps");                                                  \
	struct {                                                                        \
		__uint(type, BPF_MAP_TYPE_HASH);                                        \
		__uint(max_entries, table_size);                                        \
		__type(key, __u64);                                                     \
		__type(value, value_type);                                              \
	} name##_table SEC(".maps");                                                    \
	static const value_type name##_zero = {0}

/* Where a socket's value was found, for sk_store_release(). */
struct sk_ref {
	struct slot_ref slot; /* slot.held: in the slot table */
};

/* The fixed table's value of sk; with `create`, a zeroed one where it has none. */
static __always_inline void *sk_table_get(void *table, const void *zero, const struct sock *sk,
					  int create)
{
	__u64 skaddr = (__u64)sk;
	void *value;

	if (!create)
		return bpf_map_lookup_elem(table, &skaddr);
	value = lookup_or_init(table, &skaddr, zero);
	if (!value)
		counter_add(&table_full);
	return value;
}

/* sk's value in a tp_btf program: in its slot, else in socket storage; with `create`, a
 * free slot for a socket that has neither (zeroed: it holds what its last socket left),
 * or storage where its bucket is full. */
static __always_inline void *sk_slot_get(void *slots, void *values, void *storage,
					 __u32 size, const struct sock *sk, int create,
					 struct sk_ref *ref)
{
	void *value;

	if (slot_find(slots, slot_key(sk, (const void *)&slot_bucket_bits), &ref->slot))
		return bpf_map_lookup_elem(values, &ref->slot.index);
	value = bpf_sk_storage_get(storage, (struct sock *)sk, NULL, 0);
	if (value || !create)
		return value;
	if (!slot_claim(&ref->slot))
		return bpf_sk_storage_get(storage, (struct sock *)sk, NULL,
					  BPF_SK_STORAGE_GET_F_CREATE);
	value = bpf_map_lookup_elem(values, &ref->slot.index);
	if (value)
		__builtin_memset(value, 0, size);
	return value;
}

/* The value of sk in store `store`, created (zeroed) with `create` where sk has none; NULL
 * when it has none and none was created (no room). `ref` is for sk_store_release(). */
#define sk_store_get(store, sk, hook, create, ref)                                      \
	((hook) == HOOK_TP_BTF                                                          \
		 ? sk_slot_get(&store##_slots, &store##_values, &store##_storage,       \
			       sizeof(store##_zero), sk, create, ref)                   \
		 : sk_table_get(&store##_table, &store##_zero, sk, create))

static __always_inline void sk_release(void *storage, void *table, const struct sock *sk,
				       const int hook, const struct sk_ref *ref)
{
	__u64 skaddr = (__u64)sk;

	if (hook != HOOK_TP_BTF)
		bpf_map_delete_elem(table, &skaddr);
	else if (ref->slot.held)
		slot_free(&ref->slot);
	else
		bpf_sk_storage_delete(storage, (struct sock *)sk);
}

/* Forgets sk's value, which sk_store_get() found (`ref`): its slot is freed, its storage or
 * table entry deleted. A socket seen again starts anew. */
#define sk_store_release(store, sk, hook, ref)                                          \
	sk_release(&store##_storage, &store##_table, sk, hook, ref)

#endif
