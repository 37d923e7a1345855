/* state.c — the merger's cumulative aggregates and the exact top-K (see state.h). */
#include "engine/state.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/fanout.h"
#include "engine/hash.h"
#include "engine/util.h"

#define TABLE(id_, dim_, paired_, field)                                                           \
    {                                                                                              \
        (id_), (dim_), (paired_), #field, offsetof(op_shard_t, field), offsetof(op_state_t, field) \
    }

const op_table_desc_t op_tables[] = {
    TABLE(1, -1, 0, minutes),           TABLE(2, OP_DIM_CATEGORY, 1, catmin),
    TABLE(3, OP_DIM_BRAND, 0, brands),  TABLE(4, OP_DIM_GENDER, 0, genders),
    TABLE(5, OP_DIM_GENDER, 1, gslots),
};
const int op_ntables = sizeof(op_tables) / sizeof(op_tables[0]);

void op_state_init(op_state_t *st, op_intern_t *dict)
{
    memset(st, 0, sizeof(*st));
    st->dict = dict;
    op_ktable_init(&st->minutes);
    op_ktable_init(&st->catmin);
    op_ktable_init(&st->brands);
    op_ktable_init(&st->genders);
    op_ktable_init(&st->gslots);
    op_ktable_init(&st->revised_minutes);
    op_ktable_init(&st->revised_slots);
    op_users_init(&st->users);
    op_ktable_init(&st->brand_days);
    op_ktable_init(&st->gender_days);
    op_ktable_init(&st->user_days);
    op_ktable_t *rw = &st->rewrite.minutes;
    for (size_t i = 0; i < sizeof(st->rewrite) / sizeof(*rw); i++)
        op_ktable_init(&rw[i]);
    for (int p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++) {
        st->parts[p].max_event_ms = INT64_MIN;
        st->parts[p].next_offset = -1;
        st->parts[p].worker = -1;
    }
    st->watermark_ms = INT64_MIN;
    st->max_event_ms = INT64_MIN;
}

static void dayq_free(op_state_dayq_t *q)
{
    free(q->ent);
    free(q->amount);
    free(q->orders);
}

#define PAR_MIN_USERS 65536 /* below this a merge is done before the team has started */

void op_state_set_fanout(op_state_t *st, op_fanout_t *f, uint32_t min_users)
{
    st->fanout = f;
    st->par_min_users = min_users ? min_users : PAR_MIN_USERS;
}

