/* merger.h — the tick clock, the shard hand-over, and the merger thread.
 *
 * Every tick the merger advances the epoch; each worker, at its next batch
 * boundary, hands its active shard over and continues with its spare. Once
 * every worker has handed over for the epoch, the merger has added all the
 * shards into its state (state.h), renders a snapshot (snapshot.h) and
 * publishes it with RCU. Merged shards are cleared and given back.
 *
 * Synchronisation (who touches what):
 *
 *   field            written by              read by            how
 *   epoch            merger                  workers            __atomic release / acquire,
 *                                                               one load per batch
 *   full queue       workers (enqueue)       merger (dequeue)   wfcqueue: wait-free enqueue,
 *                                                               single consumer
 *   free queue[i]    merger (enqueue)        worker i           wfcqueue, single consumer
 *   stop             main                    merger             __atomic
 *   state            merger only             -                  -
 *                    (and its team's helpers, inside op_fanout_run: a big
 *                    users' merge, fork-join, state.c)
 *   snapshots        merger (publish)        any reader         RCU (snapshot.h)
 *
 * A shard's contents are handed from one thread to the other by the queue
 * operations (full barrier on enqueue, dependent load on dequeue).
 */
#ifndef OP_MERGER_H
#define OP_MERGER_H

#include <stdint.h>

#include "engine/intern.h"
#include "engine/state.h"
#include "engine/shard.h"
#include "engine/snapshot.h"
#include "engine/source.h"

typedef struct op_merger_conf {
    int nworkers;
    int64_t tick_ms;
    int64_t lateness_ms;
    int64_t retention_ms;
    int64_t idle_ms;   /* a partition without records this long is left out of the watermark */
    int once;          /* finish (with every window final) when every worker's input ends */
    op_source_t *src;  /* for the lag; may be NULL */
    op_intern_t *dict; /* dimension names */
    const char *snapshot_file;   /* if set, each published document is also written here */
    int32_t display_tz_offset_s; /* --display-timezone, carried in each snapshot */
    /* Where snapshots are published; NULL: the merger's own. Main passes its
     * own so that the HTTP server keeps serving across a rewind. */
    op_snapshot_pub_t *pub;
    /* Once mode: called on the merger thread right after the final snapshot
     * is published (main uses it to wake up at once), with the moment
     * (op_now_mono_ms) the last worker's input ended: what lies between is
     * the merger's tail, which the --once summary reports. May be NULL. */
    void (*on_final)(void *arg, int64_t inputs_ended_ms);
    void *on_final_arg;
    /* Called on the merger thread right after each snapshot is published
     * (the HTTP server wakes its threads with it). Must not block. May be NULL. */
    void (*on_publish)(void *arg);
    void *on_publish_arg;
    /* The Redis sink (engine/io/redis_sink.h), or NULL (--redis none). Every
     * tick's shards go into the state -- and so into the snapshots -- at once;
     * the sink commits them to Redis in the background. */
    struct op_redis_sink *sink;
    int64_t pending_max_users; /* past this many user records not yet in Redis, workers pause */
    int64_t redis_max_lag_ms;  /* /readyz fails once Redis is this far behind */
    uint64_t rewinds;          /* reloads from Redis before this merger (for stats) */
    /* --archive (engine/io/archive.h), or NULL: offered the final windows
     * once per tick. tz_ms: --timezone, for the calendar days it stores. */
    struct op_archive *archive;
    int64_t tz_ms;
} op_merger_conf_t;

typedef struct op_merger op_merger_t;

/* Creates the merger and two shards per worker (one active, one spare).
 * Main thread. Returns 0 or -ENOMEM. */
int op_merger_create(op_merger_t **out, const op_merger_conf_t *conf);
/* Starts the merger thread. Returns 0 or a negative error code. */
int op_merger_start(op_merger_t *m);
/* Waits for the merger thread: in once mode it returns after the final
 * snapshot; otherwise after op_merger_stop. */
