/* api.h — the request handler: DESIGN §5's routes over one thread's view.
 *
 *   GET /api/v1/snapshot                  the whole document
 *   GET /api/v1/totals                    metrics 1-2
 *   GET /api/v1/sales/minutes?last=N      metric 3, the last N minutes
 *   GET /api/v1/categories/ranking?minute=M  metric 4, one minute (default:
 *                                         the latest final one, else the latest)
 *   GET /api/v1/brands?by=quantity|amount metric 5
 *   GET /api/v1/users/top?n=K             metric 6, the first K (1..100, default 10)
 *   GET /api/v1/gender                    metric 7
 *   GET /api/v1/gender/slots?last=N       metric 8
 *   GET /api/v1/history/minutes|categories|gender/slots?from=T&to=T
 *                                         archived windows (--archive; history.h)
 *   GET /api/v1/stream                    Server-Sent Events (sse.h)
 *   GET /metrics, /healthz, /readyz
 *   GET /, /index.html, /app.js, ...      the dashboard (h2o's file handler)
 *
 * Every API answer is JSON with Cache-Control: no-store; resources carry
 * the snapshot's ETag and answer If-None-Match with 304. Slices point into
 * the view's pre-rendered arrays (a "[" or "]" beside them): no JSON is
 * rendered per request. Errors are JSON {"error": "..."}: 400 bad query
 * value, 404 unknown path or minute, 405 other methods (with Allow), 413 a
 * request body, 431 oversized headers, 503 before the first snapshot.
 *
 * Owner: the HTTP thread whose event loop runs the request.
 */
#ifndef OP_HTTP_API_H
#define OP_HTTP_API_H

#include <h2o.h>

#include "http/history.h"
#include "http/metrics.h"
#include "http/server.h"
#include "http/sse.h"
#include "http/view.h"

/* ECharts, from the npm package (make deps). */
#define OP_HTTP_VENDOR_PATH "/vendor/echarts.min.js"
#define OP_HTTP_VENDOR_FILE "echarts/dist/echarts.min.js" /* under conf->vendor_dir */

/* One HTTP thread's serving state. Owner: that thread. */
typedef struct op_http_env {
    const op_http_conf_t *conf;
    op_http_view_t *view;           /* the current view (one reference), NULL before a snapshot */
    op_http_sse_t sse;              /* the thread's event streams */
    op_http_counters_t *counters;   /* this thread's */
    op_http_counters_t *const *all; /* every thread's, for /metrics */
    int nthreads;
    int have_static;                         /* conf->static_dir is a directory */
    int have_vendor;                         /* OP_HTTP_VENDOR_FILE exists under conf->vendor_dir */
    op_history_t *history;                   /* --archive's readers (shared), or NULL */
    h2o_multithread_receiver_t history_recv; /* their answers to this thread */
} op_http_env_t;

/* Brings env->view up to the published snapshot (a copy when the tick
 * changed). Returns the view, or NULL before the first snapshot. */
op_http_view_t *op_http_env_refresh(op_http_env_t *env);

/* The handler: answers req and returns 0, or returns -1 to let the next
 * handler of the path (the static file handler) serve an existing file. */
int op_http_api_handle(op_http_env_t *env, h2o_req_t *req);

/* The history readers' answers (history.h), as env->history_recv's
 * callback: sends each one, or drops it if its request has gone. */
void op_http_api_history_answers(h2o_multithread_receiver_t *r, h2o_linklist_t *messages);

#endif