void op_state_dispose(op_state_t *st)
{
    op_ktable_dispose(&st->minutes);
    op_ktable_dispose(&st->catmin);
    op_ktable_dispose(&st->brands);
    op_ktable_dispose(&st->genders);
    op_ktable_dispose(&st->gslots);
    op_ktable_dispose(&st->revised_minutes);
    op_ktable_dispose(&st->revised_slots);
    op_users_dispose(&st->users);
    op_ktable_dispose(&st->brand_days);
    op_ktable_dispose(&st->gender_days);
    op_ktable_dispose(&st->user_days);
    for (uint32_t i = 0; i < st->ndayq; i++)
        dayq_free(&st->dayq[i]);
    free(st->dayq);
    op_ktable_t *rw = &st->rewrite.minutes;
    for (size_t i = 0; i < sizeof(st->rewrite) / sizeof(*rw); i++)
        op_ktable_dispose(&rw[i]);
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

static uint32_t add_user(op_state_t *st, const char *name, size_t len, uint64_t hash,
                         int64_t amount, int64_t orders)
{
    uint32_t e = op_users_upsert(&st->users, name, len, hash);
    op_users_add(&st->users, e, amount, orders);
    topk_offer(st, e);
    return e;
}

void op_state_add_user(op_state_t *st, const char *name, size_t len, int64_t amount, int64_t orders)
{
    add_user(st, name, len, op_users_hash(name, len), amount, orders);
}

/* Was the window over before this merge (archive.h writes it again)? */
static int is_final(const op_state_t *st, int64_t end_ms)
{
    return st->track_rewrites && st->watermark_ms != INT64_MIN && end_ms <= st->watermark_ms;
}

static int day_is_final(const op_state_t *st, uint32_t day)
{
    return is_final(st, op_shard_day_start(day + 1, st->tz_ms));
}

/* The final windows among the keys of t (windows of width_ms, keyed by
 * bucket or op_ktable_pair(bucket, id)) into rw. */
static void note_rewrite(const op_state_t *st, op_ktable_t *rw, const op_ktable_t *t,
                         int64_t width_ms, int paired)
{
    if (!st->track_rewrites || st->watermark_ms == INT64_MIN)
        return;
    for (uint32_t i = 0; i < t->cap; i++) {
        if (!op_ktable_used(t, i))
            continue;
        uint64_t k = op_ktable_key(t, i);
        int64_t bucket = (int64_t)(paired ? op_ktable_pair_bucket(k) : k);
        if (is_final(st, (bucket + 1) * width_ms))
            op_ktable_upsert(rw, k);
    }
}

#define PREFETCH_AHEAD 32 /* entries ahead of the one at hand, for their misses */

/* The shard's users' orders in their entries of the state's base day of
 * the shard (the off-day share is moved in merge_days), for
 * op_state_settle_days: shard entry d is state entry ent[d] (d itself when
 * ent is NULL), and ent becomes the queue's. */
static void queue_user_days(op_state_t *st, const op_shard_t *s, const op_users_t *users,
                            uint32_t *ent, int rw)
{
    uint32_t n = users->count;
    if (st->ndayq == st->dayq_cap) {
        st->dayq_cap = st->dayq_cap ? st->dayq_cap * 2 : 8;
        st->dayq = op_xrealloc(st->dayq, st->dayq_cap * sizeof(*st->dayq));
    }
    op_state_dayq_t *q = &st->dayq[st->ndayq++];
    *q = (op_state_dayq_t){.day = (uint32_t)s->day, .n = n, .rw = rw, .ent = ent};
    q->amount = op_xmalloc((size_t)(n ? n : 1) * sizeof(*q->amount));
    q->orders = op_xmalloc((size_t)(n ? n : 1) * sizeof(*q->orders));
    for (uint32_t d = 0; d < n; d++) {
        q->amount[d] = op_users_amount(users, d);
        q->orders[d] = (uint32_t)op_users_orders(users, d);
    }
}

/* A second walk after the users' merge, because only then are the state
 * entries -- and so the keys, spread over the day table by its hash --
 * known ahead. */
void op_state_settle_days(op_state_t *st)
{
    for (uint32_t i = 0; i < st->ndayq; i++) {
        op_state_dayq_t *q = &st->dayq[i];
        uint32_t n = q->n;
        op_ktable_reserve(&st->user_days, n);
        if (q->rw)
            op_ktable_reserve(&st->rewrite.user_days, n);
        for (uint32_t d = 0; d < n; d++) {
            if (d + PREFETCH_AHEAD < n)
                op_ktable_prefetch(&st->user_days,
                                   op_shard_user_day(q->day, q->ent ? q->ent[d + PREFETCH_AHEAD]
                                                                    : d + PREFETCH_AHEAD));
            uint64_t k = op_shard_user_day(q->day, q->ent ? q->ent[d] : d);
            op_tally_t *t = op_ktable_upsert(&st->user_days, k);
            t->orders += q->orders[d];
            t->amount += q->amount[d];
            if (q->rw)
                op_ktable_upsert(&st->rewrite.user_days, k);
        }
        dayq_free(q);
    }
    st->ndayq = 0;
}

/* Shard entry d into the state; returns its state entry. */
static inline uint32_t merge_user(op_state_t *st, const op_users_t *delta, uint32_t d)
{
    uint32_t e = op_users_add_from(&st->users, delta, d);
    /* topk_offer's first test, here: nearly every user stops at it. */
    if (st->heap_len < OP_STATE_TOPK ||
        op_users_amount(&st->users, e) >= op_users_amount(&st->users, st->heap[0]))
        topk_offer(st, e);
    return e;
}

/* ---- the users' merge on several threads -------------------------------------
 *
 * A big merge (the end of a run at high cardinality: ~0.8 M users, ~30 ms
 * on one thread) is cut by hash into parts (users.h), several per thread of
 * the merger's team (fanout.h), which takes them as they come: a thread
 * slowed by a shared core (a worker still reading, or the other team
 * thread put beside it by the scheduler) takes fewer. A first pass cuts
 * the shard by part, in slices, several per thread too (par_count, par_place). Each
 * part then merges its users (par_merge_part). The new users, copied whole
 * from the shard, are numbered in blocks of 64 (PAR_BLOCK_LG) per part, the parts'
 * blocks interleaved (part p's j-th new user: block j / 64 of the
 * part, after that many blocks of every part): a part writes whole cache
 * lines of its own, and the numbers the parts leave unused are only in
 * the last blocks, past the shortest part's last; the merger then moves
 * the few new users numbered beyond the new count into them. What a
 * part cannot settle alone -- a probe that runs past its slots, a long
 * name (its bytes go to the shared arena) -- is merged afterwards by the
 * merger as usual. The top-K is not touched by the parts: a user whose
 * amount ends at or above the heap's root of before the merge is a
 * candidate; afterwards the heap's order is rebuilt (the parts raised some
 * of its users) and the candidates are offered. That is exact: the root
 * only rises, so a user below it then is below the heap's K at the end;
 * and every amount is final when offered. The entry numbers differ
 * from a serial merge's, the figures do not (stress_pmerge compares them). */

#define PAR_THREAD_PARTS  8 /* parts per thread of the team */
#define PAR_THREAD_SLICES 4 /* slices of the shard per thread, for the first pass */
#define PAR_MAX_PARTS     (1 << OP_USERS_MAX_PART_LG)
#define PAR_MAX_SLICES    (OP_FANOUT_MAX * PAR_THREAD_SLICES)
#define PAR_BLOCK_LG      6 /* 64 new entries, 2 KiB, per block */

typedef struct vec32 {
    uint32_t *v;
    uint32_t n, cap;
} vec32_t;

static void vec_push(vec32_t *x, uint32_t a)
{
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 1024;
        x->v = op_xrealloc(x->v, (size_t)x->cap * sizeof(*x->v));
    }
    x->v[x->n++] = a;
}

