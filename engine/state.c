/* state.c — the merger's cumulative aggregates and the exact top-K (see state.h). */
#include "engine/state.h"

#include <stdlib.h>
#include <string.h>

#include "engine/hash.h"

void op_state_init(op_state_t *st, op_intern_t *dict)
{
    memset(st, 0, sizeof(*st));
    st->dict = dict;
    op_ktable_init(&st->minutes);
    op_ktable_init(&st->catmin);
    op_ktable_init(&st->brands);
    op_ktable_init(&st->genders);
    op_ktable_init(&st->gslots);
    op_users_init(&st->users);
    for (int p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++) {
        st->parts[p].max_event_ms = INT64_MIN;
        st->parts[p].next_offset = -1;
    }
    st->watermark_ms = INT64_MIN;
    st->max_event_ms = INT64_MIN;
}

void op_state_dispose(op_state_t *st)
{
    op_ktable_dispose(&st->minutes);
    op_ktable_dispose(&st->catmin);
    op_ktable_dispose(&st->brands);
    op_ktable_dispose(&st->genders);
    op_ktable_dispose(&st->gslots);
    op_users_dispose(&st->users);
}

int op_state_user_cmp(const op_state_t *st, uint32_t a, uint32_t b)
{
    int64_t aa = op_users_amount(&st->users, a), ab = op_users_amount(&st->users, b);
    if (aa != ab)
        return aa > ab ? -1 : 1;
    size_t la, lb;
    const char *na = op_users_name(&st->users, a, &la);
    const char *nb = op_users_name(&st->users, b, &lb);
    int c = memcmp(na, nb, la < lb ? la : lb);
    if (c)
        return c;
    return la < lb ? -1 : la > lb;
}

/* ---- where a user sits in the heap -------------------------------------------- */

static uint32_t pos_slot(uint32_t e)
{
    return (uint32_t)((e * 0x9E3779B9u) >> 24) & (OP_STATE_HEAP_SLOTS - 1);
}

/* The heap position of entry e, or -1. */
static int pos_get(const op_state_t *st, uint32_t e)
{
    for (uint32_t i = pos_slot(e);; i = (i + 1) & (OP_STATE_HEAP_SLOTS - 1)) {
        if (st->heap_key[i] == e + 1)
            return st->heap_at[i];
        if (!st->heap_key[i])
            return -1;
    }
}

static void pos_set(op_state_t *st, uint32_t e, uint32_t pos)
{
    uint32_t i = pos_slot(e);
    while (st->heap_key[i] && st->heap_key[i] != e + 1)
        i = (i + 1) & (OP_STATE_HEAP_SLOTS - 1);
    st->heap_key[i] = e + 1;
    st->heap_at[i] = (uint8_t)pos;
}

/* Removes e; the entries after it in its probe run move back into the gap
 * (deletion without tombstones, Knuth's algorithm R). */
static void pos_del(op_state_t *st, uint32_t e)
{
    const uint32_t mask = OP_STATE_HEAP_SLOTS - 1;
    uint32_t i = pos_slot(e);
    while (st->heap_key[i] != e + 1)
        i = (i + 1) & mask;
    for (uint32_t j = i;;) {
        st->heap_key[i] = 0;
        uint32_t k;
        for (;;) {
            j = (j + 1) & mask;
            if (!st->heap_key[j])
                return;
            k = pos_slot(st->heap_key[j] - 1);
            /* Stays if its home lies cyclically in (i, j]. */
            if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                continue;
            break;
        }
        st->heap_key[i] = st->heap_key[j];
        st->heap_at[i] = st->heap_at[j];
        i = j;
    }
}

/* ---- the heap ------------------------------------------------------------------ */

/* The heap is a min-heap of rank: its root is the worst of the top K. */
static int heap_worse(const op_state_t *st, uint32_t a, uint32_t b)
{
    return op_state_user_cmp(st, a, b) > 0;
}

