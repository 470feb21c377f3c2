/* The first store of bpf/sk_store.bpf.h, its private part: a fixed, set-associative table
 * of socket keys in an array map, whose lookups the verifier inlines. Socket storage costs an allocation, a
 * lock and a free per socket (measured: about 330 ns a socket here, most of a program's
 * run), a hash map the same; a socket finds its slot here with one multiply and a scan of
 * one bucket of SLOT_WAYS keys in two cache lines. A slot is claimed with a
 * compare-and-swap, so CPUs and a nested catcher never take the same one, and given back
 * when the caller is done with the socket (it closed, its connect was answered). What
 * does not fit (a full bucket) goes to socket storage: nothing is bounded by the table.
 * tp_btf programs only: compare-and-swap came to the verifier in Linux 5.12.
 *
 * The table holds keys only. Its values are in an array map beside it, indexed by the
 * slot's index: SLOT_VALUES(name, type). */
#ifndef TCPTOOLS_SLOTS_BPF_H
#define TCPTOOLS_SLOTS_BPF_H

#define SLOT_WAYS 8

/* log2 of the table's buckets; user space sets it before load and sizes both maps to
 * match: 2^bits buckets, 2^bits * SLOT_WAYS values (src/sk_store.rs). 0: no table, every
 * socket in socket storage. */
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
	struct slot_bucket *b = NULL;
	__u32 bucket = 0;
	int way;

	if (slot_bucket_bits) {
		/* Socket addresses share their low bits (slab objects): a multiplicative hash
		 * takes the well-mixed high bits of the product. */
		bucket = (key * 0x9E3779B97F4A7C15ULL) >> (64 - slot_bucket_bits);
		b = bpf_map_lookup_elem(table, &bucket);
	}
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

#endif
