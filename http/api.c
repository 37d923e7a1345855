/* api.c — routing, query values, conditional GET and the JSON answers of
 * the API (see api.h).
 *
 * A response body is one to three iovecs pointing into the thread's view,
 * which the response keeps alive by linking it to the request's pool; so
 * the per-request work is a route lookup, a few header appends and the
 * write itself.
 */
#include "http/api.h"

#include <string.h>
#include <sys/stat.h>

#include "engine/io/archive.h"
#include "engine/parse.h"
#include "engine/shard.h"
#include "engine/util.h"

#define JSON_TYPE           "application/json; charset=utf-8"
#define METRICS_TYPE        "text/plain; version=0.0.4; charset=utf-8"
#define MAX_HEADER_BYTES    (16 * 1024) /* sum of request header names and values */
#define MAX_LAST            1000000000
#define MAX_USERS           100
#define DEFAULT_USERS       10
#define MAX_EPOCH_MS_DIGITS 16
#define MAX_TIME_TEXT       64
#define HISTORY_DEFAULT_MS  3600000 /* a range given by one end, or none, spans an hour */

typedef enum route {
    R_NONE = 0,
    R_SNAPSHOT,
    R_TOTALS,
    R_MINUTES,
    R_CATEGORIES,
    R_BRANDS,
    R_USERS,
    R_GENDER,
    R_GENDER_SLOTS,
    R_HISTORY_MINUTES,
    R_HISTORY_CATEGORIES,
    R_HISTORY_GENDER_SLOTS,
    R_STREAM,
    R_METRICS,
    R_HEALTH,
    R_READY,
} route_t;

static const struct {
    const char *path;
    size_t len;
    route_t route;
} routes[] = {
    {H2O_STRLIT("/api/v1/snapshot"), R_SNAPSHOT},
    {H2O_STRLIT("/api/v1/totals"), R_TOTALS},
    {H2O_STRLIT("/api/v1/sales/minutes"), R_MINUTES},
    {H2O_STRLIT("/api/v1/categories/ranking"), R_CATEGORIES},
    {H2O_STRLIT("/api/v1/brands"), R_BRANDS},
    {H2O_STRLIT("/api/v1/users/top"), R_USERS},
    {H2O_STRLIT("/api/v1/gender"), R_GENDER},
    {H2O_STRLIT("/api/v1/gender/slots"), R_GENDER_SLOTS},
    {H2O_STRLIT("/api/v1/history/minutes"), R_HISTORY_MINUTES},
    {H2O_STRLIT("/api/v1/history/categories"), R_HISTORY_CATEGORIES},
    {H2O_STRLIT("/api/v1/history/gender/slots"), R_HISTORY_GENDER_SLOTS},
    {H2O_STRLIT("/api/v1/stream"), R_STREAM},
    {H2O_STRLIT("/metrics"), R_METRICS},
    {H2O_STRLIT("/healthz"), R_HEALTH},
    {H2O_STRLIT("/readyz"), R_READY},
};

static route_t find_route(h2o_iovec_t path)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (h2o_memis(path.base, path.len, routes[i].path, routes[i].len))
            return routes[i].route;
    return R_NONE;
}

/* --- responses ---------------------------------------------------------------------- */

/* Only answers sent in full by one h2o_send use it: h2o never asks it to
 * proceed or stop. */
static h2o_generator_t whole_response = {NULL, NULL};

static int is_head(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
}

static void add_cors(const op_http_env_t *env, h2o_req_t *req)
{
    const char *origin = env->conf->cors_origin;
    if (!origin)
        return;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL,
                   origin, strlen(origin));
    h2o_add_header_by_str(&req->pool, &req->res.headers,
                          H2O_STRLIT("access-control-expose-headers"), 0, NULL, H2O_STRLIT("ETag"));
    if (strcmp(origin, "*") != 0)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
}

/* Content-Type (if any), Cache-Control: no-store and CORS. */
static void add_common(const op_http_env_t *env, h2o_req_t *req, const char *type, size_t type_len)
{
    if (type)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, type_len);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    add_cors(env, req);
}

/* Sends status and bufs as the whole answer (headers only for HEAD). The
 * bufs' bytes must live until the request is disposed. */
static int send_whole(h2o_req_t *req, int status, const char *reason, h2o_iovec_t *bufs, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += bufs[i].len;
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len;
    h2o_start_response(req, &whole_response);
    if (is_head(req))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, bufs, n, H2O_SEND_STATE_FINAL);
    return 0;
}

