/* users.c — name → (amount, orders) map, compact enough for millions of users.
 *
 * Linear probing over an index of 32-bit slots kept at most 5/8 full. A
 * slot holds the entry number in its low `bits` bits (entry numbers stay
 * below the slot count) and the low 32 - bits bits of the name's hash above
 * them; the home slot comes from the hash's top bits, so the fingerprint is
 * made of exactly the bits the position does not already say. Entries and
 * long names are appended to dense arrays, so growing the index rehashes
 * 4-byte slots only, from the hash kept in each entry.
 */
#include "engine/users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/hash.h"
#include "engine/util.h"

#define USERS_MIN_CAP 64
#define USERS_MAX_CAP (1u << 31)

/* Arrays of at least this many bytes are mapped directly (see users.h). */
#define BIG (256u << 10)
/* A shard table at least this big is released when cleared, so that a
 * burst does not keep its memory in the spare shard until the next one. */
#define CLEAR_KEEP_MAX (4u << 20)

/* populate: map every page writable now. For the index, which a lookup
 * reads before an insert writes it: left to fault, a slot's page is first
 * mapped to the shared zero page, and the write that follows replaces that
 * mapping, which costs a TLB flush on every CPU running this process -- an
 * interrupt to the other worker, each time (with 2 workers, ~3 % of the CPU
 * at 100 K users). Not for the entries, written in order: populating their
 * spare capacity would only grow the resident memory. */
static void *big_alloc(size_t bytes, int populate)
{
    if (bytes < BIG)
        return op_xcalloc(1, bytes);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "orderpulse: out of memory (%zu bytes for a user table)\n", bytes);
        abort();
    }
    madvise(p, bytes, MADV_HUGEPAGE); /* a hint; refused is fine */
#ifdef MADV_POPULATE_WRITE
    if (populate)
        (void)madvise(p, bytes, MADV_POPULATE_WRITE); /* Linux >= 5.14; else it faults later */
#else
    (void)populate;
#endif
    return p;
}

static void big_free(void *p, size_t bytes)
{
    if (!p)
        return;
    if (bytes < BIG)
        free(p);
    else
        munmap(p, bytes);
}

/* Grows an array from old to bytes (old < bytes); new bytes are zero. */
static void *big_grow(void *p, size_t old, size_t bytes)
{
    if (!p)
        return big_alloc(bytes, 0);
    if (bytes < BIG) {
        char *q = op_xrealloc(p, bytes);
        memset(q + old, 0, bytes - old);
        return q;
    }
    if (old < BIG) {
        void *q = big_alloc(bytes, 0);
        memcpy(q, p, old);
        free(p);
        return q;
    }
    void *q = mremap(p, old, bytes, MREMAP_MAYMOVE);
    if (q == MAP_FAILED) {
        fprintf(stderr, "orderpulse: out of memory (%zu bytes for a user table)\n", bytes);
        abort();
    }
    madvise(q, bytes, MADV_HUGEPAGE);
    return q;
}

void op_users_init(op_users_t *u)
{
    memset(u, 0, sizeof(*u));
}

void op_users_dispose(op_users_t *u)
{
    big_free(u->index, (size_t)u->cap * sizeof(*u->index));
    big_free(u->ent, (size_t)u->ent_cap * sizeof(*u->ent));
    big_free(u->top, u->ent_cap);
    big_free(u->arena, u->arena_cap);
    memset(u, 0, sizeof(*u));
}

/* A shard's table is cleared every tick. It keeps its allocation, so that
 * steady traffic does not reallocate, unless the last tick used less than
 * an eighth of it or it is big: then it is released, so that one burst (a
 * replay, a backlog after a restart) does not pin its peak size in every
 * shard. */
void op_users_clear(op_users_t *u)
{
    if (op_users_bytes(u) >= CLEAR_KEEP_MAX || (u->cap > 4096 && (uint64_t)u->count * 8 < u->cap)) {
        op_users_dispose(u);
        return;
    }
    if (u->count)
        memset(u->index, 0, (size_t)u->cap * sizeof(*u->index));
    u->count = 0;
    u->arena_len = 0;
}

#define REHASH_AHEAD 32

static void users_rehash(op_users_t *u, uint32_t cap)
{
    big_free(u->index, (size_t)u->cap * sizeof(*u->index));
    u->index = big_alloc((size_t)cap * sizeof(*u->index), 1);
    u->cap = cap;
    u->bits = (uint32_t)__builtin_ctz(cap);
    uint32_t mask = cap - 1;
    for (uint32_t e = 0; e < u->count; e++) {
        /* Each insert is a miss in the new index: with the home slot of a
         * later one on its way, they overlap (a 1-worker run at 1.26 M
         * users: 17 -> 13 ms in rehashes, perf samples). */
        if (e + REHASH_AHEAD < u->count)
            OP_USERS_PREFETCH(&u->index[u->ent[e + REHASH_AHEAD].hash >> (32 - u->bits)]);
        uint32_t h32 = u->ent[e].hash;
        uint32_t i = h32 >> (32 - u->bits);
        while (u->index[i])
            i = (i + 1) & mask;
        u->index[i] = op_users_fingerprint(u, h32) << u->bits | (e + 1);
    }
}

static void ent_reserve(op_users_t *u, uint32_t n)
{
    if (n <= u->ent_cap)
        return;
    uint32_t cap = u->ent_cap ? u->ent_cap : USERS_MIN_CAP;
    while (cap < n)
        cap *= 2;
    u->ent = big_grow(u->ent, (size_t)u->ent_cap * sizeof(*u->ent), (size_t)cap * sizeof(*u->ent));
    u->top = big_grow(u->top, u->ent_cap, cap);
    u->ent_cap = cap;
}

