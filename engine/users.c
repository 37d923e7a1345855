/* users.c — name → (amount, orders) map, compact enough for millions of users.
 *
 * Linear probing over an index of 32-bit entry numbers kept at most 5/8 full;
 * entries and names are appended to dense arrays, so growing the index
 * rehashes 4-byte slots only, using the hash bits stored in each entry.
 */
#include "engine/users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hash.h"
#include "engine/util.h"

#define USERS_MIN_CAP 64

void op_users_init(op_users_t *u)
{
    memset(u, 0, sizeof(*u));
}

void op_users_dispose(op_users_t *u)
{
    free(u->index);
    free(u->ent);
    free(u->arena);
    memset(u, 0, sizeof(*u));
}

/* A shard's table is cleared every tick. It keeps its allocation, so that
 * steady traffic does not reallocate, unless the last tick used less than
 * an eighth of it: then it is released, so that one burst (a replay, a
 * backlog after a restart) does not pin its peak size in every shard. */
void op_users_clear(op_users_t *u)
{
    if (u->cap > 4096 && (uint64_t)u->count * 8 < u->cap) {
        op_users_dispose(u);
        return;
    }
    if (u->count)
        memset(u->index, 0, (size_t)u->cap * sizeof(*u->index));
    u->count = 0;
    u->arena_len = 0;
}

/* The slot for an entry hash: the stored 32 bits, spread again so that the
 * low bits used as the index differ from the ones compared as the tag.
 * op_users_prefetch in users.h repeats this computation. */
static uint32_t users_home(uint32_t hash, uint32_t cap)
{
    return (uint32_t)(((uint64_t)hash * 0x9e3779b97f4a7c15ULL) >> 32) & (cap - 1);
}

static void users_rehash(op_users_t *u, uint32_t cap)
{
    free(u->index);
    u->index = op_xcalloc(cap, sizeof(*u->index));
    u->cap = cap;
    for (uint32_t e = 0; e < u->count; e++) {
        uint32_t i = users_home(u->ent[e].hash, cap);
        while (u->index[i])
            i = (i + 1) & (cap - 1);
        u->index[i] = e + 1;
    }
}

static int users_match(const op_users_t *u, uint32_t e, const char *name, size_t len, uint32_t h32)
{
    if (u->ent[e].hash != h32)
        return 0;
    const unsigned char *p = (const unsigned char *)u->arena + u->ent[e].name_off;
    return p[0] == len && op_hash_same((const char *)p + 1, name, len);
}

uint32_t op_users_find(const op_users_t *u, const char *name, size_t len, uint64_t hash)
{
    if (!u->count)
        return UINT32_MAX;
    uint32_t h32 = (uint32_t)hash;
    for (uint32_t i = users_home(h32, u->cap);; i = (i + 1) & (u->cap - 1)) {
        uint32_t slot = u->index[i];
        if (!slot)
            return UINT32_MAX;
        if (users_match(u, slot - 1, name, len, h32))
            return slot - 1;
    }
}

static uint32_t users_append(op_users_t *u, const char *name, size_t len, uint32_t h32)
{
    if (u->count == u->ent_cap) {
        u->ent_cap = u->ent_cap ? u->ent_cap * 2 : USERS_MIN_CAP;
        u->ent = op_xrealloc(u->ent, (size_t)u->ent_cap * sizeof(*u->ent));
    }
    if (u->arena_len + len + 1 > u->arena_cap) {
        size_t cap = u->arena_cap ? u->arena_cap * 2 : 4096;
        while (cap < u->arena_len + len + 1)
            cap *= 2;
        u->arena = op_xrealloc(u->arena, cap);
        u->arena_cap = cap;
    }
    if (u->arena_len + len + 1 > UINT32_MAX) {
        fprintf(stderr, "orderpulse: more than 4 GiB of user names in one table\n");
        abort();
    }
    uint32_t e = u->count++;
    u->ent[e] = (op_user_t){.name_off = (uint32_t)u->arena_len, .hash = h32, .heap_pos = -1};
    u->arena[u->arena_len] = (char)(unsigned char)len;
    memcpy(u->arena + u->arena_len + 1, name, len);
    u->arena_len += len + 1;
    return e;
}

uint32_t op_users_upsert(op_users_t *u, const char *name, size_t len, uint64_t hash)
{
    if ((uint64_t)(u->count + 1) * 8 > (uint64_t)u->cap * 5)
        users_rehash(u, u->cap ? u->cap * 2 : USERS_MIN_CAP);
    uint32_t h32 = (uint32_t)hash;
    uint32_t i = users_home(h32, u->cap);
    for (;; i = (i + 1) & (u->cap - 1)) {
        uint32_t slot = u->index[i];
        if (!slot)
            break;
        if (users_match(u, slot - 1, name, len, h32))
            return slot - 1;
    }
    uint32_t e = users_append(u, name, len, h32);
    u->index[i] = e + 1;
    return e;
}

size_t op_users_bytes(const op_users_t *u)
{
    return (size_t)u->cap * sizeof(*u->index) + (size_t)u->ent_cap * sizeof(*u->ent) + u->arena_cap;
}
