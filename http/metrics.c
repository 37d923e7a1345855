/* metrics.c — the Prometheus exposition of /metrics (see metrics.h).
 *
 * Rendered per scrape into the request's pool: it is a few kilobytes of
 * text, and scrapes come every few seconds, not per dashboard request.
 */
#include "http/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/shard.h"

void op_http_metrics_count(op_http_counters_t *c, int status)
{
    if (status >= 100 && status < OP_HTTP_MAX_STATUS) /* 0: no response was started */
        op_http_metrics_inc(&c->requests[status]);
}

typedef struct text {
    h2o_mem_pool_t *pool;
    char *buf;
    size_t len, cap;
} text_t;

static void put(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(text_t *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        char *bigger = h2o_mem_alloc_pool(t->pool, t->cap * 2);
        memcpy(bigger, t->buf, t->len);
        t->buf = bigger;
        t->cap *= 2;
    }
}

static void header(text_t *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(text_t *t, const char *name, const char *type, const char *help, int64_t v)
{
    header(t, name, type, help);
    put(t, "%s %lld\n", name, (long long)v);
}

static void histogram(text_t *t, const char *name, const char *help, const op_hist_t *h)
{
    header(t, name, "histogram", help);
    for (int i = 0; i < OP_HIST_NBOUNDS; i++)
        put(t, "%s_bucket{le=\"%g\"} %llu\n", name, (double)op_hist_bound_us(i) / 1e6,
            (unsigned long long)h->le[i]);
    put(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
        (unsigned long long)h->count, name, (double)h->sum_us / 1e6, name,
        (unsigned long long)h->count);
}

/* A label value with the escapes the text format requires. */
static void label_value(text_t *t, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            put(t, "\\%c", *s);
        else if (*s == '\n')
            put(t, "\\n");
        else
            put(t, "%c", *s);
    }
}

static void archive_metrics(text_t *t, const op_archive_stats_t *a)
{
    scalar(t, "orderpulse_archive_connected", "gauge",
           "1 if the archive's last attempt to talk to MariaDB worked.", a->connected);
    scalar(t, "orderpulse_archive_pending_rows", "gauge",
           "Rows offered to the archive, not yet written.", a->pending_rows);
    scalar(t, "orderpulse_archive_max_pending_rows", "gauge",
           "The bound of pending rows (--archive-max-pending).", a->max_pending_rows);
    scalar(t, "orderpulse_archive_written_rows_total", "counter",
           "Rows upserted into the archive (a rewritten window counts again).", a->written_rows);
    scalar(t, "orderpulse_archive_dropped_rows_total", "counter",
           "Pending rows dropped past the bound (the windows still held are offered again).",
           a->dropped_rows);
    scalar(t, "orderpulse_archive_late_rows_total", "counter",
           "Changes to windows older than --retention, which the archive cannot rewrite.",
           a->late_rows);
    scalar(t, "orderpulse_archive_rejected_rows_total", "counter",
           "Rows left out because a name is longer than its column.", a->rejected_rows);
    scalar(t, "orderpulse_archive_errors_total", "counter",
           "Failed archive statements and connection attempts.", a->errors);
    scalar(t, "orderpulse_archive_sweeps_total", "counter",
           "Times every retained final window was offered again after an overflow.", a->sweeps);
}