/* One part's lists. Written by the thread running the part, read by the
 * merger after the run. */
typedef struct par_part {
    /* How many new users the part numbered, and with per-day figures
     * (par_merge_t.ent) their shard entries in the order of their numbers. */
    vec32_t fresh;
    vec32_t alone; /* shard entries the merger merges afterwards */
    vec32_t cand;  /* state entries offered to the top-K afterwards */
} par_part_t;

typedef struct par_merge {
    op_users_t *users;
    const op_users_t *delta;
    /* The cut: by_part holds the shard's entries part after part, each
     * part's ascending; part p's start at part_at[p], part_n[p] of them.
     * Slice t of the shard counts its entries of part p into
     * slice_n[t][p], then places them from slice_at[t][p] on. */
    int slices;
    uint32_t *by_part;
    uint32_t part_at[PAR_MAX_PARTS], part_n[PAR_MAX_PARTS];
    uint32_t slice_n[PAR_MAX_SLICES][PAR_MAX_PARTS], slice_at[PAR_MAX_SLICES][PAR_MAX_PARTS];
    uint32_t *ent;  /* shard entry -> state entry, or NULL; each part writes its own */
    int64_t root;   /* the heap's root amount before the merge */
    uint32_t count; /* the state's users before the merge */
    uint32_t quota; /* new users a part may number (whole blocks); past them its users go alone */
    int lg;         /* 2^lg parts */
    int block_lg;   /* 2^block_lg new entries a block */
    par_part_t part[PAR_MAX_PARTS];
} par_merge_t;

/* How many parts the merge of n users takes: 1 (serial) or a power of two. */
static int par_parts(const op_state_t *st, uint32_t n)
{
    if (!st->fanout || n < st->par_min_users || st->heap_len < OP_STATE_TOPK)
        return 1;
    int lg = 0, width = op_fanout_width(st->fanout);
    while ((1 << lg) < width * PAR_THREAD_PARTS && lg < OP_USERS_MAX_PART_LG)
        lg++;
    return 1 << lg;
}

/* Slice t of slices over n entries: lo .. hi - 1. */
static inline void par_slice(uint32_t n, int slices, int t, uint32_t *lo, uint32_t *hi)
{
    *lo = (uint32_t)((uint64_t)n * (uint32_t)t / (uint32_t)slices);
    *hi = (uint32_t)((uint64_t)n * (uint32_t)(t + 1) / (uint32_t)slices);
}

/* The state entry of part p's j-th new user. */
static inline uint32_t par_fresh_entry(const par_merge_t *pm, int p, uint32_t j)
{
    uint32_t block = ((j >> pm->block_lg) << pm->lg) | (uint32_t)p;
    return pm->count + (block << pm->block_lg) + (j & ((1u << pm->block_lg) - 1));
}

/* The cut, in two passes over slices of the shard, from the table's top
 * bytes (users.h: a byte a user to read, not its 32-byte entry) and
 * without a branch (tested inside the merge's walk, the part of each entry
 * -- a coin toss -- was a mispredicted branch every other entry, and each
 * flushed the misses queued behind it): each slice counts its users by
 * part, then places them where the counts of the slices before it end. One
 * array for all (fresh memory is slow to touch on a VM: 1.5-2 ms a MiB
 * here, so the merge allocates as little of it as it can). */