void op_merger_join(op_merger_t *m);
/* 1 while the merger thread runs (once mode: until the final snapshot is
 * published). Any thread. */
int op_merger_running(op_merger_t *m);
/* Asks the merger thread to stop at its next wake-up. Any thread, also a
 * signal-handling thread. */
void op_merger_stop(op_merger_t *m);
/* Wakes the merger before its next tick to book the Redis sink's events.
 * Any thread. */
void op_merger_wake(op_merger_t *m);
void op_merger_destroy(op_merger_t *m);

/* --- rebalances (any thread; used by the Kafka source's poll thread) ---------- */

/* Holds the workers (1) or lets them go (0): during a rebalance nobody may
 * consume between the final flush of the revoked partitions and the seeks
 * of the new assignment. */
void op_merger_set_rebalancing(op_merger_t *m, int on);

/* Runs a tick now and waits until everything the workers consumed before the
 * call is committed to Redis. Returns 0, -EIO (Redis is failing: after 1 s,
 * and once that tick is merged, it stays pending -- merged, so a claim
 * resumes after it -- and the partitions' fences decide later), or
 * -ETIMEDOUT. Only a tick begun after the call serves it (merger.c,
 * sync_tick); with the workers held first (op_merger_set_rebalancing),
 * nothing they read is left out when it returns 0, nor unmerged when it
 * returns -EIO (tests/stress/stress_sync.c). */
int op_merger_sync(op_merger_t *m, int timeout_ms);

/* The source, for the lag in snapshots (may be set after create, before
 * start: with Redis the merger exists before the source is opened). */
void op_merger_set_source(op_merger_t *m, op_source_t *src);

/* With Redis: the state the merger starts from (loaded by main from Redis
 * before start). Main thread. */
op_state_t *op_merger_state(op_merger_t *m);

/* Why the merger stopped by itself: 0 (it did not, or the input ended),
 * OP_MERGER_REWIND (Redis and this process disagree: main reloads from Redis
 * and starts over) or OP_MERGER_FATAL (the state in Redis is gone or
 * replaced). Any thread. */
#define OP_MERGER_REWIND 1
#define OP_MERGER_FATAL  2
int op_merger_verdict(op_merger_t *m);

/* /readyz: 1 unless Redis is unreachable, refuses commits, or is further
 * behind than redis_max_lag_ms. Any thread. */
int op_merger_redis_ok(op_merger_t *m);

/* The snapshots it publishes. */
op_snapshot_pub_t *op_merger_pub(op_merger_t *m);

/* --- worker side (worker i only) -------------------------------------------- */

/* The worker's first active shard. */
op_shard_t *op_merger_first_shard(op_merger_t *m, int worker);

static inline uint64_t op_merger_epoch(const uint64_t *epoch)
{
    return __atomic_load_n(epoch, __ATOMIC_ACQUIRE);
}
/* The address workers poll with op_merger_epoch. */
const uint64_t *op_merger_epoch_ptr(op_merger_t *m);

/* 1 while workers must not consume (Redis unreachable and the pending
 * deltas reached their bound): backpressure instead of unbounded memory. */
static inline int op_merger_paused(const int *paused)
{
    /* paused[0]: backpressure (Redis down), paused[1]: a rebalance. */
    return __atomic_load_n(&paused[0], __ATOMIC_ACQUIRE) ||
           __atomic_load_n(&paused[1], __ATOMIC_ACQUIRE);
}
const int *op_merger_paused_ptr(op_merger_t *m);

/* The worker's spare shard if the merger has returned it, else NULL. */
op_shard_t *op_merger_take_spare(op_merger_t *m, int worker);

/* Hands a shard over (ownership moves to the merger). A shard with last set
 * is the worker's final one and wakes the merger at once. */
void op_merger_hand_over(op_merger_t *m, op_shard_t *s);

#endif