h2o_iovec_t op_http_metrics_render(h2o_mem_pool_t *pool, const op_http_view_t *v, int64_t now_ms,
                                   op_http_counters_t *const *threads, int nthreads,
                                   const op_archive_stats_t *archive)
{
    text_t t = {.pool = pool, .cap = 8192};
    t.buf = h2o_mem_alloc_pool(pool, t.cap);
    static const op_http_view_t none; /* all zero: before the first snapshot */
    const op_http_view_t *s = v ? v : &none;

    scalar(&t, "orderpulse_orders_total", "counter", "Orders counted (valid records).", s->orders);
    header(&t, "orderpulse_bad_records_total", "counter", "Records rejected, by reason.");
    for (int r = 1; r < OP_BAD_REASON_COUNT; r++) {
        put(&t, "orderpulse_bad_records_total{reason=\"");
        label_value(&t, op_shard_bad_reason_name(r));
        put(&t, "\"} %lld\n", (long long)s->bad[r]);
    }
    scalar(&t, "orderpulse_late_records_total", "counter",
           "Orders older than the watermark when they arrived.", s->late_records);
    scalar(&t, "orderpulse_dead_letter_errors_total", "counter",
           "Rejected records that could not be written to the dead-letter target.",
           s->dead_letter_errors);
    header(&t, "orderpulse_lost_records_total", "counter",
           "Records the broker deleted before they were read (retention, offset reset), by "
           "partition.");
    for (uint32_t i = 0; i < s->nparts; i++)
        if (s->parts[i].lost)
            put(&t, "orderpulse_lost_records_total{partition=\"%d\"} %lld\n",
                (int)s->parts[i].partition, (long long)s->parts[i].lost);
    header(&t, "orderpulse_lag", "gauge",
           "Consumer lag: records not yet read, by partition this process reads.");
    for (uint32_t i = 0; i < s->nparts; i++)
        if (s->parts[i].owned)
            put(&t, "orderpulse_lag{partition=\"%d\"} %lld\n", (int)s->parts[i].partition,
                (long long)s->parts[i].lag);
    scalar(&t, "orderpulse_tick", "counter", "Ticks (snapshots) published.", (int64_t)s->tick);
    if (v) {
        header(&t, "orderpulse_snapshot_age_seconds", "gauge",
               "Age of the newest snapshot (wall clock).");
        put(&t, "orderpulse_snapshot_age_seconds %.3f\n", (double)(now_ms - v->as_of_ms) / 1e3);
    }
    scalar(&t, "orderpulse_users", "gauge", "Distinct users seen.", s->users);

    header(&t, "orderpulse_http_requests_total", "counter", "HTTP responses, by status code.");
    for (int code = 0; code < OP_HTTP_MAX_STATUS; code++) {
        uint64_t n = 0;
        for (int i = 0; i < nthreads; i++)
            n += __atomic_load_n(&threads[i]->requests[code], __ATOMIC_RELAXED);
        if (n || code == 200) /* codes never sent are left out, 200 always shown */
            put(&t, "orderpulse_http_requests_total{code=\"%d\"} %llu\n", code,
                (unsigned long long)n);
    }
    int64_t conns = 0, subs = 0;
    uint64_t refused = 0;
    for (int i = 0; i < nthreads; i++) {
        conns += __atomic_load_n(&threads[i]->connections, __ATOMIC_RELAXED);
        subs += __atomic_load_n(&threads[i]->sse_subscribers, __ATOMIC_RELAXED);
        refused += __atomic_load_n(&threads[i]->refused, __ATOMIC_RELAXED);
    }
    scalar(&t, "orderpulse_http_connections", "gauge", "Open HTTP connections.", conns);
    scalar(&t, "orderpulse_http_connections_refused_total", "counter",
           "Connections closed at once because the per-thread limit was reached.",
           (int64_t)refused);
    scalar(&t, "orderpulse_sse_subscribers", "gauge", "Open /api/v1/stream event streams.", subs);

    histogram(&t, "orderpulse_tick_duration_seconds",
              "Merger time per tick: merging the shards and rendering the snapshot.",
              &s->tick_hist);
    histogram(&t, "orderpulse_flush_duration_seconds",
              "Time of each Redis commit (no observations with --redis none).", &s->flush_hist);
    if (s->redis.on) {
        scalar(&t, "orderpulse_redis_up", "gauge",
               "1 while the last write reached Redis and was accepted.", s->redis.ok);
        scalar(&t, "orderpulse_redis_behind_ticks", "gauge",
               "Ticks published but not yet committed to Redis.", s->redis.behind_ticks);
        scalar(&t, "orderpulse_redis_behind_users", "gauge",
               "User records published but not yet committed to Redis.", s->redis.behind_records);
        header(&t, "orderpulse_redis_behind_seconds", "gauge",
               "Age of the oldest delta not yet committed to Redis.");
        put(&t, "orderpulse_redis_behind_seconds %.3f\n", (double)s->redis.behind_ms / 1e3);
        scalar(&t, "orderpulse_redis_commits_total", "counter", "Commits to Redis.",
               (int64_t)s->redis.commits);
        scalar(&t, "orderpulse_redis_rewinds_total", "counter",
               "Reloads from Redis because Redis and this process disagreed (a failover that lost "
               "writes, partitions taken over while their records were pending).",
               (int64_t)s->redis.rewinds);
    }
    if (archive)
        archive_metrics(&t, archive);
    return h2o_iovec_init(t.buf, t.len);
}