/* A JSON document from static storage (a literal). */
static int send_json_lit(const op_http_env_t *env, h2o_req_t *req, int status, const char *reason,
                         const char *json)
{
    add_common(env, req, H2O_STRLIT(JSON_TYPE));
    h2o_iovec_t body = h2o_iovec_init(json, strlen(json));
    return send_whole(req, status, reason, &body, 1);
}

/* {"error":"<msg>"}; msg is a literal that needs no JSON escapes. */
static int send_error(const op_http_env_t *env, h2o_req_t *req, int status, const char *reason,
                      const char *msg)
{
    size_t len = strlen(msg);
    char *body = h2o_mem_alloc_pool(&req->pool, len + sizeof("{\"error\":\"\"}\n"));
    int n = sprintf(body, "{\"error\":\"%s\"}\n", msg);
    add_common(env, req, H2O_STRLIT(JSON_TYPE));
    h2o_iovec_t b = h2o_iovec_init(body, (size_t)n);
    return send_whole(req, status, reason, &b, 1);
}

static int send_bad_request(const op_http_env_t *env, h2o_req_t *req, const char *msg)
{
    return send_error(env, req, 400, "Bad Request", msg);
}

static int send_not_found(const op_http_env_t *env, h2o_req_t *req, const char *msg)
{
    return send_error(env, req, 404, "Not Found", msg);
}

static int send_no_snapshot(const op_http_env_t *env, h2o_req_t *req)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    return send_error(env, req, 503, "Service Unavailable", "no snapshot yet");
}

/* 1 if the If-None-Match header names etag (or is "*"). Weak tags compare
 * by their opaque part, as RFC 9110 says for If-None-Match. */
static int etag_matches(h2o_req_t *req, h2o_iovec_t etag)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    if (i < 0)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    const char *p = v.base, *end = v.base + v.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *tag = p;
        while (p < end && *p != ',')
            p++;
        const char *tag_end = p;
        while (tag_end > tag && (tag_end[-1] == ' ' || tag_end[-1] == '\t'))
            tag_end--;
        if (tag_end - tag >= 2 && tag[0] == 'W' && tag[1] == '/')
            tag += 2;
        size_t len = (size_t)(tag_end - tag);
        if ((len == 1 && *tag == '*') || h2o_memis(tag, len, etag.base, etag.len))
            return 1;
    }
    return 0;
}

/* A resource of view v: 304 if the client has it, else 200 with bufs
 * (which point into v). */
static int send_resource(const op_http_env_t *env, h2o_req_t *req, op_http_view_t *v,
                         h2o_iovec_t *bufs, size_t n)
{
    h2o_mem_link_shared(&req->pool, v); /* v outlives the response */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, v->etag.base, v->etag.len);
    if (etag_matches(req, v->etag)) {
        add_common(env, req, NULL, 0);
        req->res.status = 304;
        req->res.reason = "Not Modified";
        h2o_start_response(req, &whole_response);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return 0;
    }
    add_common(env, req, H2O_STRLIT(JSON_TYPE));
    return send_whole(req, 200, "OK", bufs, n);
}

static int send_array(const op_http_env_t *env, h2o_req_t *req, op_http_view_t *v, op_resource_t r)
{
    h2o_iovec_t b = h2o_iovec_init(v->res[r].buf, v->res[r].len);
    return send_resource(env, req, v, &b, 1);
}

/* The last k elements: "[" + the array's tail from element n-k. */
static int send_tail(const op_http_env_t *env, h2o_req_t *req, op_http_view_t *v, op_resource_t r,
                     uint64_t k)
{
    const op_jarray_t *a = &v->res[r];
    if (k >= a->n)
        return send_array(env, req, v, r);
    uint32_t from = a->off[a->n - k];
    h2o_iovec_t b[2] = {h2o_iovec_init(H2O_STRLIT("[")),
                        h2o_iovec_init(a->buf + from, a->len - from)};
    return send_resource(env, req, v, b, 2);
}

/* The first k elements (k >= 1): the array's head up to element k-1 + "]". */
static int send_head(const op_http_env_t *env, h2o_req_t *req, op_http_view_t *v, op_resource_t r,
                     uint64_t k)
{
    const op_jarray_t *a = &v->res[r];
    if (k >= a->n)
        return send_array(env, req, v, r);
    h2o_iovec_t b[2] = {h2o_iovec_init(a->buf, a->off[k] - 1), h2o_iovec_init(H2O_STRLIT("]"))};
    return send_resource(env, req, v, b, 2);
}

