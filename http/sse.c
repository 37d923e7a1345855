/* sse.c — event streams: one generator per subscriber, sends gated by
 * h2o's proceed callback, coalescing to the newest view (see sse.h).
 *
 * A subscriber lives in its request's pool (h2o_mem_alloc_shared with a
 * dispose callback), so however the request ends — our final send, the
 * client resetting the stream, the connection closing — detach() runs
 * exactly once before the memory goes. After an h2o_send the subscriber is
 * never touched again in the same call: h2o may dispose the request
 * synchronously.
 */
#include "http/sse.h"

#include <errno.h>
#include <string.h>

#include "http/metrics.h"

typedef struct sub {
    h2o_generator_t gen; /* proceed: the last send is written; stop: the client went away */
    h2o_req_t *req;
    op_http_sse_t *hub;
    h2o_linklist_t link;    /* in hub->subs while attached */
    h2o_timeout_entry_t hb; /* heartbeat timer */
    op_http_view_t *held;   /* the view the send in flight points into */
    uint64_t sent_tick;
    unsigned sent_any : 1; /* an event was sent (sent_tick is valid) */
    unsigned busy : 1;     /* an h2o_send is outstanding */
    unsigned hb_due : 1;   /* the heartbeat period passed without a send */
    unsigned attached : 1; /* in hub->subs */
} sub_t;

static void set_count(op_http_sse_t *hub, size_t n)
{
    hub->count = n;
    if (hub->gauge)
        op_http_metrics_set(hub->gauge, (int64_t)n);
}

static void detach(sub_t *s)
{
    if (!s->attached)
        return;
    s->attached = 0;
    h2o_linklist_unlink(&s->link);
    set_count(s->hub, s->hub->count - 1);
    if (h2o_timeout_is_linked(&s->hb))
        h2o_timeout_unlink(&s->hb);
    op_http_view_release(s->held);
    s->held = NULL;
}

static void on_dispose(void *p)
{
    detach(p);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    detach(H2O_STRUCT_FROM_MEMBER(sub_t, gen, gen));
}

/* Ends the stream. s may be freed when this returns. */
static void finish(sub_t *s)
{
    h2o_req_t *req = s->req;
    detach(s);
    if (s->hub->closing)
        req->http1_is_persistent = 0; /* HTTP/1: close rather than wait for a next request */
    h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
}

/* s may be freed when this returns. */
static void send_bufs(sub_t *s, h2o_iovec_t *bufs, size_t n, op_http_view_t *hold)
{
    op_http_sse_t *hub = s->hub;
    s->busy = 1;
    s->hb_due = 0;
    if (hold) {
        h2o_mem_addref_shared(hold);
        s->held = hold;
    }
    if (h2o_timeout_is_linked(&s->hb))
        h2o_timeout_unlink(&s->hb);
    h2o_timeout_link(hub->loop, &hub->heartbeat, &s->hb);
    h2o_send(s->req, bufs, n, H2O_SEND_STATE_IN_PROGRESS);
}

/* Sends what s is missing, if it is idle: the newest snapshot, else a due
 * heartbeat, or the end of the stream when closing. */
static void push(sub_t *s)
{
    op_http_sse_t *hub = s->hub;
    if (s->busy || !s->attached)
        return;
    if (hub->closing) {
        finish(s);
        return;
    }
    op_http_view_t *v = hub->view;
    if (v && (!s->sent_any || v->tick != s->sent_tick)) {
        const op_jarray_t *doc = &v->res[OP_RES_SNAPSHOT];
        size_t len = doc->len;
        if (len && doc->buf[len - 1] == '\n') /* the data line is the document */
            len--;
        h2o_iovec_t bufs[3] = {h2o_iovec_init(H2O_STRLIT("event: snapshot\ndata: ")),
                               h2o_iovec_init(doc->buf, len), h2o_iovec_init(H2O_STRLIT("\n\n"))};
        s->sent_any = 1;
        s->sent_tick = v->tick;
        send_bufs(s, bufs, 3, v);
        return;
    }
    if (s->hb_due) {
        h2o_iovec_t hb = h2o_iovec_init(H2O_STRLIT(": hb\n\n"));
        send_bufs(s, &hb, 1, NULL);
    }
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    sub_t *s = H2O_STRUCT_FROM_MEMBER(sub_t, gen, gen);
    s->busy = 0;
    op_http_view_release(s->held);
    s->held = NULL;
    push(s);
}

