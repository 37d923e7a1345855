/* shard.c — lifetime of a worker's per-tick aggregates (see shard.h).
 *
 * The adding itself is inlined in the worker's loop; this file only creates,
 * clears and names things, so that the merger and the worker agree on them.
 */
#include "engine/shard.h"

#include <stdlib.h>
#include <string.h>

#include "engine/hash.h"
#include "engine/util.h"

op_shard_t *op_shard_create(int worker)
{
    op_shard_t *s = op_xcalloc(1, sizeof(*s));
    cds_wfcq_node_init(&s->qnode);
    s->worker = worker;
    op_ktable_init(&s->minutes);
    op_ktable_init(&s->catmin);
    op_ktable_init(&s->brands);
    op_ktable_init(&s->genders);
    op_ktable_init(&s->gslots);
    op_users_init(&s->users);
    op_ktable_init(&s->brand_offday);
    op_ktable_init(&s->gender_offday);
    op_ktable_init(&s->user_offday);
    s->day = -1;
    s->day_start_ms = INT64_MIN;
    return s;
}

void op_shard_destroy(op_shard_t *s)
{
    if (!s)
        return;
    op_ktable_dispose(&s->minutes);
    op_ktable_dispose(&s->catmin);
    op_ktable_dispose(&s->brands);
    op_ktable_dispose(&s->genders);
    op_ktable_dispose(&s->gslots);
    op_users_dispose(&s->users);
    op_ktable_dispose(&s->brand_offday);
    op_ktable_dispose(&s->gender_offday);
    op_ktable_dispose(&s->user_offday);
    free(s);
}

void op_shard_clear(op_shard_t *s)
{
    memset(&s->totals, 0, sizeof(s->totals));
    op_ktable_clear(&s->minutes);
    op_ktable_clear(&s->catmin);
    op_ktable_clear(&s->brands);
    op_ktable_clear(&s->genders);
    op_ktable_clear(&s->gslots);
    op_users_clear(&s->users);
    s->days_exact = 0;
    op_ktable_clear(&s->brand_offday);
    op_ktable_clear(&s->gender_offday);
    op_ktable_clear(&s->user_offday);
    s->day = -1;
    s->day_start_ms = INT64_MIN;
    memset(s->bad, 0, sizeof(s->bad));
    s->late = 0;
    s->dead_letter_errors = 0;
    for (int32_t p = op_shard_next_touched(s, 0); p >= 0; p = op_shard_next_touched(s, p + 1)) {
        s->parts[p].records = 0;
        s->parts[p].lost = 0;
    }
    memset(s->touched, 0, sizeof(s->touched));
    s->last = 0;
    s->ended_ms = 0;
}

/* The off-day entries of a dimension table (keys op_ktable_pair(day, id))
 * from src into dst. If src's base day is not dst's, src's base-day share
 * becomes an off-day entry of dst: total - src's off-day entries. */
static void add_offday(op_ktable_t *dst_off, const op_ktable_t *src_off,
                       const op_ktable_t *src_total, uint32_t src_day, int other_base)
{
    for (uint32_t i = 0; i < src_off->cap; i++) {
        if (!op_ktable_used(src_off, i))
            continue;
        uint64_t k = op_ktable_key(src_off, i);
        op_tally_add(op_ktable_upsert(dst_off, k), &src_off->vals[i]);
        if (other_base)
            op_tally_sub(op_ktable_upsert(dst_off, op_ktable_pair(src_day, op_ktable_pair_dim(k))),
                         &src_off->vals[i]);
    }
    for (uint32_t i = 0; other_base && i < src_total->cap; i++)
        if (op_ktable_used(src_total, i))
            op_tally_add(
                op_ktable_upsert(dst_off, op_ktable_pair(src_day, op_ktable_key(src_total, i))),
                &src_total->vals[i]);
}

/* Calendar days (see shard.h), after src's users were added to dst's. */
static void add_days(op_shard_t *dst, const op_shard_t *src)
{
    if (src->day < 0)
        return;
    if (dst->day < 0) {
        dst->day = src->day;
        dst->day_start_ms = src->day_start_ms;
    }
    uint32_t sday = (uint32_t)src->day;
    int other = src->day != dst->day;
    add_offday(&dst->brand_offday, &src->brand_offday, &src->brands, sday, other);
    add_offday(&dst->gender_offday, &src->gender_offday, &src->genders, sday, other);
    /* Users: the keys' entry numbers are src's; dst's are found by name. */
    const op_ktable_t *uo = &src->user_offday;
    for (uint32_t i = 0; i < uo->cap; i++) {
        if (!op_ktable_used(uo, i))
            continue;
        uint64_t k = op_ktable_key(uo, i);
        uint32_t d = op_shard_user_in(&dst->users, &src->users, (uint32_t)k);
        op_tally_add(op_ktable_upsert(&dst->user_offday, op_shard_user_day((uint32_t)(k >> 32), d)),
                     &uo->vals[i]);
        if (other)
            op_tally_sub(op_ktable_upsert(&dst->user_offday, op_shard_user_day(sday, d)),
                         &uo->vals[i]);
    }
    for (uint32_t e = 0; other && e < src->users.count; e++) {
        uint32_t d = op_shard_user_in(&dst->users, &src->users, e);
        op_tally_t *t = op_ktable_upsert(&dst->user_offday, op_shard_user_day(sday, d));
        t->orders += src->users.ent[e].orders;
        t->amount += src->users.ent[e].amount;
    }
}

void op_shard_add(op_shard_t *dst, const op_shard_t *src)
{
    op_tally_add(&dst->totals, &src->totals);
    op_ktable_add(&dst->minutes, &src->minutes);
    op_ktable_add(&dst->catmin, &src->catmin);
    op_ktable_add(&dst->brands, &src->brands);
    op_ktable_add(&dst->genders, &src->genders);
    op_ktable_add(&dst->gslots, &src->gslots);
    for (uint32_t e = 0; e < src->users.count; e++)
        (void)op_users_add_from(&dst->users, &src->users, e);
    add_days(dst, src);
    for (int r = 0; r < OP_BAD_REASON_COUNT; r++)
        dst->bad[r] += src->bad[r];
    dst->late += src->late;
    dst->dead_letter_errors += src->dead_letter_errors;
    for (int32_t p = op_shard_next_touched(src, 0); p >= 0; p = op_shard_next_touched(src, p + 1)) {
        int64_t records = op_shard_touched(dst, p) ? dst->parts[p].records : 0;
        int64_t lost = op_shard_touched(dst, p) ? dst->parts[p].lost : 0;
        dst->parts[p] = src->parts[p];
        dst->parts[p].records += records;
        dst->parts[p].lost += lost;
        dst->touched[p >> 6] |= 1ULL << (p & 63);
    }
}

const char *op_shard_bad_reason_name(int reason)
{
    if (reason == OP_BAD_TOO_MANY_NAMES)
        return "too_many_names";
    return op_parse_reason_name(reason);
}
