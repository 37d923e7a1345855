/* sse.h — GET /api/v1/stream: Server-Sent Events, one "snapshot" event per
 * tick.
 *
 * Each HTTP thread has one hub holding its open streams. On connect a
 * stream gets the current snapshot as
 *
 *     event: snapshot\ndata: <the whole document on one line>\n\n
 *
 * and then one event per new snapshot: the thread's wake-up (the merger's
 * publish hook, never a polling timer) calls op_http_sse_publish. A stream
 * has at most one h2o_send outstanding; a stream still busy when a newer
 * snapshot comes gets only the newest one once its send completes, so a
 * slow client costs one reference to a view, never a queue. Idle streams
 * get a ": hb" comment every heartbeat period (HTTP/1 notices a client that
 * went away only when it writes). Events point into the thread's view
 * (view.h): thousands of subscribers share one copy.
 *
 * Owner: one HTTP thread (its event loop); nothing here is shared.
 */
#ifndef OP_HTTP_SSE_H
#define OP_HTTP_SSE_H

#include <h2o.h>
#include <stdint.h>

#include "http/view.h"

typedef struct op_http_sse {
    h2o_loop_t *loop;
    h2o_linklist_t subs;     /* open streams */
    size_t count;            /* number of open streams */
    h2o_timeout_t heartbeat; /* an idle stream gets ": hb" after this long */
    op_http_view_t *view;    /* newest view (one reference held), or NULL */
    int64_t *gauge;          /* where the count is published for /metrics */
    int closing;             /* the server stops: every stream ends */
} op_http_sse_t;

void op_http_sse_init(op_http_sse_t *hub, h2o_loop_t *loop, uint64_t heartbeat_ms, int64_t *gauge);
/* After every stream has ended (op_http_sse_close_all and the connections
 * closed). Returns 0, or -EBUSY (and disposes nothing) if streams remain. */
int op_http_sse_dispose(op_http_sse_t *hub);

/* Answers req with an event stream. The caller has checked the method and
 * may have added headers (CORS). The stream is sent its first event at once
 * if there is a view, else when the first snapshot is published. */
void op_http_sse_open(op_http_sse_t *hub, h2o_req_t *req);

/* A new view for the hub (it takes its own reference): idle streams get it
 * now, busy ones when their send completes. view may be the current one. */
void op_http_sse_publish(op_http_sse_t *hub, op_http_view_t *view);

/* Ends every stream (a busy one once its send completes) and every stream
 * opened from now on. */
void op_http_sse_close_all(op_http_sse_t *hub);

#endif