static void heap_set(op_state_t *st, uint32_t pos, uint32_t e)
{
    st->heap[pos] = e;
    pos_set(st, e, pos);
}

static void heap_down(op_state_t *st, uint32_t pos)
{
    uint32_t e = st->heap[pos];
    for (;;) {
        uint32_t l = 2 * pos + 1, r = l + 1, worst = pos;
        uint32_t we = e;
        if (l < st->heap_len && heap_worse(st, st->heap[l], we)) {
            worst = l;
            we = st->heap[l];
        }
        if (r < st->heap_len && heap_worse(st, st->heap[r], we)) {
            worst = r;
            we = st->heap[r];
        }
        if (worst == pos)
            break;
        heap_set(st, pos, we);
        pos = worst;
    }
    heap_set(st, pos, e);
}

static void heap_up(op_state_t *st, uint32_t pos)
{
    uint32_t e = st->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!heap_worse(st, e, st->heap[parent]))
            break;
        heap_set(st, pos, st->heap[parent]);
        pos = parent;
    }
    heap_set(st, pos, e);
}

/* Called after user e's amount grew. */
static void topk_offer(op_state_t *st, uint32_t e)
{
    if (st->heap_len == OP_STATE_TOPK) {
        /* Most users are below the heap's worst; one compare settles them
         * (a user in the heap is never below its root). */
        int64_t root = op_users_amount(&st->users, st->heap[0]);
        if (op_users_amount(&st->users, e) < root)
            return;
    }
    int pos = pos_get(st, e);
    if (pos >= 0) {
        /* Better than before: it can only move away from the root. */
        heap_down(st, (uint32_t)pos);
        return;
    }
    if (st->heap_len < OP_STATE_TOPK) {
        st->heap[st->heap_len] = e;
        heap_up(st, st->heap_len++);
        return;
    }
    if (!heap_worse(st, st->heap[0], e))
        return;
    pos_del(st, st->heap[0]);
    heap_set(st, 0, e);
    heap_down(st, 0);
}

static void add_user(op_state_t *st, const char *name, size_t len, uint64_t hash, int64_t amount,
                     int64_t orders)
{
    uint32_t e = op_users_upsert(&st->users, name, len, hash);
    op_users_add(&st->users, e, amount, orders);
    topk_offer(st, e);
}

void op_state_add_user(op_state_t *st, const char *name, size_t len, int64_t amount, int64_t orders)
{
    add_user(st, name, len, op_users_hash(name, len), amount, orders);
}

/* A shard's users into the state: a walk over the shard's dense entries,
 * with the state's index line of the user PREFETCH_AHEAD entries ahead
 * and its entry half as far ahead already on their way from memory, so
 * that a tick of a million users costs a million overlapping misses, not a
 * million waits. The shard's stored hashes are reused: no name is hashed. */
#define PREFETCH_AHEAD 32

static void merge_users(op_state_t *st, const op_users_t *delta)
{
    uint32_t n = delta->count;
    if (!st->users.count) {
        /* Into an empty state (the first tick, a replay): a copy of the
         * shard's table, then one pass offering everyone to the top-K. */
        op_users_copy(&st->users, delta);
        for (uint32_t e = 0; e < n; e++)
            topk_offer(st, e);
        return;
    }
    for (uint32_t d = 0; d < n; d++) {
        if (d + PREFETCH_AHEAD < n)
            op_users_prefetch(&st->users, op_users_hash_of(delta, d + PREFETCH_AHEAD));
        if (d + PREFETCH_AHEAD / 2 < n)
            op_users_prefetch_entry(&st->users, op_users_hash_of(delta, d + PREFETCH_AHEAD / 2));
        size_t len;
        const char *name = op_users_name(delta, d, &len);
        uint32_t e = op_users_upsert(&st->users, name, len, op_users_hash_of(delta, d));
        op_users_add(&st->users, e, op_users_amount(delta, d), op_users_orders(delta, d));
        /* topk_offer's first test, here: nearly every user stops at it. */
        if (st->heap_len < OP_STATE_TOPK ||
            op_users_amount(&st->users, e) >= op_users_amount(&st->users, st->heap[0]))
            topk_offer(st, e);
    }
}