static inline int users_match(const op_users_t *u, uint32_t e, const char *name, size_t len,
                              uint32_t h32)
{
    const op_user_t *x = &u->ent[e];
    if (x->hash != h32 || x->len != len)
        return 0;
    if (len <= OP_USERS_INLINE)
        return op_hash_same(x->name, name, len);
    size_t n;
    const char *stored = op_users_name(u, e, &n);
    return memcmp(stored, name, len) == 0;
}

/* The slot holding name, or the empty slot where it would go. */
static inline uint32_t users_probe(const op_users_t *u, const char *name, size_t len, uint32_t h32)
{
    uint32_t mask = u->cap - 1, fp = op_users_fingerprint(u, h32);
    for (uint32_t i = h32 >> (32 - u->bits);; i = (i + 1) & mask) {
        uint32_t slot = u->index[i];
        if (!slot || (slot >> u->bits == fp && users_match(u, (slot & mask) - 1, name, len, h32)))
            return i;
    }
}

uint32_t op_users_find(const op_users_t *u, const char *name, size_t len, uint64_t hash)
{
    if (!u->count)
        return UINT32_MAX;
    uint32_t slot = u->index[users_probe(u, name, len, (uint32_t)(hash >> 32))];
    return slot ? (slot & (u->cap - 1)) - 1 : UINT32_MAX;
}

static uint32_t users_append(op_users_t *u, const char *name, size_t len, uint32_t h32)
{
    if (u->count == u->ent_cap)
        ent_reserve(u, u->count + 1);
    uint32_t e = u->count++;
    u->top[e] = op_users_top_byte(h32);
    op_user_t *x = &u->ent[e];
    memset(x, 0, sizeof(*x));
    x->hash = h32;
    x->len = (uint8_t)len;
    if (len <= OP_USERS_INLINE) {
        memcpy(x->name, name, len);
        return e;
    }
    if (u->arena_len + len > u->arena_cap) {
        size_t cap = u->arena_cap ? u->arena_cap * 2 : 4096;
        while (cap < u->arena_len + len)
            cap *= 2;
        u->arena = big_grow(u->arena, u->arena_cap, cap);
        u->arena_cap = cap;
    }
    if (u->arena_len + len > UINT32_MAX) {
        fprintf(stderr, "orderpulse: more than 4 GiB of user names in one table\n");
        abort();
    }
    uint32_t off = (uint32_t)u->arena_len;
    memcpy(u->arena + off, name, len);
    u->arena_len += len;
    memcpy(x->name, name, OP_USERS_INLINE - 4);
    memcpy(x->name + OP_USERS_INLINE - 4, &off, 4);
    return e;
}

uint32_t op_users_upsert_slow(op_users_t *u, const char *name, size_t len, uint64_t hash)
{
    if (op_users_must_grow(u)) {
        if (u->cap >= USERS_MAX_CAP) {
            fprintf(stderr, "orderpulse: more than %u users in one table\n", u->count);
            abort();
        }
        users_rehash(u, u->cap ? u->cap * 2 : USERS_MIN_CAP);
    }
    uint32_t h32 = (uint32_t)(hash >> 32);
    uint32_t i = users_probe(u, name, len, h32);
    uint32_t slot = u->index[i];
    if (slot)
        return (slot & (u->cap - 1)) - 1;
    uint32_t e = users_append(u, name, len, h32);
    u->index[i] = op_users_fingerprint(u, h32) << u->bits | (e + 1);
    return e;
}

/* ---- merging on several threads --------------------------------------------- */

void op_users_reserve_parts(op_users_t *u, uint32_t top)
{
    uint32_t cap = u->cap ? u->cap : USERS_MIN_CAP;
    while (cap <= top) { /* a slot holds entry + 1 below cap */
        if (cap >= USERS_MAX_CAP) {
            fprintf(stderr, "orderpulse: more than %u users in one table\n", top);
            abort();
        }
        cap *= 2;
    }
    if (cap != u->cap)
        users_rehash(u, cap);
    ent_reserve(u, top);
}

void op_users_move(op_users_t *u, uint32_t from, uint32_t to)
{
    uint32_t h32 = u->ent[from].hash, mask = u->cap - 1;
    uint32_t i = h32 >> (32 - u->bits);
    while ((u->index[i] & mask) != from + 1)
        i = (i + 1) & mask;
    u->index[i] = op_users_fingerprint(u, h32) << u->bits | (to + 1);
    u->ent[to] = u->ent[from];
    u->top[to] = u->top[from];
    memset(&u->ent[from], 0, sizeof(u->ent[from]));
}

void op_users_set_count(op_users_t *u, uint32_t count)
{
    u->count = count;
}

void op_users_copy(op_users_t *dst, const op_users_t *src)
{
    if (!src->count)
        return;
    op_users_dispose(dst);
    dst->index = big_alloc((size_t)src->cap * sizeof(*src->index), 0); /* written whole next */
    memcpy(dst->index, src->index, (size_t)src->cap * sizeof(*src->index));
    dst->cap = src->cap;
    dst->bits = src->bits;
    ent_reserve(dst, src->count);
    memcpy(dst->ent, src->ent, (size_t)src->count * sizeof(*src->ent));
    memcpy(dst->top, src->top, src->count);
    dst->count = src->count;
    if (src->arena_len) {
        dst->arena = big_alloc(src->arena_cap, 0);
        memcpy(dst->arena, src->arena, src->arena_len);
        dst->arena_cap = src->arena_cap;
        dst->arena_len = src->arena_len;
    }
}

size_t op_users_bytes(const op_users_t *u)
{
    return (size_t)u->cap * sizeof(*u->index) + (size_t)u->ent_cap * (sizeof(*u->ent) + 1) +
           u->arena_cap;
}