static void on_heartbeat(h2o_timeout_entry_t *entry)
{
    sub_t *s = H2O_STRUCT_FROM_MEMBER(sub_t, hb, entry);
    s->hb_due = 1; /* a busy stream sends it once its send completes */
    push(s);
}

/* Calls fn on every attached subscriber. fn may end any stream, including
 * others than its argument: the list is walked by moving each subscriber
 * back from a private list, so unlinking never invalidates the walk. */
static void for_each(op_http_sse_t *hub, void (*fn)(sub_t *))
{
    h2o_linklist_t todo;
    h2o_linklist_init_anchor(&todo);
    h2o_linklist_insert_list(&todo, &hub->subs);
    while (!h2o_linklist_is_empty(&todo)) {
        sub_t *s = H2O_STRUCT_FROM_MEMBER(sub_t, link, todo.next);
        h2o_linklist_unlink(&s->link);
        h2o_linklist_insert(&hub->subs, &s->link);
        fn(s);
    }
}

void op_http_sse_init(op_http_sse_t *hub, h2o_loop_t *loop, uint64_t heartbeat_ms, int64_t *gauge)
{
    memset(hub, 0, sizeof(*hub));
    hub->loop = loop;
    hub->gauge = gauge;
    h2o_linklist_init_anchor(&hub->subs);
    h2o_timeout_init(loop, &hub->heartbeat, heartbeat_ms);
}

int op_http_sse_dispose(op_http_sse_t *hub)
{
    if (!h2o_linklist_is_empty(&hub->subs))
        return -EBUSY;
    op_http_view_release(hub->view);
    hub->view = NULL;
    h2o_timeout_dispose(hub->loop, &hub->heartbeat);
    return 0;
}

void op_http_sse_open(op_http_sse_t *hub, h2o_req_t *req)
{
    sub_t *s = h2o_mem_alloc_shared(&req->pool, sizeof(*s), on_dispose);
    memset(s, 0, sizeof(*s));
    s->gen.proceed = on_proceed;
    s->gen.stop = on_stop;
    s->req = req;
    s->hub = hub;
    s->hb.cb = on_heartbeat;

    req->res.status = 200;
    req->res.reason = "OK";
    h2o_mem_pool_t *pool = &req->pool;
    h2o_add_header(pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream; charset=utf-8"));
    h2o_add_header(pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_add_header_by_str(pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, NULL,
                          H2O_STRLIT("no"));
    h2o_start_response(req, &s->gen);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    h2o_linklist_insert(&hub->subs, &s->link);
    s->attached = 1;
    set_count(hub, hub->count + 1);
    if (!hub->view && !hub->closing) {
        /* Sends the response headers now; the first event follows the
         * first snapshot. */
        h2o_iovec_t hello = h2o_iovec_init(H2O_STRLIT(": waiting for the first snapshot\n\n"));
        send_bufs(s, &hello, 1, NULL);
        return;
    }
    push(s);
}

void op_http_sse_publish(op_http_sse_t *hub, op_http_view_t *view)
{
    if (view != hub->view) {
        if (view)
            h2o_mem_addref_shared(view);
        op_http_view_release(hub->view);
        hub->view = view;
    }
    for_each(hub, push);
}

void op_http_sse_close_all(op_http_sse_t *hub)
{
    hub->closing = 1;
    for_each(hub, push);
}
