/* users.h — a map from user name to the user's amount and order count.
 *
 * Used twice: a worker's shard keeps the users touched in the current tick
 * (deltas), and the merger keeps every user ever seen (cumulative totals,
 * for the exact top-K). There can be millions of users, and at high
 * cardinality every lookup is a cache miss, so the layout is built around
 * memory accesses:
 *
 *   index   4-byte slots: the entry number and, in the bits the entry
 *           number does not need, a fingerprint of the name's hash. A
 *           lookup reads one cache line of the index and touches an entry
 *           only when the fingerprint matches (false matches ~1 in 2^11 at
 *           a million users), so a new user costs no entry load at all.
 *   entries 32 bytes, dense, in insertion order: amount, orders, the
 *           32-bit hash and the name inline when it has at most 15 bytes
 *           (nearly every name; longer ones keep their first 11 bytes inline
 *           and the rest in an arena). A found user is one line.
 *
 * About 38-45 bytes per user in all (32 + the index at 5/8 load at most).
 * Large arrays come straight from mmap, with huge pages where the kernel
 * allows them (fewer TLB misses on random lookups), grow by mremap (no
 * copy) and are returned to the kernel at once when freed.
 *
 * Not thread-safe: owned by one thread at a time (a shard's table moves with
 * the shard). Out of memory aborts (hot path).
 */
#ifndef OP_USERS_H
#define OP_USERS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/hash.h"

#define OP_USERS_MAX_NAME    255
#define OP_USERS_INLINE      15 /* names up to this long live in the entry */
#define OP_USERS_MAX_PART_LG 5  /* a table is cut into at most 2^5 parts (below) */

/* An entry. Read and write it through the accessors below: the layout is
 * the table's business. */
typedef struct op_user {
    int64_t amount; /* cents */
    uint32_t orders;
    uint32_t hash; /* the name's 32-bit hash (op_users_hash_of) */
    uint8_t len;
    /* len <= OP_USERS_INLINE: the name. Longer: its first 11 bytes, then
     * the 4-byte offset of the whole name in the arena. */
    char name[OP_USERS_INLINE];
} op_user_t;

typedef struct op_users {
    uint32_t *index; /* cap slots: 0 = empty, else fingerprint << bits | (entry + 1) */
    uint32_t cap;    /* a power of two, 1 << bits */
    uint32_t bits;
    op_user_t *ent; /* dense, in insertion order */
    /* Each entry's hash >> 24, beside the entries: what cuts a table by
     * part (below) reads, 1 byte a user rather than a 32-byte entry's
     * line (a pass over 0.8 M users' entries took 2-5 ms of a run's tail). */
    uint8_t *top;
    uint32_t count, ent_cap;
    char *arena; /* names longer than OP_USERS_INLINE */
    size_t arena_len, arena_cap;
} op_users_t;

void op_users_init(op_users_t *u);
void op_users_dispose(op_users_t *u);
void op_users_clear(op_users_t *u);

/* The hash op_users_upsert and op_users_find take for a name. */
static inline uint64_t op_users_hash(const char *name, size_t len)
{
    return op_hash_bytes(name, len);
}

/* The entry of name (len 1..OP_USERS_MAX_NAME, hash from op_users_hash or
 * op_users_hash_of), inserted with zeros if absent. Returns the entry
 * number; entry pointers are invalidated by insertions, numbers are not. */
static inline uint32_t op_users_upsert(op_users_t *u, const char *name, size_t len, uint64_t hash);

/* op_users_upsert without the inlined shortcut. */
uint32_t op_users_upsert_slow(op_users_t *u, const char *name, size_t len, uint64_t hash);

/* The entry number of name, or UINT32_MAX. */
uint32_t op_users_find(const op_users_t *u, const char *name, size_t len, uint64_t hash);

/* The slot a hash starts probing at. Only the hash's top 32 bits count:
 * they are what an entry keeps. */
static inline uint32_t op_users_home(const op_users_t *u, uint64_t hash)
{
    return (uint32_t)(hash >> 32) >> (32 - u->bits);
}

/* The fingerprint a slot keeps above the entry number: the bits of the
 * hash's top 32 that the home slot does not already say. */
static inline uint32_t op_users_fingerprint(const op_users_t *u, uint32_t h32)
{
    return h32 & ((1u << (32 - u->bits)) - 1);
}

/* 1 when one more user would take the index past 5/8 full: the table must
 * grow first. */
static inline int op_users_must_grow(const op_users_t *u)
{
    return (uint64_t)(u->count + 1) * 8 > (uint64_t)u->cap * 5;
}

/* GCC 12 judges a function whose only effect is a prefetch to be pure and
 * deletes calls to it that it has not inlined yet, prefetch and all, even
 * several calls up (seen in the object code). The empty volatile asm is an
 * effect it has to keep. */
#define OP_USERS_PREFETCH(p)                                                                       \
    do {                                                                                           \
        __builtin_prefetch(p);                                                                     \
        __asm__ volatile("" ::"r"(p));                                                             \
    } while (0)

