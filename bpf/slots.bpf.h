/* A fast home for per-socket state: a fixed, set-associative table of socket keys in an
 * array map, whose lookups the verifier inlines. Socket storage costs an allocation, a
 * lock and a free per socket (measured: about 330 ns a socket here, most of a program's
 * run), a hash map the same; a socket finds its slot here with one multiply and a scan of
 * one bucket of SLOT_WAYS keys in two cache lines. A slot is claimed with a
 * compare-and-swap, so CPUs and a nested catcher never take the same one, and given back
 * when the caller is done with the socket (it closed, its connect was answered). What
 * does not fit (a full bucket) is the caller's to keep elsewhere, in socket storage:
 * nothing is bounded by the table. Used with socket storage only: Linux 5.11 has storage
 * but not compare-and-swap (5.12), and its verifier refuses the program, which then loads
 * without either (src/attach.rs).
 *
 * The table holds keys only. A caller keeps its values in an array map beside it, indexed
 * by the slot's index: SLOT_VALUES(name, type); slot_value() finds a socket's value in
 * either place. */
#ifndef TCPTOOLS_SLOTS_BPF_H
#define TCPTOOLS_SLOTS_BPF_H

#define SLOT_WAYS 8

/* log2 of the table's buckets, at least 1; user space sets it before load and sizes both
 * maps to match: 2^bits buckets, 2^bits * SLOT_WAYS values (src/attach.rs). */
const volatile __u32 slot_bucket_bits = 1;

/* 0: a free way. */
struct slot_bucket {
	__u64 keys[SLOT_WAYS];
};

#define SLOT_TABLE(name)                                                                 \
	struct {                                                                         \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                        \
		__uint(max_entries, 2);                                                  \
		__type(key, __u32);                                                      \
		__type(value, struct slot_bucket);                                       \
	} name SEC(".maps")

#define SLOT_VALUES(name, value_type)                                                    \
	struct {                                                                         \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                        \
		__uint(max_entries, 2 * SLOT_WAYS);                                      \
		__type(key, __u32);                                                      \
		__type(value, value_type);                                               \
	} name SEC(".maps")

/* Where a socket's key is, or would go. */
struct slot_ref {
	struct slot_bucket *bucket;
	__u64 key;
	__u32 index; /* into the values: bucket * SLOT_WAYS + way */
	int held;    /* the socket has the slot at index (found or claimed) */
};

/* A socket's key: its address as a number, never 0. A BPF program may subtract pointers
 * (the loader holds CAP_PERFMON) but not turn one into a number: the distance from a fixed
 * address, `base` (any global of the program), is as unique. */
static __always_inline __u64 slot_key(const struct sock *sk, const void *base)
{
	return (__u64)sk - (__u64)base;
}

/* Looks sk's key up in its bucket: true and ref->index set when it has a slot. Fills
 * ref->bucket and ref->key for slot_claim() either way (bucket NULL: no table). */
static __always_inline int slot_find(void *table, __u64 key, struct slot_ref *ref)
{
	/* Socket addresses share their low bits (slab objects): a multiplicative hash takes
	 * the well-mixed high bits of the product. */
	__u32 bucket = (key * 0x9E3779B97F4A7C15ULL) >> (64 - slot_bucket_bits);
	struct slot_bucket *b = bpf_map_lookup_elem(table, &bucket);
	int way;

	ref->bucket = b;
	ref->key = key;
	ref->index = bucket * SLOT_WAYS;
	ref->held = 0;
	if (!b)
		return 0;
#pragma unroll
	for (way = 0; way < SLOT_WAYS; way++) {
		if (b->keys[way] == key) {
			ref->index += way;
			ref->held = 1;
			return 1;
		}
	}
	return 0;
}

/* Takes a free way of the bucket slot_find() looked in: true and ref->index set, false
 * when the bucket is full. */
static __always_inline int slot_claim(struct slot_ref *ref)
{
	struct slot_bucket *b = ref->bucket;
	int way;

	if (!b)
		return 0;
#pragma unroll
	for (way = 0; way < SLOT_WAYS; way++) {
		if (b->keys[way] == 0 && __sync_val_compare_and_swap(&b->keys[way], 0, ref->key) == 0) {
			ref->index += way;
			ref->held = 1;
			return 1;
		}
	}
	return 0;
}

/* Gives back the slot the socket holds, if it holds one, once its value was read. */
static __always_inline void slot_free(const struct slot_ref *ref)
{
	if (ref->bucket && ref->held)
		ref->bucket->keys[ref->index % SLOT_WAYS] = 0;
}

/* A socket's value: in its slot of `table` (the value in `values`), else in the socket
 * storage `storage` (where a socket goes whose bucket was full). With `create`, a socket
 * that has neither gets a free slot, or storage when its bucket is full, and *fresh says
 * so: a claimed slot's value still holds what its last socket left. NULL: none (without
 * create), or no room. ref->held: the value is in a slot, for slot_free(). */
static __always_inline void *slot_value(void *table, void *values, void *storage,
					const struct sock *sk, const void *base, int create,
					struct slot_ref *ref, int *fresh)
{
	void *value;

	*fresh = 0;
	if (slot_find(table, slot_key(sk, base), ref))
		return bpf_map_lookup_elem(values, &ref->index);
	value = bpf_sk_storage_get(storage, (struct sock *)sk, NULL, 0);
	if (value || !create)
		return value;
	*fresh = 1;
	if (slot_claim(ref))
		return bpf_map_lookup_elem(values, &ref->index);
	return bpf_sk_storage_get(storage, (struct sock *)sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
}

#endif
