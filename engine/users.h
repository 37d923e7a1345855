/* users.h — a map from user name to the user's amount and order count.
 *
 * Used twice: a worker's shard keeps the users touched in the current tick
 * (deltas), and the merger keeps every user ever seen (cumulative totals,
 * for the exact top-K). There can be millions of users, so an entry is 24
 * bytes in a dense array, the hash index holds 4-byte entry numbers, and
 * names live back to back in one arena: about 60-70 bytes per user in all.
 *
 * Not thread-safe: owned by one thread at a time (a shard's table moves with
 * the shard). Out of memory aborts (hot path).
 */
#ifndef OP_USERS_H
#define OP_USERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct op_user {
    int64_t amount;    /* cents */
    uint32_t name_off; /* into the arena: one length byte, then the name */
    uint32_t hash;     /* low bits of the name's hash, to skip most compares */
    uint32_t orders;
    int32_t heap_pos; /* merger's top-K heap position, -1 when outside it */
} op_user_t;

typedef struct op_users {
    uint32_t *index; /* entry number + 1; 0 = empty slot */
    uint32_t cap;    /* slots, a power of two */
    op_user_t *ent;  /* dense, in insertion order */
    uint32_t count, ent_cap;
    char *arena;
    size_t arena_len, arena_cap;
} op_users_t;

#define OP_USERS_MAX_NAME 255

void op_users_init(op_users_t *u);
void op_users_dispose(op_users_t *u);
void op_users_clear(op_users_t *u);

/* The entry of name (len 1..OP_USERS_MAX_NAME, hash from op_hash_bytes),
 * inserted with zeros and heap_pos -1 if absent. Returns the entry number;
 * entry pointers are invalidated by insertions, numbers are not. */
uint32_t op_users_upsert(op_users_t *u, const char *name, size_t len, uint64_t hash);

/* Starts loading the index slot of hash into the cache, ahead of an upsert
 * a little later (the table of millions of users does not fit in cache). */
static inline void op_users_prefetch(const op_users_t *u, uint64_t hash)
{
    if (u->cap) {
        uint32_t h32 = (uint32_t)hash;
        uint32_t i = (uint32_t)(((uint64_t)h32 * 0x9e3779b97f4a7c15ULL) >> 32) & (u->cap - 1);
        __builtin_prefetch(&u->index[i]);
    }
}

/* The entry number of name, or UINT32_MAX. */
uint32_t op_users_find(const op_users_t *u, const char *name, size_t len, uint64_t hash);

static inline const char *op_users_name(const op_users_t *u, uint32_t e, size_t *len)
{
    const unsigned char *p = (const unsigned char *)u->arena + u->ent[e].name_off;
    *len = p[0];
    return (const char *)p + 1;
}

/* Bytes held, for the memory accounting in stats and the benchmarks. */
size_t op_users_bytes(const op_users_t *u);

#endif
