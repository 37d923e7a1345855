/* ktable.h — an open-addressing map from a 64-bit key to a tally.
 *
 * Every windowed and per-dimension aggregate of the engine is a set of
 * tallies (orders, quantity, amount) keyed by a small integer: a minute, a
 * (minute, category) pair, a brand id... One flat table type serves them all,
 * in the workers' shards (per-tick deltas) and in the merger (cumulative).
 *
 * Not thread-safe: a table is owned by one thread at a time (a shard's
 * tables move with the shard from a worker to the merger and back).
 * Out of memory aborts: these tables live on the hot path.
 */
#ifndef OP_KTABLE_H
#define OP_KTABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct op_tally {
    int64_t orders;
    int64_t quantity;
    int64_t amount; /* cents */
} op_tally_t;

typedef struct op_ktable {
    uint64_t *keys; /* key + 1; 0 marks an empty slot */
    op_tally_t *vals;
    uint32_t cap; /* power of two, 1 << (64 - shift) */
    uint32_t count;
    uint32_t shift; /* a key's home slot: its Fibonacci hash's top bits */
} op_ktable_t;

/* Keys combining a time bucket and a dimension id. */
#define OP_KTABLE_DIM_BITS 24
static inline uint64_t op_ktable_pair(uint64_t bucket, uint32_t dim)
{
    return (bucket << OP_KTABLE_DIM_BITS) | dim;
}
static inline uint64_t op_ktable_pair_bucket(uint64_t key)
{
    return key >> OP_KTABLE_DIM_BITS;
}
static inline uint32_t op_ktable_pair_dim(uint64_t key)
{
    return (uint32_t)(key & ((1u << OP_KTABLE_DIM_BITS) - 1));
}

static inline void op_tally_add(op_tally_t *dst, const op_tally_t *src)
{
    dst->orders += src->orders;
    dst->quantity += src->quantity;
    dst->amount += src->amount;
}

static inline void op_tally_sub(op_tally_t *dst, const op_tally_t *src)
{
    dst->orders -= src->orders;
    dst->quantity -= src->quantity;
    dst->amount -= src->amount;
}

void op_ktable_init(op_ktable_t *t);
void op_ktable_dispose(op_ktable_t *t);

/* The tally of key, inserted as zeros if absent. key must be < UINT64_MAX.
 * The pointer is valid until the next insertion. */
op_tally_t *op_ktable_upsert_slow(op_ktable_t *t, uint64_t key);

static inline uint32_t op_ktable_home(const op_ktable_t *t, uint64_t stored)
{
    return (uint32_t)((stored * 0x9E3779B97F4A7C15ULL) >> t->shift);
}

/* Inline for the hot path: a key found in its home slot (the common case
 * for the handful of keys a shard holds) costs a multiply and a compare. */
static inline op_tally_t *op_ktable_upsert(op_ktable_t *t, uint64_t key)
{
    if (t->cap) {
        uint32_t i = op_ktable_home(t, key + 1);
        if (t->keys[i] == key + 1)
            return &t->vals[i];
    }
    return op_ktable_upsert_slow(t, key);
}

/* Room for n more keys without growing (a merge that knows how many it
 * brings grows once, not once per doubling). */
void op_ktable_reserve(op_ktable_t *t, uint32_t n);

/* Asks for key's home slot ahead of its upsert: a walk over many keys that
 * land all over a big table overlaps its misses instead of waiting on each. */
static inline void op_ktable_prefetch(const op_ktable_t *t, uint64_t key)
{
    if (t->cap) {
        uint32_t i = op_ktable_home(t, key + 1);
        __builtin_prefetch(&t->keys[i], 1);
        __builtin_prefetch(&t->vals[i], 1);
    }
}

/* The tally of key, or NULL. */
op_tally_t *op_ktable_find(const op_ktable_t *t, uint64_t key);

/* Removes every entry, keeping the allocation. */
void op_ktable_clear(op_ktable_t *t);

/* Adds every tally of src into dst. */
void op_ktable_add(op_ktable_t *dst, const op_ktable_t *src);

/* Removes the entries whose key is below min_key (a rebuild; used by the
 * merger to drop windows older than the retention). */
void op_ktable_drop_below(op_ktable_t *t, uint64_t min_key);

/* Iteration: for (uint32_t i = 0; i < t->cap; i++) if (op_ktable_used(t, i)) ... */
static inline int op_ktable_used(const op_ktable_t *t, uint32_t i)
{
    return t->keys[i] != 0;
}
static inline uint64_t op_ktable_key(const op_ktable_t *t, uint32_t i)
{
    return t->keys[i] - 1;
}

#endif