static void par_count(void *arg, int t)
{
    par_merge_t *pm = arg;
    uint32_t lo, hi, *count = pm->slice_n[t];
    par_slice(pm->delta->count, pm->slices, t, &lo, &hi);
    for (uint32_t d = lo; d < hi; d++)
        count[op_users_part_of_entry(pm->delta, d, pm->lg)]++;
}

static void par_place(void *arg, int t)
{
    par_merge_t *pm = arg;
    uint32_t lo, hi, *at = pm->slice_at[t], *by_part = pm->by_part;
    par_slice(pm->delta->count, pm->slices, t, &lo, &hi);
    for (uint32_t d = lo; d < hi; d++)
        by_part[at[op_users_part_of_entry(pm->delta, d, pm->lg)]++] = d;
}

/* The second pass: part p merges the entries listed for it, in the
 * shard's order. */
static void par_merge_part(void *arg, int p)
{
    par_merge_t *pm = arg;
    par_part_t *pt = &pm->part[p];
    op_users_t *u = pm->users;
    const op_users_t *delta = pm->delta;
    /* The shard entries of the new users, in the order of their numbers:
     * only the per-day figures need them (the merger's moves). */
    uint32_t *fresh_v =
        pm->ent ? op_xmalloc((size_t)(pm->quota ? pm->quota : 1) * sizeof(*fresh_v)) : NULL;
    uint32_t nfresh = 0, fresh = par_fresh_entry(pm, p, 0);
    const uint32_t *own = pm->by_part + pm->part_at[p];
    uint32_t m = pm->part_n[p];
    for (uint32_t k = 0; k < m; k++) {
        /* Three steps ahead: the shard's entry (a part's are scattered
         * over the shard), then the state's index line, then its entry. */
        if (k + 2 * PREFETCH_AHEAD < m)
            op_users_prefetch_user(delta, own[k + 2 * PREFETCH_AHEAD]);
        if (k + PREFETCH_AHEAD < m)
            op_users_prefetch(u, op_users_hash_of(delta, own[k + PREFETCH_AHEAD]));
        if (k + PREFETCH_AHEAD / 2 < m)
            op_users_prefetch_entry_part(u, pm->lg,
                                         op_users_hash_of(delta, own[k + PREFETCH_AHEAD / 2]));
        uint32_t d = own[k];
        size_t len;
        (void)op_users_name(delta, d, &len);
        uint32_t e = len <= OP_USERS_INLINE && nfresh < pm->quota
                         ? op_users_merge_part(u, pm->lg, delta, d, fresh)
                         : OP_USERS_UNSURE;
        if (e == OP_USERS_UNSURE) {
            vec_push(&pt->alone, d);
            continue;
        }
        if (e == fresh) { /* copied with its figures */
            if (fresh_v)
                fresh_v[nfresh] = d;
            nfresh++;
            fresh = par_fresh_entry(pm, p, nfresh);
        } else {
            op_users_add(u, e, op_users_amount(delta, d), op_users_orders(delta, d));
        }
        if (op_users_amount(u, e) >= pm->root)
            vec_push(&pt->cand, e);
        if (pm->ent)
            pm->ent[d] = e;
    }
    pt->fresh = (vec32_t){.v = fresh_v, .n = nfresh, .cap = pm->quota};
}

/* After the parts: the new users numbered from count on, without gaps. The
 * numbers below the new count that no part used are filled, in ascending
 * order, with the new users numbered past it, in ascending order. Below
 * the shortest part's last block every number is used, so only the
 * numbers from there to the longest part's last block are looked at. */
static void par_close_gaps(op_state_t *st, par_merge_t *pm, int parts)
{
    uint32_t total = 0, most = 0, least = UINT32_MAX;
    for (int p = 0; p < parts; p++) {
        uint32_t k = pm->part[p].fresh.n;
        total += k;
        most = k > most ? k : most;
        least = k < least ? k : least;
    }
    uint32_t end = pm->count + total, block = 1u << pm->block_lg;
    uint32_t lo = pm->count + (((least >> pm->block_lg) << pm->lg) << pm->block_lg);
    uint32_t hi = pm->count + ((((most + block - 1) >> pm->block_lg) << pm->lg) << pm->block_lg);
    vec32_t gaps = {0}, moved_from = {0}, movers = {0}; /* moved_from[g] goes to gaps[g] */
    for (uint32_t e = lo; e < hi; e++) {
        uint32_t rel = e - pm->count, b = rel >> pm->block_lg;
        uint32_t p = b & ((1u << pm->lg) - 1),
                 j = ((b >> pm->lg) << pm->block_lg) | (rel & (block - 1));
        int used = j < pm->part[p].fresh.n;
        if (!used && e < end) {
            vec_push(&gaps, e);
        } else if (used && e >= end) {
            vec_push(&moved_from, e);
            if (pm->ent)
                vec_push(&movers, pm->part[p].fresh.v[j]); /* its shard entry */
        }
    }
    for (uint32_t g = 0; g < moved_from.n; g++) {
        op_users_move(&st->users, moved_from.v[g], gaps.v[g]);
        if (pm->ent)
            pm->ent[movers.v[g]] = gaps.v[g];
    }
    op_users_set_count(&st->users, end);
    for (int p = 0; moved_from.n && p < parts; p++) {
        vec32_t *c = &pm->part[p].cand;
        for (uint32_t i = 0; i < c->n; i++) {
            if (c->v[i] < end)
                continue;
            uint32_t l = 0, h = moved_from.n; /* find it among the moved (ascending) */
            while (l < h) {
                uint32_t mid = (l + h) / 2;
                if (moved_from.v[mid] < c->v[i])
                    l = mid + 1;
                else
                    h = mid;
            }
            c->v[i] = gaps.v[l];
        }
    }
    free(gaps.v);
    free(movers.v);
    free(moved_from.v);
}