/* Starts loading the index line of hash into the cache, ahead of an
 * upsert a little later (a table of millions of users does not fit in any
 * cache). */
static inline void op_users_prefetch(const op_users_t *u, uint64_t hash)
{
    if (u->cap)
        OP_USERS_PREFETCH(&u->index[op_users_home(u, hash)]);
}

/* Starts loading entry e (of a table read in an order of its own, such as
 * a part's list). */
static inline void op_users_prefetch_user(const op_users_t *u, uint32_t e)
{
    OP_USERS_PREFETCH(&u->ent[e]);
}

/* The second step, once the index line has arrived: starts loading the
 * entry of each of the OP_USERS_PREFETCH_SLOTS slots from the hash's home
 * whose fingerprint matches (the upsert decides which, if any, is the
 * user's). Not only the home slot: a user pushed a slot or two along by
 * linear probing -- a fifth of the found ones in a merge at 1.26 M users --
 * was a full DRAM miss on the lookup's path (the lookups of a final merge
 * 32.5 -> 27.0 ns a user). */
#define OP_USERS_PREFETCH_SLOTS 4

/* op_users_prefetch_entry over the slots from home below end (a table with
 * slots). */
static inline void op_users_prefetch_entry_below(const op_users_t *u, uint64_t hash, uint32_t end)
{
    uint32_t h32 = (uint32_t)(hash >> 32), bits = u->bits, mask = u->cap - 1;
    uint32_t fp = op_users_fingerprint(u, h32), home = op_users_home(u, hash);
    for (uint32_t i = home; i < home + OP_USERS_PREFETCH_SLOTS && i < end; i++) {
        uint32_t slot = u->index[i];
        /* The fingerprint first: it rarely matches, so the branch is
         * predicted; an empty slot (half of them) is not. */
        if (slot >> bits == fp && slot)
            OP_USERS_PREFETCH(&u->ent[(slot & mask) - 1]);
    }
}

static inline void op_users_prefetch_entry(const op_users_t *u, uint64_t hash)
{
    if (u->cap)
        op_users_prefetch_entry_below(u, hash, u->cap);
}

/* ---- an entry's fields ------------------------------------------------------- */

static inline int64_t op_users_amount(const op_users_t *u, uint32_t e)
{
    return u->ent[e].amount;
}

static inline int64_t op_users_orders(const op_users_t *u, uint32_t e)
{
    return u->ent[e].orders;
}

/* Adds to entry e's amount (cents) and order count. */
static inline void op_users_add(op_users_t *u, uint32_t e, int64_t amount, int64_t orders)
{
    u->ent[e].amount += amount;
    u->ent[e].orders += (uint32_t)orders;
}

/* The hash of entry e's name, as op_users_upsert/find take it: moving a
 * user from one table to another needs no second hash of the name. */
static inline uint64_t op_users_hash_of(const op_users_t *u, uint32_t e)
{
    return (uint64_t)u->ent[e].hash << 32;
}

static inline const char *op_users_name(const op_users_t *u, uint32_t e, size_t *len)
{
    const op_user_t *x = &u->ent[e];
    *len = x->len;
    if (x->len <= OP_USERS_INLINE)
        return x->name;
    uint32_t off;
    __builtin_memcpy(&off, x->name + OP_USERS_INLINE - 4, 4);
    return u->arena + off;
}

/* Inlined: a short name found in its home slot (the common case) is two
 * loads and a few compares; everything else goes to op_users_upsert_slow. */
static inline uint32_t op_users_upsert(op_users_t *u, const char *name, size_t len, uint64_t hash)
{
    if (u->cap && len <= OP_USERS_INLINE) {
        uint32_t h32 = (uint32_t)(hash >> 32), mask = u->cap - 1;
        uint32_t slot = u->index[op_users_home(u, hash)];
        if (slot >> u->bits == op_users_fingerprint(u, h32) && slot) {
            uint32_t e = (slot & mask) - 1;
            const op_user_t *x = &u->ent[e];
            if (x->hash == h32 && x->len == len && op_hash_same(x->name, name, len))
                return e;
        }
    }
    return op_users_upsert_slow(u, name, len, hash);
}

/* Makes the empty table dst a copy of src: the same entries with the same
 * numbers (the index layout depends only on the hashes and the size, so
 * the arrays are copied as they are, not rebuilt). */
void op_users_copy(op_users_t *dst, const op_users_t *src);

/* Bytes held, for the memory accounting in stats and the benchmarks. */
size_t op_users_bytes(const op_users_t *u);

/* ---- merging into a table on several threads (state.c) -----------------------
 *
 * A table is cut by hash into 2^lg parts (lg 0..OP_USERS_MAX_PART_LG):
 * part p holds the users whose hash's top lg bits are p, and their home
 * slots are the p-th 2^-lg of the index, since a home slot is the hash's
 * top bits too. A merge of distinct names (another table's) can then run
 * its parts on several threads, each merging its users with
 * op_users_merge_part. The new users take entry numbers the caller hands
 * out -- interleaved by part, so that the numbers left unused when the
 * parts end unevenly are few and at the end -- and once the parts are done
 * the caller moves the last ones into those gaps (op_users_move) and sets
 * the count. A probe that would leave its part's slots stops there: the
 * caller merges that user alone afterwards.
 *
 * Threads: calls for different parts of one table may run at once -- each
 * reads and writes only its part's slots, the entries they point to, and
 * the entry numbers (and their top bytes) it was given -- and nothing else
 * may use the table meanwhile. */