void op_state_merge(op_state_t *st, const op_shard_t *s, int64_t now_ms)
{
    op_tally_add(&st->totals, &s->totals);
    op_ktable_add(&st->minutes, &s->minutes);
    op_ktable_add(&st->catmin, &s->catmin);
    op_ktable_add(&st->brands, &s->brands);
    op_ktable_add(&st->genders, &s->genders);
    op_ktable_add(&st->gslots, &s->gslots);
    merge_users(st, &s->users);
    for (int r = 0; r < OP_BAD_REASON_COUNT; r++) {
        st->bad[r] += s->bad[r];
        st->bad_total += s->bad[r];
    }
    st->late += s->late;
    st->dead_letter_errors += s->dead_letter_errors;
    for (int32_t p = op_shard_next_touched(s, 0); p >= 0; p = op_shard_next_touched(s, p + 1)) {
        const op_shard_part_t *sp = &s->parts[p];
        op_state_part_t *gp = &st->parts[p];
        if (sp->max_event_ms > gp->max_event_ms)
            gp->max_event_ms = sp->max_event_ms;
        if (sp->max_event_ms > st->max_event_ms)
            st->max_event_ms = sp->max_event_ms;
        gp->next_offset = sp->next_offset;
        if (sp->records)
            gp->last_active_ms = now_ms;
        if (p + 1 > st->nparts_seen)
            st->nparts_seen = p + 1;
    }
}

void op_state_advance_watermark(op_state_t *st, int64_t lateness_ms, int64_t idle_ms,
                                int64_t now_ms, int at_end)
{
    int64_t wm = INT64_MAX;
    if (at_end) {
        wm = st->max_event_ms == INT64_MIN ? INT64_MIN : st->max_event_ms - lateness_ms;
    } else {
        for (int p = 0; p < st->nparts_seen; p++) {
            const op_state_part_t *gp = &st->parts[p];
            if (gp->max_event_ms == INT64_MIN || now_ms - gp->last_active_ms > idle_ms)
                continue;
            if (gp->max_event_ms - lateness_ms < wm)
                wm = gp->max_event_ms - lateness_ms;
        }
        if (wm == INT64_MAX)
            return; /* every partition idle: hold the watermark */
    }
    if (wm > st->watermark_ms)
        st->watermark_ms = wm;
}

void op_state_evict(op_state_t *st, int64_t retention_ms)
{
    if (st->watermark_ms == INT64_MIN || st->watermark_ms - retention_ms <= 0)
        return;
    int64_t cutoff = st->watermark_ms - retention_ms;
    /* Keep a window while any part of it is within the retention. */
    uint64_t min_minute = (uint64_t)(cutoff / OP_MINUTE_MS);
    uint64_t min_slot = (uint64_t)(cutoff / OP_SLOT_MS);
    op_ktable_drop_below(&st->minutes, min_minute);
    op_ktable_drop_below(&st->catmin, op_ktable_pair(min_minute, 0));
    op_ktable_drop_below(&st->gslots, op_ktable_pair(min_slot, 0));
}

uint32_t op_state_top_users(const op_state_t *st, uint32_t *out, uint32_t k)
{
    uint32_t n = st->heap_len;
    memcpy(out, st->heap, n * sizeof(*out));
    /* Insertion sort: n <= OP_STATE_TOPK, once per tick. */
    for (uint32_t i = 1; i < n; i++) {
        uint32_t e = out[i], j = i;
        while (j > 0 && op_state_user_cmp(st, e, out[j - 1]) < 0) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = e;
    }
    return n < k ? n : k;
}