static void merge_users_par(op_state_t *st, const op_users_t *delta, uint32_t *ent, int parts)
{
    par_merge_t pm = {.users = &st->users,
                      .delta = delta,
                      .ent = ent,
                      .root = op_users_amount(&st->users, st->heap[0]),
                      .count = st->users.count,
                      .lg = __builtin_ctz((unsigned)parts),
                      .block_lg = PAR_BLOCK_LG};
    /* Room for every part's numbers. A part's share of the users is 1/parts
     * give or take a little (the hash); the quota leaves it an eighth more,
     * but not so much that the index would have to grow for numbers that
     * the users, all new, could not use up. Whole blocks; a merge too small
     * for several blocks a part numbers one entry a block. */
    uint32_t n = delta->count, share = (n + (uint32_t)parts - 1) / (uint32_t)parts;
    uint32_t quota = share + share / 8 + 64;
    if ((uint64_t)pm.count + n < st->users.cap &&
        (uint64_t)pm.count + (uint64_t)quota * (uint32_t)parts >= st->users.cap)
        quota = (st->users.cap - 1 - pm.count) / (uint32_t)parts;
    if (quota < 4u << PAR_BLOCK_LG)
        pm.block_lg = 0;
    pm.quota = quota >> pm.block_lg << pm.block_lg;
    op_users_reserve_parts(&st->users, pm.count + pm.quota * (uint32_t)parts);
    pm.slices = op_fanout_width(st->fanout) * PAR_THREAD_SLICES;
    op_fanout_run(st->fanout, pm.slices, par_count, &pm);
    for (uint32_t p = 0, sum = 0; p < (uint32_t)parts; p++) {
        pm.part_at[p] = sum;
        for (int t = 0; t < pm.slices; t++) {
            pm.slice_at[t][p] = sum;
            sum += pm.slice_n[t][p];
        }
        pm.part_n[p] = sum - pm.part_at[p];
    }
    pm.by_part = op_xmalloc((size_t)(n ? n : 1) * sizeof(*pm.by_part));
    op_fanout_run(st->fanout, pm.slices, par_place, &pm);
    op_fanout_run(st->fanout, parts, par_merge_part, &pm);
    free(pm.by_part);
    st->team_merges++;
    par_close_gaps(st, &pm, parts);
    /* The parts raised the amounts of users in the heap without moving them:
     * its order is rebuilt before anything is offered to it. */
    for (uint32_t i = st->heap_len / 2; i-- > 0;)
        heap_down(st, i);
    for (int p = 0; p < parts; p++)
        for (uint32_t j = 0; j < pm.part[p].alone.n; j++) {
            uint32_t d = pm.part[p].alone.v[j];
            uint32_t e = merge_user(st, delta, d);
            if (ent)
                ent[d] = e;
        }
    for (int p = 0; p < parts; p++) {
        par_part_t *pt = &pm.part[p];
        for (uint32_t j = 0; j < pt->cand.n; j++)
            topk_offer(st, pt->cand.v[j]);
        free(pt->fresh.v);
        free(pt->alone.v);
        free(pt->cand.v);
    }
}

/* Everyone of a table that the state has just taken whole (the first of
 * a run's final shards at 0.8 M users: 3-8 ms on the merger alone) offered
 * to the empty top-K on the team: each slice keeps the amounts of its best
 * K so far in a small min-heap and lists every user at or above its root
 * when seen; the merger then offers the lists. Exact: a user among the
 * table's top K is among its slice's top K, so at or above that slice's
 * root when it was seen (the root only rises); topk_offer ranks the
 * candidates as it ranks everyone. */
