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
    const char *snapshot_file; /* if set, each published document is also written here */
    /* Once mode: called on the merger thread right after the final snapshot
     * is published (main uses it to wake up at once). May be NULL. */
    void (*on_final)(void *arg);
    void *on_final_arg;
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

/* The worker's spare shard if the merger has returned it, else NULL. */
op_shard_t *op_merger_take_spare(op_merger_t *m, int worker);

/* Hands a shard over (ownership moves to the merger). A shard with last set
 * is the worker's final one and wakes the merger at once. */
void op_merger_hand_over(op_merger_t *m, op_shard_t *s);

#endif
