/* snapshot.h — the immutable, pre-rendered view of the state after a tick.
 *
 * The merger renders one op_snapshot_t per tick from its state and
 * publishes it; readers (the HTTP threads, --once's final print) serve its
 * bytes as they are. A snapshot never changes after publication and is freed
 * by call_rcu once no reader can hold it.
 *
 * Reader contract (any thread registered with rcu_register_thread()):
 *
 *     const op_snapshot_t *s = op_snapshot_acquire(&pub);  // rcu_read_lock inside
 *     ... use s (may be NULL before the first tick) ...
 *     op_snapshot_release(s);                              // rcu_read_unlock inside
 *
 * Between the two calls the thread is in an RCU read-side critical section:
 * it must not block or call synchronize_rcu.
 *
 * Memory ordering: op_snapshot_publish stores the pointer with
 * rcu_assign_pointer (release); op_snapshot_acquire loads it with
 * rcu_dereference (consume). Under ThreadSanitizer, which cannot see
 * liburcu's grace periods, the same is done with __atomic acquire/release
 * and each reader releases the snapshot's reader counter, which the free
 * callback acquires, so TSan sees the happens-before that RCU provides.
 */
#ifndef OP_SNAPSHOT_H
#define OP_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>
#include <urcu.h>

#include "engine/shard.h"
#include "engine/state.h"

/* A rendered JSON array whose elements can be sliced: element i spans
 * [off[i], off[i + 1] - 1) in buf (the byte before off[i + 1] is ',' or the
 * closing ']'). buf holds the complete array "[...]". */
typedef struct op_jarray {
    char *buf;
    size_t len;
    uint32_t *off; /* n + 1 entries; off[n] = len */
    uint32_t n;
} op_jarray_t;

typedef enum op_resource {
    OP_RES_SNAPSHOT = 0, /* the whole document */
    OP_RES_TOTALS,
    OP_RES_MINUTES,
    OP_RES_CATEGORIES,
    OP_RES_BRANDS_QTY,
    OP_RES_BRANDS_AMOUNT,
    OP_RES_TOP_USERS,
    OP_RES_GENDER,
    OP_RES_GENDER_SLOTS,
    OP_RES_STATS,
    OP_RES_COUNT
} op_resource_t;

/* A latency histogram in the Prometheus form, cumulative since start. The
 * merger observes its own timings into it and copies it into each snapshot
 * before publishing; /metrics exposes it. Owner: the merger thread. */
#define OP_HIST_NBOUNDS 14

/* Upper bound of bucket i in microseconds (100 us .. 2.5 s). */
static inline uint64_t op_hist_bound_us(int i)
{
    static const uint64_t bounds[OP_HIST_NBOUNDS] = {100,    250,    500,     1000,   2500,
                                                     5000,   10000,  25000,   50000,  100000,
                                                     250000, 500000, 1000000, 2500000};
    return bounds[i];
}

typedef struct op_hist {
    uint64_t le[OP_HIST_NBOUNDS]; /* observations <= op_hist_bound_us(i) (cumulative) */
    uint64_t count;               /* every observation (the +Inf bucket) */
    uint64_t sum_us;
} op_hist_t;

static inline void op_hist_observe(op_hist_t *h, uint64_t us)
{
    for (int i = OP_HIST_NBOUNDS - 1; i >= 0 && us <= op_hist_bound_us(i); i--)
        h->le[i]++;
    h->count++;
    h->sum_us += us;
}

/* How far Redis is behind the published state (all zero without Redis). */
typedef struct op_snapshot_redis {
    int on, ok;             /* ok: the last attempt to write reached Redis and was accepted */
    int64_t behind_ticks;   /* ticks merged but not yet committed */
    int64_t behind_records; /* user records not yet committed */
    int64_t behind_ms;      /* age of the oldest uncommitted delta */
    uint64_t commits;       /* commits of this process */
    uint64_t rewinds;       /* reloads from Redis since the process started */
} op_snapshot_redis_t;

/* A partition in the snapshot's stats: one this process reads now
 * (owned), or one with lost records (state.h), or both. */
typedef struct op_snapshot_part {
    int32_t partition;
    int owned;
    int64_t next_offset, end_offset; /* owned only; -1 while unknown */
    int64_t lag;                     /* owned only; 0 while unknown */
    int64_t lost;                    /* cumulative */
} op_snapshot_part_t;

typedef struct op_snapshot {
    struct rcu_head rcu;
    uint64_t tick;
    int64_t as_of_ms;
    int64_t watermark_ms;
    int64_t orders, bad_records, late_records, lag;
    int64_t users;              /* distinct users seen */
    int64_t dead_letter_errors; /* rejected records the dead-letter target did not take */
    int64_t lost_records;       /* records the broker deleted before they were read */
    int64_t bad[OP_BAD_REASON_COUNT];
    op_snapshot_part_t *parts; /* by partition number */
    uint32_t nparts;
    char etag[32];                 /* "\"<tick>-<as_of>\"" */
    op_jarray_t res[OP_RES_COUNT]; /* non-array resources have n == 0 */
    op_hist_t tick_hist;           /* merge + render time per tick (set by the merger) */
    op_hist_t flush_hist;          /* Redis commit time (set by the merger; empty without Redis) */
    op_snapshot_redis_t redis;
    uint64_t tsan_readers_done; /* see the memory-ordering note above */
} op_snapshot_t;

/* What waits for the archive (--archive), as stats.archive shows it. */
typedef struct op_snapshot_archive {
    int on; /* 0: no --archive, no stats.archive */
    int connected;
    int64_t pending_rows, written_rows, dropped_rows;
} op_snapshot_archive_t;

/* What the merger adds beside the state when rendering. */
typedef struct op_snapshot_meta {
    uint64_t tick;
    int64_t as_of_ms;
    int64_t lag;
    int all_final;               /* the input is exhausted: every window is final */
    int64_t tick_ms;             /* --tick, so that readers know when an update is overdue */
    int32_t display_tz_offset_s; /* --display-timezone: the zone dashboards show times in */
    op_snapshot_redis_t redis;
    op_snapshot_archive_t archive;
    op_source_t *src; /* for the partitions this process reads; may be NULL */
} op_snapshot_meta_t;

/* Renders a snapshot of st. Called by the merger thread only. */
op_snapshot_t *op_snapshot_render(const op_state_t *st, const op_snapshot_meta_t *meta);

/* Frees a snapshot that was never published (or after a grace period). */
void op_snapshot_free(op_snapshot_t *s);

/* The publication point: a pointer to the current snapshot. */
typedef struct op_snapshot_pub {
    op_snapshot_t *current;
} op_snapshot_pub_t;

/* Publishes s (ownership moves to pub) and retires the previous snapshot
 * with call_rcu. Merger thread only; the thread must be registered. */
void op_snapshot_publish(op_snapshot_pub_t *pub, op_snapshot_t *s);

/* Retires the current snapshot at shutdown, after every reader stopped. */
void op_snapshot_pub_dispose(op_snapshot_pub_t *pub);

const op_snapshot_t *op_snapshot_acquire(op_snapshot_pub_t *pub);
void op_snapshot_release(const op_snapshot_t *s);

#endif