typedef struct par_offer {
    const op_users_t *users;
    int slices;
    vec32_t cand[PAR_MAX_SLICES]; /* slice t's, written by the thread running it */
} par_offer_t;

static void par_offer_slice(void *arg, int t)
{
    par_offer_t *po = arg;
    const op_users_t *u = po->users;
    uint32_t lo, hi;
    par_slice(u->count, po->slices, t, &lo, &hi);
    int64_t best[OP_STATE_TOPK]; /* a min-heap */
    uint32_t len = 0;
    for (uint32_t e = lo; e < hi; e++) {
        int64_t a = op_users_amount(u, e);
        if (len == OP_STATE_TOPK && a < best[0])
            continue;
        vec_push(&po->cand[t], e);
        uint32_t i = 0;
        if (len < OP_STATE_TOPK) { /* up from the new leaf */
            for (i = len++; i > 0 && best[(i - 1) / 2] > a; i = (i - 1) / 2)
                best[i] = best[(i - 1) / 2];
        } else { /* down from the root it replaces */
            for (;;) {
                uint32_t c = 2 * i + 1;
                if (c >= len)
                    break;
                if (c + 1 < len && best[c + 1] < best[c])
                    c++;
                if (best[c] >= a)
                    break;
                best[i] = best[c];
                i = c;
            }
        }
        best[i] = a;
    }
}

static void offer_all_par(op_state_t *st)
{
    par_offer_t po = {.users = &st->users,
                      .slices = op_fanout_width(st->fanout) * PAR_THREAD_SLICES};
    op_fanout_run(st->fanout, po.slices, par_offer_slice, &po);
    for (int t = 0; t < po.slices; t++) {
        for (uint32_t j = 0; j < po.cand[t].n; j++)
            topk_offer(st, po.cand[t].v[j]);
        free(po.cand[t].v);
    }
}

/* A shard's users into the state: a walk over the shard's dense entries,
 * with the state's index line of the user PREFETCH_AHEAD entries ahead
 * and its entry half as far ahead already on their way from memory, so
 * that a tick of a million users costs a million overlapping misses, not a
 * million waits. The shard's stored hashes are reused: no name is hashed.
 * With calendar days, the users' figures are queued for their entries of
 * the shard's base day (queue_user_days). take: the shard's own table, when
 * the caller lets the state have it. Returns 1 when the state took it. */
static int merge_users(op_state_t *st, const op_shard_t *s, op_users_t *take)
{
    const op_users_t *delta = &s->users;
    uint32_t n = delta->count;
    int days = s->day >= 0 && !s->days_exact;
    int base_rw = days && day_is_final(st, (uint32_t)s->day);
    if (!st->users.count) {
        /* Into an empty state (the first tick, a replay): the shard's table
         * itself, or a copy (same entry numbers either way), then one pass
         * offering everyone to the top-K. Taking it saves the copy and the
         * first touch of as much new memory (~10 ms a million users). */
        if (take) {
            op_users_t empty = st->users;
            st->users = *take;
            *take = empty;
        } else {
            op_users_copy(&st->users, delta);
        }
        if (st->fanout && n >= st->par_min_users)
            offer_all_par(st);
        else
            for (uint32_t e = 0; e < n; e++)
                topk_offer(st, e);
        if (days)
            queue_user_days(st, s, &st->users, NULL, base_rw);
        return take != NULL;
    }
    uint32_t *ent = days ? op_xmalloc((size_t)(n ? n : 1) * sizeof(*ent)) : NULL;
    int parts = par_parts(st, n);
    if (parts > 1) {
        merge_users_par(st, delta, ent, parts);
    } else {
        for (uint32_t d = 0; d < n; d++) {
            if (d + PREFETCH_AHEAD < n)
                op_users_prefetch(&st->users, op_users_hash_of(delta, d + PREFETCH_AHEAD));
            if (d + PREFETCH_AHEAD / 2 < n)
                op_users_prefetch_entry(&st->users,
                                        op_users_hash_of(delta, d + PREFETCH_AHEAD / 2));
            uint32_t e = merge_user(st, delta, d);
            if (ent)
                ent[d] = e;
        }
    }
    if (ent)
        queue_user_days(st, s, delta, ent, base_rw);
    return 0;
}

/* A dimension's figures per day (shard.h): the totals count in the base
 * day, each off-day entry moves its share from the base day to its own. */
