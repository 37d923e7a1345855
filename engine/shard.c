/* shard.c — lifetime of a worker's per-tick aggregates (see shard.h).
 *
 * The adding itself is inlined in the worker's loop; this file only creates,
 * clears and names things, so that the merger and the worker agree on them.
 */
#include "engine/shard.h"

#include <stdlib.h>
#include <string.h>

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
    for (int w = 0; w < OP_SOURCE_MAX_PARTITIONS / 64; w++) {
        for (uint64_t bits = s->touched[w]; bits; bits &= bits - 1) {
            int p = w * 64 + __builtin_ctzll(bits);
            s->parts[p].records = 0;
        }
        s->touched[w] = 0;
    }
    s->last = 0;
}

const char *op_shard_bad_reason_name(int reason)
{
    if (reason == OP_BAD_TOO_MANY_NAMES)
        return "too_many_names";
    return op_parse_reason_name(reason);
}
