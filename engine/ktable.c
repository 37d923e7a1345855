/* ktable.c — open-addressing key→tally map (see ktable.h).
 *
 * Linear probing over a power-of-two array kept at most half full: the keys
 * are small dense integers, so a multiplicative (Fibonacci) hash spreads
 * them and probe sequences stay short without tombstones (entries are only
 * ever removed all at once, by clear or by a rebuild).
 */
#include "engine/ktable.h"

#include <stdlib.h>
#include <string.h>

#include "engine/util.h"

#define KTABLE_MIN_CAP 16

void op_ktable_init(op_ktable_t *t)
{
    memset(t, 0, sizeof(*t));
}

void op_ktable_dispose(op_ktable_t *t)
{
    free(t->keys);
    free(t->vals);
    memset(t, 0, sizeof(*t));
}

static void ktable_alloc(op_ktable_t *t, uint32_t cap)
{
    t->keys = op_xcalloc(cap, sizeof(*t->keys));
    t->vals = op_xcalloc(cap, sizeof(*t->vals));
    t->cap = cap;
    t->count = 0;
    t->shift = 64 - (uint32_t)__builtin_ctz(cap);
}

static void ktable_grow(op_ktable_t *t, uint32_t cap)
{
    op_ktable_t old = *t;
    ktable_alloc(t, cap);
    for (uint32_t i = 0; i < old.cap; i++) {
        if (!old.keys[i])
            continue;
        *op_ktable_upsert(t, old.keys[i] - 1) = old.vals[i];
    }
    free(old.keys);
    free(old.vals);
}

void op_ktable_reserve(op_ktable_t *t, uint32_t n)
{
    uint64_t want = ((uint64_t)t->count + n) * 2;
    uint64_t cap = t->cap ? t->cap : KTABLE_MIN_CAP;
    while (cap < want)
        cap *= 2;
    if (cap != t->cap && cap <= UINT32_MAX / 2 + 1)
        ktable_grow(t, (uint32_t)cap);
}

op_tally_t *op_ktable_upsert_slow(op_ktable_t *t, uint64_t key)
{
    if ((t->count + 1) * 2 > t->cap)
        ktable_grow(t, t->cap ? t->cap * 2 : KTABLE_MIN_CAP);
    uint64_t stored = key + 1;
    uint32_t mask = t->cap - 1;
    for (uint32_t i = op_ktable_home(t, stored);; i = (i + 1) & mask) {
        if (t->keys[i] == stored)
            return &t->vals[i];
        if (!t->keys[i]) {
            t->keys[i] = stored;
            t->count++;
            return &t->vals[i];
        }
    }
}

op_tally_t *op_ktable_find(const op_ktable_t *t, uint64_t key)
{
    if (!t->count)
        return NULL;
    uint64_t stored = key + 1;
    uint32_t mask = t->cap - 1;
    for (uint32_t i = op_ktable_home(t, stored);; i = (i + 1) & mask) {
        if (t->keys[i] == stored)
            return &t->vals[i];
        if (!t->keys[i])
            return NULL;
    }
}

void op_ktable_clear(op_ktable_t *t)
{
    if (!t->count)
        return;
    memset(t->keys, 0, (size_t)t->cap * sizeof(*t->keys));
    memset(t->vals, 0, (size_t)t->cap * sizeof(*t->vals));
    t->count = 0;
}

void op_ktable_add(op_ktable_t *dst, const op_ktable_t *src)
{
    for (uint32_t i = 0; i < src->cap; i++) {
        if (!src->keys[i])
            continue;
        op_tally_add(op_ktable_upsert(dst, src->keys[i] - 1), &src->vals[i]);
    }
}

void op_ktable_drop_below(op_ktable_t *t, uint64_t min_key)
{
    op_ktable_t old = *t;
    int any = 0;
    for (uint32_t i = 0; i < old.cap && !any; i++)
        any = old.keys[i] && old.keys[i] - 1 < min_key;
    if (!any)
        return;
    ktable_alloc(t, old.cap);
    for (uint32_t i = 0; i < old.cap; i++)
        if (old.keys[i] && old.keys[i] - 1 >= min_key)
            *op_ktable_upsert(t, old.keys[i] - 1) = old.vals[i];
    free(old.keys);
    free(old.vals);
}