static void merge_dim_days(op_state_t *st, op_ktable_t *days, op_ktable_t *rw,
                           const op_ktable_t *total, const op_ktable_t *off, uint32_t base,
                           int exact)
{
    int base_rw = day_is_final(st, base);
    for (uint32_t i = 0; !exact && i < total->cap; i++) {
        if (!op_ktable_used(total, i))
            continue;
        uint64_t k = op_ktable_pair(base, op_ktable_key(total, i));
        op_tally_add(op_ktable_upsert(days, k), &total->vals[i]);
        if (base_rw)
            op_ktable_upsert(rw, k);
    }
    for (uint32_t i = 0; i < off->cap; i++) {
        if (!op_ktable_used(off, i))
            continue;
        uint64_t k = op_ktable_key(off, i);
        op_tally_add(op_ktable_upsert(days, k), &off->vals[i]);
        if (!exact)
            op_tally_sub(op_ktable_upsert(days, op_ktable_pair(base, op_ktable_pair_dim(k))),
                         &off->vals[i]);
        if (day_is_final(st, (uint32_t)op_ktable_pair_bucket(k)))
            op_ktable_upsert(rw, k);
    }
}

/* taken: merge_users took the shard's table, whose entries are now the
 * state's under the same numbers. */
static void merge_days(op_state_t *st, const op_shard_t *s, int taken)
{
    if (s->day < 0)
        return;
    uint32_t base = (uint32_t)s->day;
    merge_dim_days(st, &st->brand_days, &st->rewrite.brand_days, &s->brands, &s->brand_offday, base,
                   s->days_exact);
    merge_dim_days(st, &st->gender_days, &st->rewrite.gender_days, &s->genders, &s->gender_offday,
                   base, s->days_exact);
    const op_ktable_t *off = &s->user_offday;
    for (uint32_t i = 0; i < off->cap; i++) {
        if (!op_ktable_used(off, i))
            continue;
        uint64_t k = op_ktable_key(off, i);
        uint32_t e = taken ? (uint32_t)k : op_shard_user_in(&st->users, &s->users, (uint32_t)k);
        uint32_t day = (uint32_t)(k >> 32);
        op_tally_add(op_ktable_upsert(&st->user_days, op_shard_user_day(day, e)), &off->vals[i]);
        if (!s->days_exact)
            op_tally_sub(op_ktable_upsert(&st->user_days, op_shard_user_day(base, e)),
                         &off->vals[i]);
        if (day_is_final(st, day))
            op_ktable_upsert(&st->rewrite.user_days, op_shard_user_day(day, e));
    }
}

/* Adds to rev what delta brings to windows the last published watermark
 * had closed. paired: keys are op_ktable_pair(bucket, id). A shard holds a
 * handful of windows, so the walk is cheap. */
static void note_revisions(op_ktable_t *rev, const op_ktable_t *delta, int paired, int64_t len_ms,
                           int64_t watermark_ms)
{
    if (watermark_ms == INT64_MIN || delta->count == 0)
        return;
    for (uint32_t i = 0; i < delta->cap; i++) {
        if (!op_ktable_used(delta, i))
            continue;
        uint64_t k = op_ktable_key(delta, i);
        uint64_t bucket = paired ? op_ktable_pair_bucket(k) : k;
        if ((int64_t)(bucket + 1) * len_ms <= watermark_ms)
            op_tally_add(op_ktable_upsert(rev, bucket), &delta->vals[i]);
    }
}

static void merge(op_state_t *st, const op_shard_t *s, op_users_t *take, int64_t now_ms)
{
    note_revisions(&st->revised_minutes, &s->minutes, 0, OP_MINUTE_MS, st->watermark_ms);
    note_revisions(&st->revised_slots, &s->gslots, 1, OP_SLOT_MS, st->watermark_ms);
    note_rewrite(st, &st->rewrite.minutes, &s->minutes, OP_MINUTE_MS, 0);
    note_rewrite(st, &st->rewrite.catmin, &s->catmin, OP_MINUTE_MS, 1);
    note_rewrite(st, &st->rewrite.gslots, &s->gslots, OP_SLOT_MS, 1);
    op_tally_add(&st->totals, &s->totals);
    op_ktable_add(&st->minutes, &s->minutes);
    op_ktable_add(&st->catmin, &s->catmin);
    op_ktable_add(&st->brands, &s->brands);
    op_ktable_add(&st->genders, &s->genders);
    op_ktable_add(&st->gslots, &s->gslots);
    merge_days(st, s, merge_users(st, s, take));
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
        gp->lost += sp->lost;
        st->lost += sp->lost;
        if (sp->records) {
            gp->last_active_ms = now_ms;
            gp->finished = 0;
        }
        if (s->worker >= 0)
            gp->worker = s->worker;
        if (p + 1 > st->nparts_seen)
            st->nparts_seen = p + 1;
    }
    if (s->last && s->worker >= 0)
        for (int p = 0; p < st->nparts_seen; p++)
            if (st->parts[p].worker == s->worker)
                st->parts[p].finished = 1;
}

