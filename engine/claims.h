/* claims.h — the partitions this process owns, as Redis knows them.
 *
 * With Redis, a partition is consumed only after this process has claimed it
 * there (engine/io/redis.h): the claim makes it the owner (epoch), says where
 * the partition resumes (the next offset Redis holds) and what its largest
 * event time was at that offset, so that lateness decisions continue exactly
 * as if nothing had happened. Three threads meet here:
 *
 *   field             written by                       read by
 *   epoch[p]          claimer (the source's poll       the Redis sink (commit fences)
 *                     thread, or main at open)
 *   committed[p]      claimer; the sink after each     the sink (fences), the claimer
 *                     commit                            (was p moved on by someone else?)
 *   consumed[p]       the merger (after each tick)     the claimer (resume after what is
 *                                                       pending, never re-read it)
 *   reset_max[p],     claimer, then gen[p] (release)   worker of p (acquire gen once per
 *   gen[p]                                              run of p's records): on a new gen it
 *                                                       restarts p's lateness from reset_max
 *
 * Every field is an __atomic 64-bit value; gen[p] orders reset_max[p].
 * Without Redis nothing is claimed and every gen stays 0.
 */
#ifndef OP_CLAIMS_H
#define OP_CLAIMS_H

#include <stdint.h>

#include "engine/source.h"

typedef struct op_claims {
    int64_t epoch[OP_SOURCE_MAX_PARTITIONS];     /* 0: not claimed */
    int64_t committed[OP_SOURCE_MAX_PARTITIONS]; /* next offset Redis holds, -1: none */
    int64_t consumed[OP_SOURCE_MAX_PARTITIONS];  /* next offset after what this process has
                                                    merged (committed or pending), -1: none */
    int64_t reset_max[OP_SOURCE_MAX_PARTITIONS];
    uint64_t gen[OP_SOURCE_MAX_PARTITIONS];
} op_claims_t;

void op_claims_init(op_claims_t *c);

static inline int64_t op_claims_get(const int64_t *field)
{
    return __atomic_load_n(field, __ATOMIC_ACQUIRE);
}
static inline void op_claims_set(int64_t *field, int64_t v)
{
    __atomic_store_n(field, v, __ATOMIC_RELEASE);
}

/* The claimer tells the worker of p to restart p's lateness from max_event_ms
 * (INT64_MIN: no event seen). */
void op_claims_reset_lateness(op_claims_t *c, int32_t p, int64_t max_event_ms);

#endif
