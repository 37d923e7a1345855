/* claims.c — the partitions this process owns (see claims.h). */
#include "engine/claims.h"

void op_claims_init(op_claims_t *c)
{
    for (int p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++) {
        c->epoch[p] = 0;
        c->committed[p] = -1;
        c->consumed[p] = -1;
        c->reset_max[p] = INT64_MIN;
        c->gen[p] = 0;
    }
}

void op_claims_reset_lateness(op_claims_t *c, int32_t p, int64_t max_event_ms)
{
    __atomic_store_n(&c->reset_max[p], max_event_ms, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->gen[p], 1, __ATOMIC_RELEASE);
}
