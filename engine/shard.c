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
    memset(s->bad, 0, sizeof(s->bad));
    s->late = 0;
    s->dead_letter_errors = 0;
    for (int32_t p = op_shard_next_touched(s, 0); p >= 0; p = op_shard_next_touched(s, p + 1))
        s->parts[p].records = 0;
    memset(s->touched, 0, sizeof(s->touched));
    s->last = 0;
}

void op_shard_add(op_shard_t *dst, const op_shard_t *src)
{
    op_tally_add(&dst->totals, &src->totals);
    op_ktable_add(&dst->minutes, &src->minutes);
    op_ktable_add(&dst->catmin, &src->catmin);
    op_ktable_add(&dst->brands, &src->brands);
    op_ktable_add(&dst->genders, &src->genders);
    op_ktable_add(&dst->gslots, &src->gslots);
    for (uint32_t e = 0; e < src->users.count; e++) {
        size_t len;
        const char *name = op_users_name(&src->users, e, &len);
        uint32_t d = op_users_upsert(&dst->users, name, len, op_users_hash_of(&src->users, e));
        op_users_add(&dst->users, d, op_users_amount(&src->users, e),
                     op_users_orders(&src->users, e));
    }
    for (int r = 0; r < OP_BAD_REASON_COUNT; r++)
        dst->bad[r] += src->bad[r];
    dst->late += src->late;
    dst->dead_letter_errors += src->dead_letter_errors;
    for (int32_t p = op_shard_next_touched(src, 0); p >= 0; p = op_shard_next_touched(src, p + 1)) {
        int64_t records = op_shard_touched(dst, p) ? dst->parts[p].records : 0;
        dst->parts[p] = src->parts[p];
        dst->parts[p].records += records;
        dst->touched[p >> 6] |= 1ULL << (p & 63);
    }
}

const char *op_shard_bad_reason_name(int reason)
{
    if (reason == OP_BAD_TOO_MANY_NAMES)
        return "too_many_names";
    return op_parse_reason_name(reason);
}
