/* history.h — GET /api/v1/history/...: archived windows read back from
 * MariaDB (engine/io/archive.h), for ranges the engine no longer holds.
 *
 * An HTTP thread never waits for MariaDB. A request becomes a job on a
 * bounded queue; one of a few reader threads, each with its own connection,
 * runs the query, renders the JSON and sends the job back to the HTTP
 * thread that owns the request, through that thread's h2o message queue;
 * that thread answers, or drops the answer if the client has gone.
 *
 *   field               written by                 read by         how
 *   queue               HTTP threads (submit),     readers         mutex + condvar
 *                       destroy
 *   kind, from, to      HTTP thread, before submit reader          the queue's mutex
 *   status, body        reader, before sending     HTTP thread     h2o message queue (mutex)
 *   req, anchor         HTTP thread only           -               -
 *
 * Out of memory: setup returns -ENOMEM; per request (reader, HTTP thread)
 * it aborts, as elsewhere on the serving path.
 */
#ifndef OP_HTTP_HISTORY_H
#define OP_HTTP_HISTORY_H

#include <h2o.h>
#include <stdint.h>

#include "engine/io/archive.h"
#include "engine/jbuf.h"

typedef enum op_history_kind {
    OP_HISTORY_MINUTES = 0,  /* op_minute, rows as the snapshot's "minutes" */
    OP_HISTORY_CATEGORIES,   /* op_category_minute, as "categories" */
    OP_HISTORY_GENDER_SLOTS, /* op_gender_slot, as "gender_slots" */
} op_history_kind_t;

/* The widest range each kind answers, in ms. */
int64_t op_history_max_range_ms(op_history_kind_t kind);

typedef struct op_history_job {
    h2o_multithread_message_t msg;        /* how the answer goes back */
    h2o_multithread_receiver_t *reply_to; /* the owning HTTP thread's receiver */
    op_history_kind_t kind;
    int64_t from_ms, to_ms; /* windows starting in [from, to) */
    /* The reader's answer: */
    int status; /* 200, or 503 (MariaDB unreachable, or shutting down) */
    op_jbuf_t body;
    /* The HTTP thread's: */
    h2o_req_t *req;                 /* NULL once the request has gone */
    struct op_history_job **anchor; /* in req's pool: cleared with it */
} op_history_job_t;

typedef struct op_history op_history_t;

/* Starts nthreads readers (they connect on first use). Main thread. */
int op_history_create(op_history_t **out, const op_archive_db_t *db, int nthreads, char *err,
                      size_t errlen);

/* Queues a job (ownership moves until it comes back through reply_to).
 * 0, or -EBUSY when the queue is full (the caller keeps the job). Any
 * thread. */
int op_history_submit(op_history_t *h, op_history_job_t *job);

/* Answers the queued jobs with 503, waits for the readers' current ones
 * and frees everything. Main thread, while the HTTP threads still run (so
 * that they receive the answers). h may be NULL. */
void op_history_destroy(op_history_t *h);

#endif