/* --- query values ------------------------------------------------------------------- */

/* The value of query parameter name (the first one): 1 if present, else 0. */
static int query_get(h2o_req_t *req, const char *name, h2o_iovec_t *out)
{
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t name_len = strlen(name);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *key_end = eq ? eq : e;
        if (h2o_memis(p, (size_t)(key_end - p), name, name_len)) {
            *out = eq ? h2o_iovec_init(eq + 1, (size_t)(e - eq - 1)) : h2o_iovec_init(e, 0);
            return 1;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return 0;
}

/* A plain decimal in [min, max]: digits only, no sign. 0 or -1. */
static int parse_u64(h2o_iovec_t v, uint64_t min, uint64_t max, uint64_t *out)
{
    if (v.len == 0 || v.len > 19)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.base[i] < '0' || v.base[i] > '9')
            return -1;
        x = x * 10 + (uint64_t)(v.base[i] - '0');
    }
    if (x < min || x > max)
        return -1;
    *out = x;
    return 0;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Exactly n decimal digits at *p, as a number; *p moves past them. */
static int digits(const char **p, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (unsigned)(c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

/* A time: epoch milliseconds (digits only), or ISO-8601 YYYY-MM-DD with an
 * optional [T ]HH:MM[:SS[.fff]] and Z or +HH:MM / -HH:MM (UTC without
 * one). %XX escapes are decoded. 0 or -1. */
static int parse_time(h2o_iovec_t v, int64_t *out)
{
    char s[MAX_TIME_TEXT + 1];
    size_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.base[i];
        if (c == '%') {
            int hi = i + 2 < v.len ? hex_digit(v.base[i + 1]) : -1;
            int lo = i + 2 < v.len ? hex_digit(v.base[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n == MAX_TIME_TEXT)
            return -1;
        s[n++] = c;
    }
    s[n] = '\0';
    uint64_t ms;
    if (n && n <= MAX_EPOCH_MS_DIGITS && strspn(s, "0123456789") == n &&
        parse_u64(h2o_iovec_init(s, n), 0, OP_PARSE_MAX_EVENT_MS, &ms) == 0) {
        *out = (int64_t)ms;
        return 0;
    }
    unsigned y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, oh = 0, om = 0;
    int sign = 0;
    const char *p = s;
    if (digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 || *p++ != '-' ||
        digits(&p, 2, &d) < 0)
        return -1;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) < 0 || *p++ != ':' || digits(&p, 2, &mi) < 0)
            return -1;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec) < 0)
                return -1;
            if (*p == '.') {
                unsigned scale = 100;
                for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
                    frac += scale * (unsigned)(*p - '0');
            }
        }
    }
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
        if (digits(&p, 2, &oh) < 0 || *p++ != ':' || digits(&p, 2, &om) < 0 || oh > 23 || om > 59)
            return -1;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59)
        return -1;
    int64_t days = op_parse_days_from_civil(y, mo, d);
    if (op_parse_days_from_civil(y, mo, 1) + d - 1 != days ||
        (d > 28 &&
         op_parse_days_from_civil(mo == 12 ? y + 1 : y, mo == 12 ? 1 : mo + 1, 1) <= days))
        return -1; /* no such day in that month */
    *out =
        ((days * 86400 + h * 3600 + mi * 60 + sec) - sign * (int64_t)(oh * 3600 + om * 60)) * 1000 +
        frac;
    return 0;
}

/* --- routes ------------------------------------------------------------------------- */

op_http_view_t *op_http_env_refresh(op_http_env_t *env)
{
    const op_snapshot_t *s = op_snapshot_acquire(env->conf->pub);
    if (s && (!env->view || env->view->tick != s->tick)) {
        op_http_view_t *v = op_http_view_create(s);
        op_http_view_release(env->view);
        env->view = v;
    }
    op_snapshot_release(s);
    return env->view;
}

