/* worker.h — a pinned thread that consumes, parses and aggregates orders.
 *
 * Each worker reads its own input (source.h), parses every record
 * (parse.h), and adds it to its active shard (shard.h): no locks, no shared
 * writes and no atomics per order. Once per batch it checks the merger's
 * epoch and, on a new tick, swaps its shard (merger.h). Rejected records go
 * to the dead letters with their reason.
 *
 * Owner: main creates and joins workers; everything inside an op_worker_t
 * except `stop` belongs to the worker thread while it runs.
 */
#ifndef OP_WORKER_H
#define OP_WORKER_H

#include <pthread.h>
#include <stdint.h>

#include "engine/io/deadletter.h"
#include "engine/intern.h"
#include "engine/claims.h"
#include "engine/merger.h"
#include "engine/parse.h"
#include "engine/source.h"

typedef struct op_worker_conf {
    int id;
    int cpu; /* pin to this CPU, or -1 */
    op_input_t *input;
    op_merger_t *merger;
    op_claims_t *claims; /* with Redis: restarts a partition's lateness at each claim */
    op_intern_t *dict;
    op_deadletter_t *dead_letters; /* may be NULL */
    int64_t lateness_ms;
    int late_drop;       /* --late drop: late orders stay out of the windows */
    int32_t tz_offset_s; /* for orderTime, and the calendar days */
    int days;            /* --archive: note calendar days in the shards (shard.h) */
} op_worker_conf_t;

typedef struct op_worker op_worker_t;

int op_worker_create(op_worker_t **out, const op_worker_conf_t *conf);
int op_worker_start(op_worker_t *w);
/* Asks the worker to return at its next batch boundary. Any thread. */
void op_worker_stop(op_worker_t *w);
void op_worker_join(op_worker_t *w);
void op_worker_destroy(op_worker_t *w);

#endif
