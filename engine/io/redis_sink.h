/* redis_sink.h — bringing the engine's ticks to Redis, exactly once, without
 * ever making the merger wait (layout 2, docs/REDIS.md).
 *
 * Two halves, one per thread:
 *
 *  - the merger's half (functions marked "merger thread"): every shard the
 *    merger adds to its state is also encoded into the pending deltas
 *    (engine/io/delta.h) and marks what it touched in the readable view;
 *    whenever the sink thread is free, the pending deltas, the partitions'
 *    progress and the current values of what the view needs become one
 *    package, handed over whole;
 *  - the sink thread: stages the package's blobs, commits it (one atomic
 *    Redis function call), reads other engines' commits from the log and
 *    hands them back to be folded into the state, compacts the log.
 *
 * The state the merger publishes is therefore always
 *     (the log up to folded_pos) + (the package in flight) + (pending)
 * and a package is built only from a state that includes everything of the
 * log the sink has read, so that its absolute view values are exactly what
 * the log holds once it commits. When the log moved on in between (another
 * engine committed), the commit is refused as BEHIND: the sink hands back
 * the new entries, then the package, which the merger rebuilds on top.
 *
 * Synchronisation:
 *
 *   what                    written by            read by         how
 *   submitted package       merger                sink            mutex mu + cond
 *   early chunks (a big     merger (links them)   sink (stages,   mutex mu + cond; a chunk's
 *   tick's full chunks)                           takes them)     bytes are fixed before it is
 *                                                                 linked, the sink's alone after
 *   events (results,        sink                  merger          mutex mu; the merger's
 *   others' deltas)                                               wake callback rings it
 *   claims (owner epochs,   see engine/claims.h
 *   offsets)
 *   lag figures (stats)     merger                any thread      __atomic
 *   last error text         sink                  any thread      mutex mu
 *
 * A package belongs to exactly one thread at a time: the merger builds it,
 * the sink owns it from submit until it hands it back in an event. A tick
 * of many users fills several chunks of pending deltas; each full one goes
 * to the sink thread at once, to be staged while the merger encodes the
 * rest (a million users: 16 MiB, which would otherwise be encoded first and
 * only then sent). The chunks are numbered; the package built next takes
 * those up to its number, never a later tick's.
 */
#ifndef OP_REDIS_SINK_H
#define OP_REDIS_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "engine/claims.h"
#include "engine/intern.h"
#include "engine/io/redis.h"
#include "engine/shard.h"
#include "engine/snapshot.h"
#include "engine/state.h"

typedef struct op_redis_sink_conf {
    op_redis_conf_t redis;
    const char *writer;  /* this process's writer id, unique per run */
    const char *source;  /* partition fields are "<source>:<p>" */
    op_intern_t *dict;   /* dimension names */
    op_claims_t *claims; /* the partitions this process owns */
    int64_t retention_ms;
    int64_t tail_ms;           /* how often an idle sink reads other engines' commits */
    int view_budget;           /* readable-view items per commit (bounds each commit's time) */
    int64_t min_compact_bytes; /* compact once the log's deltas pass max(this, snapshot) */
    /* Called by the sink thread when it has something for the merger (rings
     * its bell). */
    void (*wake)(void *arg);
    void *wake_arg;
} op_redis_sink_conf_t;

typedef struct op_redis_sink op_redis_sink_t;

/* Main thread: connects, opens the state (op_redis_open). */
int op_redis_sink_create(op_redis_sink_t **out, const op_redis_sink_conf_t *conf, char *err,
                         size_t errlen);
/* Main thread, before start: folds the whole log into st (an empty state). */
int op_redis_sink_load(op_redis_sink_t *s, op_state_t *st, char *err, size_t errlen);
int op_redis_sink_start(op_redis_sink_t *s);
/* Stops the thread (a package in flight stays uncommitted: a restart reads
 * its records again). */
void op_redis_sink_stop(op_redis_sink_t *s);
void op_redis_sink_destroy(op_redis_sink_t *s);

/* --- merger thread ------------------------------------------------------------ */

/* A shard of this process, just added to the state: its deltas become pending. */
void op_redis_sink_add_shard(op_redis_sink_t *s, const op_shard_t *sh, uint64_t tick);

/* What the merger must do after the sink's events. */
typedef enum op_redis_sink_need {
    OP_REDIS_SINK_RUN = 0, /* nothing special */
    OP_REDIS_SINK_REWIND,  /* Redis and this process disagree: reload from Redis */
    OP_REDIS_SINK_STOP,    /* the state in Redis is gone or replaced: stop */
} op_redis_sink_need_t;

/* Takes the sink's events: other engines' deltas are folded into st here
 * (op_state_merge), results are booked. Then, if the sink is free and there
 * is something to write, builds the next package from st (after the
 * watermark and eviction of this tick) and submits it. */
op_redis_sink_need_t op_redis_sink_tick(op_redis_sink_t *s, op_state_t *st, uint64_t tick,
                                        int64_t now_ms);

/* Everything of this process up to tick is committed (--once's end, syncs). */
int op_redis_sink_committed_through(const op_redis_sink_t *s, uint64_t tick);
/* Nothing pending, nothing in flight, the view written. */
int op_redis_sink_drained(const op_redis_sink_t *s);

/* --- any thread ---------------------------------------------------------------- */

typedef struct op_redis_sink_lag {
    int64_t records;   /* user records pending or in flight */
    int64_t ticks;     /* ticks not yet committed */
    int64_t oldest_ms; /* age of the oldest uncommitted delta (0: none) */
    int ok;            /* the last attempt reached Redis and was accepted */
    uint64_t commits;  /* commits so far */
    uint64_t rewinds_needed;
} op_redis_sink_lag_t;

void op_redis_sink_lag(const op_redis_sink_t *s, int64_t now_ms, op_redis_sink_lag_t *out);
/* Copies the histogram of commit times. */
void op_redis_sink_commit_hist(op_redis_sink_t *s, op_hist_t *out);
/* The last error (empty when the last attempt succeeded). */
void op_redis_sink_last_error(op_redis_sink_t *s, char *buf, size_t len);
/* Why a rewind or stop was asked for. */
void op_redis_sink_reason(op_redis_sink_t *s, char *buf, size_t len);

/* How far this engine has read the log (main thread, before start or after
 * stop): what a rewind compares with what Redis holds. */
int64_t op_redis_sink_read_pos(const op_redis_sink_t *s);

/* The generation id of the state the sink opened (for other connections). */
const char *op_redis_sink_generation(const op_redis_sink_t *s);

/* The Redis partition field of p: "<source>:<p>". */
void op_redis_sink_field(const char *source, int32_t p, char *buf, size_t len);

#endif