/* ?last=N on minutes and gender slots. */
static int serve_last(op_http_env_t *env, h2o_req_t *req, op_resource_t r)
{
    h2o_iovec_t q;
    uint64_t last = UINT64_MAX;
    if (query_get(req, "last", &q) && parse_u64(q, 1, MAX_LAST, &last) < 0)
        return send_bad_request(env, req, "last must be an integer from 1 to 1000000000");
    op_http_view_t *v = op_http_env_refresh(env);
    if (!v)
        return send_no_snapshot(env, req);
    return send_tail(env, req, v, r, last);
}

static int serve_category(op_http_env_t *env, h2o_req_t *req)
{
    h2o_iovec_t q;
    uint64_t minute = 0;
    int given = query_get(req, "minute", &q);
    if (given && (q.len > MAX_EPOCH_MS_DIGITS || parse_u64(q, 0, UINT64_MAX, &minute) < 0))
        return send_bad_request(env, req, "minute must be a time in epoch milliseconds");
    op_http_view_t *v = op_http_env_refresh(env);
    if (!v)
        return send_no_snapshot(env, req);
    int32_t i = v->default_category;
    if (given) /* any time within the minute names it */
        i = op_http_view_find(v, OP_RES_CATEGORIES, (int64_t)(minute - minute % OP_MINUTE_MS));
    if (i < 0)
        return send_not_found(env, req, given ? "minute not retained" : "no minute retained yet");
    h2o_iovec_t b = op_http_view_elem(v, OP_RES_CATEGORIES, (uint32_t)i);
    return send_resource(env, req, v, &b, 1);
}

static int serve_brands(op_http_env_t *env, h2o_req_t *req)
{
    h2o_iovec_t q;
    op_resource_t r = OP_RES_BRANDS_QTY;
    if (query_get(req, "by", &q)) {
        if (h2o_memis(q.base, q.len, H2O_STRLIT("amount")))
            r = OP_RES_BRANDS_AMOUNT;
        else if (!h2o_memis(q.base, q.len, H2O_STRLIT("quantity")))
            return send_bad_request(env, req, "by must be quantity or amount");
    }
    op_http_view_t *v = op_http_env_refresh(env);
    if (!v)
        return send_no_snapshot(env, req);
    return send_array(env, req, v, r);
}

static int serve_users(op_http_env_t *env, h2o_req_t *req)
{
    h2o_iovec_t q;
    uint64_t n = DEFAULT_USERS;
    if (query_get(req, "n", &q) && parse_u64(q, 1, MAX_USERS, &n) < 0)
        return send_bad_request(env, req, "n must be an integer from 1 to 100");
    op_http_view_t *v = op_http_env_refresh(env);
    if (!v)
        return send_no_snapshot(env, req);
    return send_head(env, req, v, OP_RES_TOP_USERS, n);
}

static int serve_whole(op_http_env_t *env, h2o_req_t *req, op_resource_t r)
{
    op_http_view_t *v = op_http_env_refresh(env);
    if (!v)
        return send_no_snapshot(env, req);
    return send_array(env, req, v, r);
}

static int serve_metrics(op_http_env_t *env, h2o_req_t *req)
{
    op_http_view_t *v = op_http_env_refresh(env);
    op_archive_stats_t archive;
    if (env->conf->archive)
        op_archive_stats(env->conf->archive, &archive);
    h2o_iovec_t body = op_http_metrics_render(&req->pool, v, op_now_wall_ms(), env->all,
                                              env->nthreads, env->conf->archive ? &archive : NULL);
    add_common(env, req, H2O_STRLIT(METRICS_TYPE));
    return send_whole(req, 200, "OK", &body, 1);
}

/* With --archive, ready says what waits for MariaDB: its being down does
 * not stop the engine serving, so it does not make the engine unready. */
static int serve_ready(op_http_env_t *env, h2o_req_t *req)
{
    if (!op_http_env_refresh(env))
        return send_json_lit(env, req, 503, "Service Unavailable",
                             "{\"status\":\"not ready\",\"reason\":\"no snapshot yet\"}\n");
    if (env->conf->ready && !env->conf->ready(env->conf->ready_arg))
        return send_json_lit(env, req, 503, "Service Unavailable",
                             "{\"status\":\"not ready\",\"reason\":\"source not ready\"}\n");
    if (!env->conf->archive)
        return send_json_lit(env, req, 200, "OK", "{\"status\":\"ready\"}\n");
    op_archive_stats_t a;
    op_archive_stats(env->conf->archive, &a);
    char *body = h2o_mem_alloc_pool(&req->pool, 256);
    int n = snprintf(body, 256,
                     "{\"status\":\"ready\",\"archive\":{\"connected\":%s,\"pending_rows\":%lld,"
                     "\"max_pending_rows\":%lld,\"dropped_rows\":%lld}}\n",
                     a.connected ? "true" : "false", (long long)a.pending_rows,
                     (long long)a.max_pending_rows, (long long)a.dropped_rows);
    add_common(env, req, H2O_STRLIT(JSON_TYPE));
    h2o_iovec_t b = h2o_iovec_init(body, (size_t)n);
    return send_whole(req, 200, "OK", &b, 1);
}