void op_state_merge(op_state_t *st, const op_shard_t *s, int64_t now_ms)
{
    merge(st, s, NULL, now_ms);
}

void op_state_merge_taking(op_state_t *st, op_shard_t *s, int64_t now_ms)
{
    merge(st, s, &s->users, now_ms);
}

void op_state_advance_watermark(op_state_t *st, int64_t lateness_ms, int64_t idle_ms,
                                int64_t now_ms, int at_end)
{
    int64_t wm = INT64_MAX;
    for (int p = 0; !at_end && p < st->nparts_seen; p++) {
        const op_state_part_t *gp = &st->parts[p];
        if (gp->max_event_ms == INT64_MIN || gp->finished || now_ms - gp->last_active_ms > idle_ms)
            continue;
        if (gp->max_event_ms - lateness_ms < wm)
            wm = gp->max_event_ms - lateness_ms;
    }
    if (wm == INT64_MAX) {
        /* Nothing holds it back: every partition is idle or finished (a
         * replayed file whose chunks ended, a topic nobody writes to now). */
        if (st->max_event_ms == INT64_MIN)
            return;
        wm = st->max_event_ms - lateness_ms;
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
    op_ktable_drop_below(&st->revised_minutes, min_minute);
    op_ktable_drop_below(&st->revised_slots, min_slot);
    /* The day tables only when a day leaves: the users' is large. */
    uint32_t min_day = op_shard_day(cutoff, st->tz_ms);
    if (min_day == st->days_kept_from)
        return;
    st->days_kept_from = min_day;
    op_ktable_drop_below(&st->brand_days, op_ktable_pair(min_day, 0));
    op_ktable_drop_below(&st->gender_days, op_ktable_pair(min_day, 0));
}

void op_state_evict_user_days(op_state_t *st, int64_t retention_ms)
{
    if (st->watermark_ms == INT64_MIN || st->watermark_ms - retention_ms <= 0)
        return;
    uint32_t min_day = op_shard_day(st->watermark_ms - retention_ms, st->tz_ms);
    if (min_day == st->user_days_kept_from)
        return;
    st->user_days_kept_from = min_day;
    op_state_settle_days(st); /* or what waits would bring the old days back */
    op_ktable_drop_below(&st->user_days, op_shard_user_day(min_day, 0));
}

op_window_state_t op_state_window(const op_state_t *st, int64_t start_ms, int64_t len_ms,
                                  int all_closed)
{
    if (!all_closed && (st->watermark_ms == INT64_MIN || start_ms + len_ms > st->watermark_ms))
        return OP_WINDOW_OPEN;
    const op_ktable_t *rev = len_ms == OP_SLOT_MS ? &st->revised_slots : &st->revised_minutes;
    return op_ktable_find(rev, (uint64_t)(start_ms / len_ms)) ? OP_WINDOW_REVISED : OP_WINDOW_FINAL;
}

void op_state_note_tick(op_state_t *st, int64_t now_ms)
{
    if (st->rate_n == OP_STATE_RATE_SAMPLES) {
        st->rate_first = (st->rate_first + 1) % OP_STATE_RATE_SAMPLES;
        st->rate_n--;
    }
    st->rate[(st->rate_first + st->rate_n++) % OP_STATE_RATE_SAMPLES] =
        (op_state_sample_t){.at_ms = now_ms, .orders = st->totals.orders};
    /* Keep the newest sample that is at least the window old, and after it. */
    while (st->rate_n > 2) {
        const op_state_sample_t *second = &st->rate[(st->rate_first + 1) % OP_STATE_RATE_SAMPLES];
        if (now_ms - second->at_ms < OP_STATE_RATE_WINDOW_MS)
            break;
        st->rate_first = (st->rate_first + 1) % OP_STATE_RATE_SAMPLES;
        st->rate_n--;
    }
}

int64_t op_state_rate_centi(const op_state_t *st)
{
    if (st->rate_n < 2)
        return 0;
    const op_state_sample_t *a = &st->rate[st->rate_first];
    const op_state_sample_t *b =
        &st->rate[(st->rate_first + st->rate_n - 1) % OP_STATE_RATE_SAMPLES];
    if (b->at_ms <= a->at_ms || b->orders < a->orders)
        return 0;
    return (b->orders - a->orders) * 100000 / (b->at_ms - a->at_ms);
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
