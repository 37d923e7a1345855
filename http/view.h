/* view.h — an HTTP thread's own copy of the snapshot it serves.
 *
 * A snapshot may be freed (call_rcu) as soon as its readers leave their
 * read-side sections, but an HTTP response outlives the handler call: the
 * bytes are written when the socket allows, and an SSE event may wait for a
 * slow client. Holding the RCU read lock that long would stall every grace
 * period, so each HTTP thread copies the current snapshot once per tick into
 * a view (one memcpy per tick per thread, none per request) and responses
 * point their iovecs into the view.
 *
 * A view is an h2o shared chunk (h2o_mem_alloc_shared): its reference count
 * is h2o's, not atomic, because only the owning thread ever touches it. A
 * response keeps it alive with h2o_mem_link_shared(&req->pool, view); the
 * thread holds one reference on its current view.
 *
 * Owner: one HTTP thread. A view never crosses threads.
 */
#ifndef OP_HTTP_VIEW_H
#define OP_HTTP_VIEW_H

#include <h2o.h>
#include <stdint.h>

#include "engine/snapshot.h"

typedef struct op_http_view {
    uint64_t tick;
    int64_t as_of_ms, watermark_ms;
    int64_t orders, bad_records, late_records, lag, users, dead_letter_errors, lost_records;
    int64_t bad[OP_BAD_REASON_COUNT];
    const op_snapshot_part_t *parts; /* points into this block */
    uint32_t nparts;
    op_hist_t tick_hist, flush_hist;
    op_snapshot_redis_t redis;
    h2o_iovec_t etag;              /* points into this block */
    op_jarray_t res[OP_RES_COUNT]; /* buf and off point into this block */
    /* Index in res[OP_RES_CATEGORIES] of the default ranking: the latest
     * minute whose "final" is true, else the latest minute; -1 if none. */
    int32_t default_category;
} op_http_view_t;

/* Copies s into a new view with one reference. Call with the snapshot
 * acquired (op_snapshot_acquire). Aborts on out of memory (hot path). */
op_http_view_t *op_http_view_create(const op_snapshot_t *s);

/* Drops one reference; the last one frees the view. */
void op_http_view_release(op_http_view_t *v);

/* The bytes of element i of resource r (without the separator). */
static inline h2o_iovec_t op_http_view_elem(const op_http_view_t *v, op_resource_t r, uint32_t i)
{
    const op_jarray_t *a = &v->res[r];
    return h2o_iovec_init(a->buf + a->off[i], a->off[i + 1] - 1 - a->off[i]);
}

/* Index of the element of res[r] whose leading key ("minute" or "slot",
 * epoch ms) equals key, or -1. Elements are sorted by key. */
int32_t op_http_view_find(const op_http_view_t *v, op_resource_t r, int64_t key);

#endif
