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
 *   snapshots        merger (publish)        any reader         RCU (snapshot.h)
 *
 * A shard's contents are handed from one thread to the other by the queue
 * operations (full barrier on enqueue, dependent load on dequeue).
 */
#ifndef OP_MERGER_H
#define OP_MERGER_H

#include <stdint.h>

#include "engine/intern.h"
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
    /* Once mode: called on the merger thread right after the final snapshot
     * is published (main uses it to wake up at once). May be NULL. */
    void (*on_final)(void *arg);
    void *on_final_arg;
    /* Called on the merger thread right after each snapshot is published
     * (the HTTP server wakes its threads with it). Must not block. May be NULL. */
    void (*on_publish)(void *arg);
    void *on_publish_arg;
    /* Exactly-once state in Redis, or NULL (--redis none). With Redis, a
     * tick's deltas reach the state (and the snapshots) only once they are
     * committed there; until then they wait in a pending shard. */
    struct op_redis *redis;
    int64_t pending_max_users; /* past this many users pending, workers pause */
    /* --view redis: render each snapshot from the cumulative figures and
     * top users read back from Redis (every process of a scaled-out group
     * then serves the global view), not from this process's own state. */
    int view_redis;
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
void op_merger_destroy(op_merger_t *m);

/* --- rebalances (any thread; used by the Kafka source's poll thread) ---------- */

/* Holds the workers (1) or lets them go (0): during a rebalance nobody may
 * consume between the final flush of the revoked partitions and the seeks
 * of the new assignment. */
void op_merger_set_rebalancing(op_merger_t *m, int on);

/* Runs a tick now and waits until its flush is done: every record the
 * workers consumed before the call is then in Redis. Returns 0, or
 * -ETIMEDOUT / -EIO (the flush failed; the deltas stay pending). */
int op_merger_sync(op_merger_t *m, int timeout_ms);

/* The offset Redis holds for partition p, as read at its assignment: the
 * fence the merger's next flush of p expects. */
void op_merger_set_committed(op_merger_t *m, int32_t p, int64_t offset);

/* The source, for the lag in snapshots (may be set after create, before
 * start: with Redis the merger exists before the source is opened). */
void op_merger_set_source(op_merger_t *m, op_source_t *src);

/* With Redis: loads the cumulative state and the partitions' offsets (the
 * fences of the first flushes) before the merger starts. Main thread,
 * registered with RCU. */
int op_merger_load(op_merger_t *m, char *err, size_t errlen);

/* 0 while the last flush could not reach Redis (deltas are pending). Any
 * thread (for /readyz). 1 without Redis. */
int op_merger_redis_ok(op_merger_t *m);

/* Set when the merger stopped for good because Redis rejected a flush: the
 * partitions belong to another process now (a rebalance, or this process
 * was a zombie). The process must exit; a restart resumes from Redis. */
int op_merger_fenced(op_merger_t *m);

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