#define OP_USERS_UNSURE UINT32_MAX /* the probe reached the end of the part */

static inline uint32_t op_users_part_of(uint64_t hash, int lg)
{
    return lg ? (uint32_t)(hash >> 32) >> (32 - lg) : 0;
}

/* What the table's top bytes keep of an entry's 32-bit hash: enough for
 * a part (lg <= 8). */
static inline uint8_t op_users_top_byte(uint32_t h32)
{
    return (uint8_t)(h32 >> 24);
}

/* The part of entry e (op_users_part_of its hash), from the table's top
 * bytes: no read of the entry. */
static inline uint32_t op_users_part_of_entry(const op_users_t *u, uint32_t e, int lg)
{
    return lg ? (uint32_t)u->top[e] >> (8 - lg) : 0;
}

/* The first slot past the part of 2^lg that slot i is in. */
static inline uint32_t op_users_part_end(const op_users_t *u, int lg, uint32_t i)
{
    uint32_t shift = u->bits - (uint32_t)lg;
    return ((i >> shift) + 1) << shift;
}

/* op_users_prefetch_entry within the slots of hash's part: a part's thread
 * reads no slot another one writes. */
static inline void op_users_prefetch_entry_part(const op_users_t *u, int lg, uint64_t hash)
{
    op_users_prefetch_entry_below(u, hash, op_users_part_end(u, lg, op_users_home(u, hash)));
}

/* Makes room for entry numbers below top, without counting them in: the
 * entries exist and a slot can hold any of them. Serial. */
void op_users_reserve_parts(op_users_t *u, uint32_t top);

/* The entry in u of src's entry d, whose name is short (at most
 * OP_USERS_INLINE bytes), looking only at the slots of its part. If absent,
 * src's entry -- name and figures -- is copied whole into entry fresh, which
 * takes the first free slot from its home, and fresh is returned (its
 * figures are then in already; a found entry's are the caller's to add);
 * OP_USERS_UNSURE if the probe reached the end of the part first. Inlined:
 * it runs once per user of a big merge. */
static inline uint32_t op_users_merge_part(op_users_t *u, int lg, const op_users_t *src, uint32_t d,
                                           uint32_t fresh)
{
    const op_user_t *x = &src->ent[d];
    uint32_t h32 = x->hash, bits = u->bits, mask = u->cap - 1;
    uint32_t fp = op_users_fingerprint(u, h32), home = op_users_home(u, op_users_hash_of(src, d));
    for (uint32_t i = home, end = op_users_part_end(u, lg, home); i < end; i++) {
        uint32_t slot = u->index[i];
        if (!slot) {
            u->ent[fresh] = *x;
            u->top[fresh] = op_users_top_byte(h32);
            u->index[i] = fp << bits | (fresh + 1);
            return fresh;
        }
        /* Only a short stored name has a short name's length. */
        const op_user_t *y = &u->ent[(slot & mask) - 1];
        if (slot >> bits == fp && y->hash == h32 && y->len == x->len &&
            op_hash_same(y->name, x->name, x->len))
            return (slot & mask) - 1;
    }
    return OP_USERS_UNSURE;
}

/* Moves entry from (in the table) to the unused number to, with its slot;
 * from becomes unused. Serial. */
void op_users_move(op_users_t *u, uint32_t from, uint32_t to);

/* After the parts and the moves: the entries are 0 .. count - 1. Serial. */
void op_users_set_count(op_users_t *u, uint32_t count);

/* ---- merging one table into another, on one thread ----------------------------- */

/* Adds src's entry d -- its name's amount and orders -- into u; returns
 * its entry in u. A new short name takes the parts' path with one part: the
 * entry is copied whole, with no second probe and no copy of the name by
 * its length (op_users_upsert_slow does both); anything else (a long name,
 * a probe that reaches the index's end, a table about to grow) goes the
 * usual way. */
static inline uint32_t op_users_add_from(op_users_t *u, const op_users_t *src, uint32_t d)
{
    size_t len;
    const char *name = op_users_name(src, d, &len);
    if (len <= OP_USERS_INLINE && u->count < u->ent_cap && !op_users_must_grow(u)) {
        uint32_t e = op_users_merge_part(u, 0, src, d, u->count);
        if (e == u->count) {
            u->count++;
            return e;
        }
        if (e != OP_USERS_UNSURE) {
            op_users_add(u, e, op_users_amount(src, d), op_users_orders(src, d));
            return e;
        }
    }
    uint32_t e = op_users_upsert_slow(u, name, len, op_users_hash_of(src, d));
    op_users_add(u, e, op_users_amount(src, d), op_users_orders(src, d));
    return e;
}

#endif
