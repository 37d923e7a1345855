/* intern.h — small dense ids for dimension names (gender, category, brand).
 *
 * Shards index their per-dimension aggregates by id, so each name must map
 * to the same id in every worker. The mapping lives in one global lock-free
 * RCU hash table (liburcu-cds cds_lfht); each worker keeps a private cache in
 * front of it, so the global table is touched only the first time a worker
 * meets a name. Ids never change and names are never freed while the
 * dictionary lives.
 *
 * Thread safety:
 *   op_intern_create/destroy   main thread, no other user
 *   op_intern_cache_id         the cache's owner thread, which must be
 *                              registered with rcu_register_thread()
 *   op_intern_name, _count     any thread; a name is published (release)
 *                              before its id can be returned by any lookup
 */
#ifndef OP_INTERN_H
#define OP_INTERN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/hash.h"

typedef enum op_dim { OP_DIM_GENDER = 0, OP_DIM_CATEGORY, OP_DIM_BRAND, OP_DIM_COUNT } op_dim_t;

/* At most this many distinct names per dimension; a record bringing one more
 * is rejected ("too_many_names") rather than letting a hostile stream grow
 * every shard's arrays without bound. Fits OP_KTABLE_DIM_BITS. */
#define OP_INTERN_MAX_IDS (1u << 20)

typedef struct op_intern op_intern_t;

/* In front of the cache, per dimension, a tiny 2-way set-associative memo
 * keyed by the name's bytes themselves (length and two words: names of up
 * to 16 bytes, which is nearly all of them): a hit is one line read and
 * three compares, no hash of the name and no probe. The way just hit or
 * filled moves to the front. */
#define OP_INTERN_MEMO_SETS 64
typedef struct op_intern_memo {
    uint64_t w0, w1;
    uint32_t len; /* 0 = empty (names are never empty) */
    int32_t id;
} op_intern_memo_t;

/* A worker's private cache. Owner: one worker thread. */
typedef struct op_intern_cache {
    op_intern_t *dict;
    struct op_intern_slot *slots;
    uint32_t cap, count;
    op_intern_memo_t memo[OP_DIM_COUNT][OP_INTERN_MEMO_SETS][2];
} op_intern_cache_t;

int op_intern_create(op_intern_t **out);
void op_intern_destroy(op_intern_t *in);

void op_intern_cache_init(op_intern_cache_t *c, op_intern_t *in);
void op_intern_cache_dispose(op_intern_cache_t *c);

/* The id of (dim, name), creating it on first sight. Returns the id, or -1
 * when the dimension is full (OP_INTERN_MAX_IDS). */
int32_t op_intern_cache_lookup(op_intern_cache_t *c, op_dim_t dim, const char *name, size_t len);

__attribute__((always_inline)) static inline int32_t
op_intern_cache_id(op_intern_cache_t *c, op_dim_t dim, const char *name, size_t len)
{
    if (len - 1 >= 16)
        return op_intern_cache_lookup(c, dim, name, len);
    uint64_t w0 = op_hash_word(name, len), w1 = 0;
    if (len > 8)
        __builtin_memcpy(&w1, name + len - 8, 8);
    uint32_t set = (uint32_t)((((w0 ^ (w1 >> 1)) + len) * 0x9E3779B97F4A7C15ULL) >> 58);
    op_intern_memo_t *m = c->memo[dim][set];
    if (m[0].len == len && m[0].w0 == w0 && m[0].w1 == w1)
        return m[0].id;
    op_intern_memo_t hit;
    if (m[1].len == len && m[1].w0 == w0 && m[1].w1 == w1) {
        hit = m[1];
    } else {
        int32_t id = op_intern_cache_lookup(c, dim, name, len);
        if (id < 0)
            return id;
        hit = (op_intern_memo_t){.w0 = w0, .w1 = w1, .len = (uint32_t)len, .id = id};
    }
    m[1] = m[0];
    m[0] = hit;
    return hit.id;
}

/* The name of an id returned by a lookup (length in *len). */
const char *op_intern_name(const op_intern_t *in, op_dim_t dim, uint32_t id, size_t *len);

/* Ids handed out so far in dim: every id below is valid or a hole left by a
 * lost insertion race (op_intern_name returns NULL for a hole). */
uint32_t op_intern_count(const op_intern_t *in, op_dim_t dim);

#endif