/* --- history (history.h) ------------------------------------------------------------ */

/* The request's pool is going: its job, if still out, must not answer it. */
static void history_request_gone(void *anchor)
{
    op_history_job_t *job = *(op_history_job_t **)anchor;
    if (job)
        job->req = NULL;
}

static int serve_history(op_http_env_t *env, h2o_req_t *req, op_history_kind_t kind)
{
    h2o_iovec_t q;
    int64_t from = 0, to = 0;
    int has_from = query_get(req, "from", &q);
    if (has_from && parse_time(q, &from) < 0)
        return send_bad_request(env, req,
                                "from must be epoch milliseconds or ISO-8601 "
                                "(2024-11-11T08:00:00+08:00)");
    int has_to = query_get(req, "to", &q);
    if (has_to && parse_time(q, &to) < 0)
        return send_bad_request(env, req,
                                "to must be epoch milliseconds or ISO-8601 "
                                "(2024-11-11T09:00:00+08:00)");
    if (!has_to)
        to = has_from ? from + HISTORY_DEFAULT_MS : op_now_wall_ms();
    if (!has_from)
        from = to - HISTORY_DEFAULT_MS;
    if (from >= to)
        return send_bad_request(env, req, "from must be before to");
    if (to - from > op_history_max_range_ms(kind))
        return send_bad_request(env, req,
                                kind == OP_HISTORY_CATEGORIES
                                    ? "the range is too large: at most 1 day of categories"
                                    : "the range is too large: at most 31 days");
    if (!op_http_env_refresh(env)) /* as every resource: one rule for clients */
        return send_no_snapshot(env, req);
    if (!env->history)
        return send_not_found(env, req, "no archive: start the engine with --archive");
    op_history_job_t *job = h2o_mem_alloc(sizeof(*job));
    memset(job, 0, sizeof(*job));
    job->reply_to = &env->history_recv;
    job->kind = kind;
    job->from_ms = from;
    job->to_ms = to;
    job->req = req;
    if (op_history_submit(env->history, job) < 0) {
        free(job);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        return send_error(env, req, 503, "Service Unavailable", "too many history queries");
    }
    job->anchor = h2o_mem_alloc_shared(&req->pool, sizeof(*job->anchor), history_request_gone);
    *job->anchor = job;
    return 0;
}

void op_http_api_history_answers(h2o_multithread_receiver_t *r, h2o_linklist_t *messages)
{
    op_http_env_t *env = H2O_STRUCT_FROM_MEMBER(op_http_env_t, history_recv, r);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        op_history_job_t *job = H2O_STRUCT_FROM_MEMBER(op_history_job_t, msg, m);
        h2o_req_t *req = job->req;
        if (req) {
            *job->anchor = NULL;
            char *body = h2o_mem_alloc_pool(&req->pool, job->body.len + 1);
            memcpy(body, job->body.buf, job->body.len);
            add_common(env, req, H2O_STRLIT(JSON_TYPE));
            h2o_iovec_t b = h2o_iovec_init(body, job->body.len);
            if (job->status == 200) {
                send_whole(req, 200, "OK", &b, 1);
            } else {
                h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                               H2O_STRLIT("1"));
                send_whole(req, 503, "Service Unavailable", &b, 1);
            }
        }
        op_jbuf_dispose(&job->body);
        free(job);
    }
}

static int serve_stream(op_http_env_t *env, h2o_req_t *req)
{
    op_http_view_t *v = op_http_env_refresh(env);
    if (v != env->sse.view)
        op_http_sse_publish(&env->sse, v);
    add_cors(env, req);
    op_http_sse_open(&env->sse, req);
    return 0;
}

/* Paths outside the API: the dashboard's files. Returns -1 when the file
 * exists (h2o's file handler, next on the path, serves it), else a 404. */
