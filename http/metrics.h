/* metrics.h — GET /metrics: the Prometheus text exposition (format 0.0.4)
 * of the engine's figures, taken from the serving thread's view of the
 * snapshot, and of the HTTP server's own counters.
 *
 * The server's counters are per HTTP thread, so that counting a request is
 * a plain store to a line no other thread writes:
 *
 *   field               written by                read by            how
 *   requests[status]    the owning HTTP thread    any HTTP thread    __atomic relaxed
 *   connections, sse    the owning HTTP thread    any HTTP thread    __atomic relaxed
 *
 * A scrape sums them over the threads; each value it reads is one that
 * counter held at some recent moment, which is all Prometheus needs.
 */
#ifndef OP_HTTP_METRICS_H
#define OP_HTTP_METRICS_H

#include <h2o.h>
#include <stdint.h>

#include "engine/io/archive.h"
#include "http/view.h"

#define OP_HTTP_MAX_STATUS 600

typedef struct op_http_counters {
    _Alignas(64) uint64_t requests[OP_HTTP_MAX_STATUS]; /* responses by status (100..599) */
    int64_t connections;                                /* open connections */
    int64_t sse_subscribers;                            /* open event streams */
    uint64_t refused;                                   /* connections over the limit */
} op_http_counters_t;

/* Counts one response. Owning thread only. */
void op_http_metrics_count(op_http_counters_t *c, int status);

/* Sets a gauge or bumps a counter of c. Owning thread only. */
static inline void op_http_metrics_set(int64_t *gauge, int64_t v)
{
    __atomic_store_n(gauge, v, __ATOMIC_RELAXED);
}
static inline void op_http_metrics_inc(uint64_t *counter)
{
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

/* Renders the exposition into memory from pool. v may be NULL (no snapshot
 * yet: the engine's figures are 0 and the snapshot age is left out);
 * archive is NULL without --archive (its families are left out).
 * threads[0..nthreads) are every HTTP thread's counters. */
h2o_iovec_t op_http_metrics_render(h2o_mem_pool_t *pool, const op_http_view_t *v, int64_t now_ms,
                                   op_http_counters_t *const *threads, int nthreads,
                                   const op_archive_stats_t *archive);

#endif
