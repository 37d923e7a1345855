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
    op_ktable_init(&st->revised_minutes);
    op_ktable_init(&st->revised_slots);
    op_users_init(&st->users);
    for (int p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++) {
        st->parts[p].max_event_ms = INT64_MIN;
        st->parts[p].next_offset = -1;
        st->parts[p].worker = -1;
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
    op_ktable_dispose(&st->revised_minutes);
    op_ktable_dispose(&st->revised_slots);
    op_users_dispose(&st->users);
}

int op_state_user_cmp(const op_state_t *st, uint32_t a, uint32_t b)
{
    const op_user_t *ua = &st->users.ent[a], *ub = &st->users.ent[b];
    if (ua->amount != ub->amount)
        return ua->amount > ub->amount ? -1 : 1;
    size_t la, lb;
    const char *na = op_users_name(&st->users, a, &la);
    const char *nb = op_users_name(&st->users, b, &lb);
    int c = memcmp(na, nb, la < lb ? la : lb);
    if (c)
        return c;
    return la < lb ? -1 : la > lb;
}

/* The heap is a min-heap of rank: its root is the worst of the top K. */
static int heap_worse(const op_state_t *st, uint32_t a, uint32_t b)
{
    return op_state_user_cmp(st, a, b) > 0;
}

static void heap_set(op_state_t *st, uint32_t pos, uint32_t e)
{
    st->heap[pos] = e;
    st->users.ent[e].heap_pos = (int32_t)pos;
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
    int32_t pos = st->users.ent[e].heap_pos;
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
    st->users.ent[st->heap[0]].heap_pos = -1;
    heap_set(st, 0, e);
    heap_down(st, 0);
}

void op_state_add_user(op_state_t *st, const char *name, size_t len, int64_t amount, int64_t orders)
{
    uint32_t e = op_users_upsert(&st->users, name, len, op_hash_bytes(name, len));
    st->users.ent[e].amount += amount;
    st->users.ent[e].orders += (uint32_t)orders;
    topk_offer(st, e);
}

static void merge_users(op_state_t *st, const op_users_t *delta)
{
    for (uint32_t d = 0; d < delta->count; d++) {
        size_t len;
        const char *name = op_users_name(delta, d, &len);
        op_state_add_user(st, name, len, delta->ent[d].amount, delta->ent[d].orders);
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

void op_state_merge(op_state_t *st, const op_shard_t *s, int64_t now_ms)
{
    note_revisions(&st->revised_minutes, &s->minutes, 0, OP_MINUTE_MS, st->watermark_ms);
    note_revisions(&st->revised_slots, &s->gslots, 1, OP_SLOT_MS, st->watermark_ms);
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

void op_state_copy_progress(op_state_t *dst, const op_state_t *src)
{
    dst->watermark_ms = src->watermark_ms;
    dst->max_event_ms = src->max_event_ms;
    op_ktable_clear(&dst->revised_minutes);
    op_ktable_clear(&dst->revised_slots);
    op_ktable_add(&dst->revised_minutes, &src->revised_minutes);
    op_ktable_add(&dst->revised_slots, &src->revised_slots);
    memcpy(dst->rate, src->rate, sizeof(dst->rate));
    dst->rate_first = src->rate_first;
    dst->rate_n = src->rate_n;
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