static int serve_static(op_http_env_t *env, h2o_req_t *req, h2o_iovec_t path)
{
    int root = h2o_memis(path.base, path.len, H2O_STRLIT("/")) ||
               h2o_memis(path.base, path.len, H2O_STRLIT("/index.html"));
    if (env->have_vendor && h2o_memis(path.base, path.len, H2O_STRLIT(OP_HTTP_VENDOR_PATH)))
        return -1; /* its own path, with the file handler for conf->vendor_dir's copy */
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/api")) ||
        (path.len > 5 && memcmp(path.base, "/api/", 5) == 0))
        return send_not_found(env, req, "no such API resource");
    if (!env->have_static)
        return send_not_found(env, req,
                              root ? "the dashboard is not installed: no static directory "
                                     "(see --static-dir)"
                                   : "not found");
    const char *dir = env->conf->static_dir;
    size_t dir_len = strlen(dir);
    char *fs = h2o_mem_alloc_pool(&req->pool, dir_len + path.len + sizeof("index.html"));
    memcpy(fs, dir, dir_len);
    memcpy(fs + dir_len, path.base, path.len);
    fs[dir_len + path.len] = '\0';
    if (path.base[path.len - 1] == '/')
        strcat(fs, "index.html");
    struct stat st;
    if (memchr(path.base, '\0', path.len) == NULL && stat(fs, &st) == 0 &&
        (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
        return -1;
    if (h2o_memis(path.base, path.len, H2O_STRLIT(OP_HTTP_VENDOR_PATH)))
        return send_not_found(env, req, "ECharts is not installed (run make deps)");
    return send_not_found(
        env, req, root ? "the dashboard is not installed: index.html is missing" : "not found");
}

static int serve_preflight(op_http_env_t *env, h2o_req_t *req)
{
    add_cors(env, req);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-methods"),
                          0, NULL, H2O_STRLIT("GET, HEAD"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"),
                          0, NULL, H2O_STRLIT("If-None-Match, Cache-Control, Last-Event-ID"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-max-age"), 0,
                          NULL, H2O_STRLIT("600"));
    return send_whole(req, 204, "No Content", NULL, 0);
}

static size_t header_bytes(const h2o_req_t *req)
{
    size_t n = req->input.path.len;
    for (size_t i = 0; i < req->headers.size; i++)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    return n;
}

int op_http_api_handle(op_http_env_t *env, h2o_req_t *req)
{
    h2o_iovec_t path = req->path_normalized;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) && !is_head(req)) {
        if (env->conf->cors_origin &&
            h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")))
            return serve_preflight(env, req);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       H2O_STRLIT("GET, HEAD"));
        return send_error(env, req, 405, "Method Not Allowed", "only GET and HEAD are allowed");
    }
    if (req->entity.len > 0)
        return send_error(env, req, 413, "Payload Too Large", "request bodies are not accepted");
    if (header_bytes(req) > MAX_HEADER_BYTES)
        return send_error(env, req, 431, "Request Header Fields Too Large",
                          "request headers are too large");

    switch (find_route(path)) {
    case R_SNAPSHOT:
        return serve_whole(env, req, OP_RES_SNAPSHOT);
    case R_TOTALS:
        return serve_whole(env, req, OP_RES_TOTALS);
    case R_MINUTES:
        return serve_last(env, req, OP_RES_MINUTES);
    case R_CATEGORIES:
        return serve_category(env, req);
    case R_BRANDS:
        return serve_brands(env, req);
    case R_USERS:
        return serve_users(env, req);
    case R_GENDER:
        return serve_whole(env, req, OP_RES_GENDER);
    case R_GENDER_SLOTS:
        return serve_last(env, req, OP_RES_GENDER_SLOTS);
    case R_HISTORY_MINUTES:
        return serve_history(env, req, OP_HISTORY_MINUTES);
    case R_HISTORY_CATEGORIES:
        return serve_history(env, req, OP_HISTORY_CATEGORIES);
    case R_HISTORY_GENDER_SLOTS:
        return serve_history(env, req, OP_HISTORY_GENDER_SLOTS);
    case R_STREAM:
        return serve_stream(env, req);
    case R_METRICS:
        return serve_metrics(env, req);
    case R_HEALTH:
        return send_json_lit(env, req, 200, "OK", "{\"status\":\"ok\"}\n");
    case R_READY:
        return serve_ready(env, req);
    case R_NONE:
        break;
    }
    return serve_static(env, req, path);
}
