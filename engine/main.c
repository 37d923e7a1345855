/* main.c — the orderpulse engine: flags, threads, signals, rewinds.
 *
 * Reads the options (conf.h), opens the source, starts one pinned worker per
 * core, the merger and (with Redis) the sink, and waits: for the input to
 * end (--once, which then prints the final snapshot document on stdout), for
 * SIGINT/SIGTERM, or for Redis to disagree with this process (a partition
 * taken over while its records were pending here, a failover that lost
 * commits): then the whole pipeline -- source, workers, merger, sink -- is
 * torn down and started again from what Redis holds (a rewind). The HTTP
 * server and the published snapshot outlive rewinds.
 * Every error before the threads start is one line on stderr and exit 2.
 */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu.h>

#include "engine/claims.h"
#include "engine/conf.h"
#include "engine/io/archive.h"
#include "engine/io/deadletter.h"
#include "engine/intern.h"
#include "engine/merger.h"
#include "engine/parse.h"
#include "engine/io/kafkaconf.h"
#include "engine/io/redis.h"
#include "engine/io/redis_migrate.h"
#include "engine/io/redis_sink.h"
#include "engine/io/redisconn.h"
#include "engine/snapshot.h"
#include "engine/source.h"
#include "engine/util.h"
#include "engine/worker.h"
#include "http/server.h"

#define PROG                "orderpulse"
#define ENV_PREFIX          "ORDERPULSE_"
#define MAX_WORKERS         256
#define ARCHIVE_PATIENCE_MS 10000 /* at exit, how long MariaDB may take no rows */

static const op_conf_spec_t options[] = {
    {"brokers", OP_CONF_VALUE, "HOST:PORT[,...]", "127.0.0.1:9092", "Kafka bootstrap servers"},
    {"topic", OP_CONF_VALUE, "NAME", "orders", "topic of the orders"},
    {"group", OP_CONF_VALUE, "NAME", "orderpulse", "Kafka consumer group"},
    {"kafka-config", OP_CONF_VALUE, "NAME=VALUE,...", NULL,
     "extra librdkafka consumer properties (e.g. session.timeout.ms=6000)"},
    {"source", OP_CONF_VALUE, "kafka|file:PATH", "kafka", "where orders come from"},
    {"on-loss", OP_CONF_VALUE, "continue|stop", "continue",
     "records the broker deleted before they were read: count them and go on, or stop (exit 4)"},
    {"once", OP_CONF_FLAG, NULL, NULL,
     "stop at the end of the input (the file, or the end offsets seen at start), print the "
     "final snapshot on stdout"},
    {"workers", OP_CONF_VALUE, "N", NULL,
     "worker threads, each pinned to a core (default: online CPUs)"},
    {"tick", OP_CONF_VALUE, "DURATION", "1s",
     "how often shards are merged and a snapshot published"},
    {"lateness", OP_CONF_VALUE, "DURATION", "5s", "allowed out-of-orderness of event times"},
    {"late", OP_CONF_VALUE, "apply|drop", "apply",
     "whether late orders still count in their window"},
    {"retention", OP_CONF_VALUE, "DURATION", "24h",
     "how long windows are kept, back from the watermark"},
    {"idle", OP_CONF_VALUE, "DURATION", "10s",
     "a partition without records this long no longer holds the watermark back"},
    {"timezone", OP_CONF_VALUE, "OFFSET", "+08:00", "time zone of orderTime (e.g. +08:00, UTC)"},
    {"display-timezone", OP_CONF_VALUE, "OFFSET", NULL,
     "time zone the dashboard shows times in (default: --timezone)"},
    {"dead-letter", OP_CONF_VALUE, "FILE|kafka:TOPIC", NULL, "where rejected records are copied"},
    {"snapshot-file", OP_CONF_VALUE, "PATH", NULL, "also write each tick's snapshot document here"},
    {"redis", OP_CONF_VALUE, "HOST:PORT|sentinel://HOST:PORT[,...]/MASTER|none", "none",
     "Redis holding the exactly-once cumulative state and offsets: a Redis, any node of a Redis "
     "Cluster, or Sentinels and the primary's name (none: memory only)"},
    {"redis-password", OP_CONF_VALUE, "PASSWORD", NULL, "Redis AUTH password"},
    {"redis-sentinel-password", OP_CONF_VALUE, "PASSWORD", NULL,
     "AUTH password of the Sentinels (--redis sentinel://...)"},
    {"redis-min-replicas", OP_CONF_VALUE, "N", "0",
     "a commit counts once N replicas have it (WAIT): fewer rewinds after a failover, a round "
     "trip more per commit"},
    {"view", OP_CONF_VALUE, "local|redis", NULL,
     "obsolete: with --redis every engine serves the global state (it folds the other engines' "
     "commits)"},
    {"redis-migrate", OP_CONF_FLAG, NULL, NULL,
     "convert the keys of --redis-prefix from layout 1 to layout 2, then exit"},
    {"redis-timeout", OP_CONF_VALUE, "DURATION", "2s", "Redis connect and command timeout"},
    {"redis-max-lag", OP_CONF_VALUE, "DURATION", "30s",
     "/readyz fails once the oldest tick not yet in Redis is older than this"},
    {"redis-prefix", OP_CONF_VALUE, "PREFIX", "{op}", "prefix (hash tag) of every Redis key"},
    {"pending-max-users", OP_CONF_VALUE, "N", "2000000",
     "while Redis is unreachable, pause consumption once this many users wait to be flushed"},
    {"archive", OP_CONF_VALUE, "mysql://USER[:PASS]@HOST[:PORT]/DB", NULL,
     "also keep every final window in MariaDB/MySQL, for good (docs/OPERATIONS.md)"},
    {"archive-max-pending", OP_CONF_VALUE, "N", "1000000",
     "rows that may wait for the archive; past it they are dropped and offered again once it "
     "answers"},
    {"http", OP_CONF_VALUE, "[ADDR:]PORT", NULL,
     "serve the API and the dashboard here (HTTP/1.1 and HTTP/2; default: no server)"},
    {"http-threads", OP_CONF_VALUE, "N", "1", "HTTP threads, each with its own event loop"},
    {"static-dir", OP_CONF_VALUE, "DIR", NULL,
     "the dashboard's files (default: http/static beside the executable's bin/)"},
    {"tls-cert", OP_CONF_VALUE, "FILE", NULL, "PEM certificate chain: serve HTTPS (h2 by ALPN)"},
    {"tls-key", OP_CONF_VALUE, "FILE", NULL, "PEM private key of --tls-cert"},
    {"cors-origin", OP_CONF_VALUE, "ORIGIN", NULL,
     "Access-Control-Allow-Origin of the API answers (default: none)"},
};
#define NOPTIONS (sizeof(options) / sizeof(options[0]))

typedef struct engine_conf {
    op_source_conf_t src;
    op_merger_conf_t merger;
    int64_t lateness_ms;
    int late_drop;
    int32_t tz_offset_s;
    const char *dead_letter;
    op_redis_conf_t redis; /* host and sentinels NULL: --redis none */
    char redis_addr[1024];
    op_archive_conf_t archive; /* url NULL: no --archive */
    op_http_conf_t http;       /* listen NULL: no --http */
    char static_dir[PATH_MAX], vendor_dir[PATH_MAX];
} engine_conf_t;

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

static int redis_on(const engine_conf_t *ec)
{
    return ec->redis.host || ec->redis.sentinels;
}

static int read_redis_conf(const op_conf_t *c, engine_conf_t *ec, char *err, size_t errlen)
{
    const char *spec = op_conf_get(c, "redis");
    const char *view = op_conf_get(c, "view");
    if (view && strcmp(view, "local") != 0 && strcmp(view, "redis") != 0)
        return op_conf_error(err, errlen, "--view: expected local or redis, got '%s'", view);
    if (strcmp(spec, "none") == 0) {
        if (view && strcmp(view, "redis") == 0)
            return op_conf_error(err, errlen, "--view redis needs --redis HOST:PORT");
        return 0;
    }
    if (view)
        fprintf(stderr, PROG ": --view is obsolete: with --redis every engine serves the global "
                             "state\n");
    int64_t v;
    if (op_redisconn_parse(spec, ec->redis_addr, sizeof(ec->redis_addr), &ec->redis, err, errlen) <
        0)
        return -EINVAL;
    ec->redis.password = op_conf_get(c, "redis-password");
    ec->redis.sentinel_password = op_conf_get(c, "redis-sentinel-password");
    if (ec->redis.sentinel_password && !ec->redis.sentinels)
        return op_conf_error(err, errlen,
                             "--redis-sentinel-password needs --redis sentinel://HOST:PORT/MASTER");
    if (op_conf_parse_i64("--redis-min-replicas", op_conf_get(c, "redis-min-replicas"), 0, 64, &v,
                          err, errlen) < 0)
        return -EINVAL;
    ec->redis.min_replicas = (int)v;
    ec->redis.prefix = op_conf_get(c, "redis-prefix");
    if (op_conf_parse_duration_ms("--redis-timeout", op_conf_get(c, "redis-timeout"), 10, 600000,
                                  &v, err, errlen) < 0)
        return -EINVAL;
    ec->redis.timeout_ms = (int)v;
    if (op_conf_parse_duration_ms("--redis-max-lag", op_conf_get(c, "redis-max-lag"), 100,
                                  86400000LL, &ec->merger.redis_max_lag_ms, err, errlen) < 0)
        return -EINVAL;
    if (op_conf_parse_i64("--pending-max-users", op_conf_get(c, "pending-max-users"), 1000,
                          INT64_MAX, &ec->merger.pending_max_users, err, errlen) < 0)
        return -EINVAL;
    return 0;
}

/* --archive (engine/io/archive.h): the URL is checked now, MariaDB later. */
static int read_archive_conf(const op_conf_t *c, engine_conf_t *ec, char *err, size_t errlen)
{
    op_archive_conf_t *a = &ec->archive;
    a->url = op_conf_get(c, "archive");
    if (!a->url)
        return 0;
    op_archive_db_t db;
    if (op_archive_parse_url(a->url, &db, err, errlen) < 0 ||
        op_conf_parse_i64("--archive-max-pending", op_conf_get(c, "archive-max-pending"), 1000,
                          INT64_MAX, &a->max_pending_rows, err, errlen) < 0)
        return -EINVAL;
    a->tz_ms = (int64_t)ec->tz_offset_s * 1000;
    a->retention_ms = ec->merger.retention_ms;
    ec->merger.tz_ms = a->tz_ms;
    return 0;
}

/* The HTTP server's options (server.h). */
static int read_http_conf(const op_conf_t *c, engine_conf_t *ec, char *err, size_t errlen)
{
    op_http_conf_t *h = &ec->http;
    int64_t v;
    if (op_conf_parse_i64("--http-threads", op_conf_get(c, "http-threads"), 1, OP_HTTP_MAX_THREADS,
                          &v, err, errlen) < 0)
        return -EINVAL;
    h->threads = (int)v;
    h->tls_cert = op_conf_get(c, "tls-cert");
    h->tls_key = op_conf_get(c, "tls-key");
    if (!h->tls_cert != !h->tls_key)
        return op_conf_error(err, errlen, "--tls-cert and --tls-key go together");
    h->cors_origin = op_conf_get(c, "cors-origin");
    const char *o = h->cors_origin;
    while (o && *o > 0x20 && *o < 0x7f) /* it becomes a header value */
        o++;
    if (o && (*o || o == h->cors_origin))
        return op_conf_error(err, errlen,
                             "--cors-origin: expected an origin such as https://host or *");
    h->listen = op_conf_get(c, "http");
    if (!h->listen)
        return 0;
    if (op_http_check_listen(h->listen, err, errlen) < 0 ||
        op_http_find_dirs(op_conf_get(c, "static-dir"), ec->static_dir, sizeof(ec->static_dir),
                          ec->vendor_dir, sizeof(ec->vendor_dir), err, errlen) < 0)
        return -EINVAL;
    h->static_dir = ec->static_dir[0] ? ec->static_dir : NULL;
    h->vendor_dir = ec->vendor_dir[0] ? ec->vendor_dir : NULL;
    return 0;
}

/* Turns the option strings into engine_conf_t. 0 or -EINVAL with err. */
static int read_conf(const op_conf_t *c, engine_conf_t *ec, char *err, size_t errlen)
{
    int64_t v;
    memset(ec, 0, sizeof(*ec));
    const char *source = op_conf_get(c, "source");
    if (strncmp(source, "file:", 5) == 0) {
        if (!source[5])
            return op_conf_error(err, errlen, "--source: file: needs a path");
        ec->src.file = source + 5;
    } else if (strcmp(source, "kafka") != 0) {
        return op_conf_error(err, errlen, "--source: expected kafka or file:PATH, got '%s'",
                             source);
    }
    ec->src.brokers = op_conf_get(c, "brokers");
    ec->src.topic = op_conf_get(c, "topic");
    ec->src.group = op_conf_get(c, "group");
    ec->src.kafka_config = op_conf_get(c, "kafka-config");
    if (op_kafkaconf_check(ec->src.kafka_config, err, errlen) < 0)
        return -EINVAL;
    ec->src.once = op_conf_flag(c, "once");
    static const char *const on_loss[] = {"continue", "stop", NULL};
    if (op_conf_parse_choice("--on-loss", op_conf_get(c, "on-loss"), on_loss, &ec->src.on_loss_stop,
                             err, errlen) < 0)
        return -EINVAL;
    ec->src.batch_max = 1024;
    ec->src.nworkers = online_cpus();
    if (op_conf_get(c, "workers")) {
        if (op_conf_parse_i64("--workers", op_conf_get(c, "workers"), 1, MAX_WORKERS, &v, err,
                              errlen) < 0)
            return -EINVAL;
        ec->src.nworkers = (int)v;
    }
    op_merger_conf_t *m = &ec->merger;
    m->nworkers = ec->src.nworkers;
    m->once = ec->src.once;
    if (op_conf_parse_duration_ms("--tick", op_conf_get(c, "tick"), 10, 3600000, &m->tick_ms, err,
                                  errlen) < 0 ||
        op_conf_parse_duration_ms("--lateness", op_conf_get(c, "lateness"), 0, 86400000LL * 7,
                                  &ec->lateness_ms, err, errlen) < 0 ||
        op_conf_parse_duration_ms("--retention", op_conf_get(c, "retention"), 60000,
                                  86400000LL * 366, &m->retention_ms, err, errlen) < 0 ||
        op_conf_parse_duration_ms("--idle", op_conf_get(c, "idle"), 0, 86400000LL, &m->idle_ms, err,
                                  errlen) < 0)
        return -EINVAL;
    m->lateness_ms = ec->lateness_ms;
    static const char *const late_choices[] = {"apply", "drop", NULL};
    if (op_conf_parse_choice("--late", op_conf_get(c, "late"), late_choices, &ec->late_drop, err,
                             errlen) < 0)
        return -EINVAL;
    if (op_parse_tz_offset(op_conf_get(c, "timezone"), &ec->tz_offset_s) < 0)
        return op_conf_error(err, errlen,
                             "--timezone: expected UTC or an offset like +08:00, got '%s'",
                             op_conf_get(c, "timezone"));
    const char *display_tz = op_conf_get(c, "display-timezone");
    m->display_tz_offset_s = ec->tz_offset_s;
    if (display_tz && op_parse_tz_offset(display_tz, &m->display_tz_offset_s) < 0)
        return op_conf_error(err, errlen,
                             "--display-timezone: expected UTC or an offset like +08:00, got '%s'",
                             display_tz);
    if (read_redis_conf(c, ec, err, errlen) < 0 || read_archive_conf(c, ec, err, errlen) < 0)
        return -EINVAL;
    ec->dead_letter = op_conf_get(c, "dead-letter");
    m->snapshot_file = op_conf_get(c, "snapshot-file");
    if (m->snapshot_file &&
        op_conf_check_output_file("--snapshot-file", m->snapshot_file, err, errlen) < 0)
        return -EINVAL;
    return read_http_conf(c, ec, err, errlen);
}

/* --- claims: where each partition resumes (Redis, never Kafka) -------------- */

/* What the claim hook needs. The connection is the claimer's own: the Kafka
 * poll thread's, or main's while the source opens. */
typedef struct claimer {
    op_redis_t *conn;
    const char *writer, *source;
    op_claims_t *claims;
    op_merger_t *merger;
    int rewind; /* __atomic: a claim found pending records someone else may have read */
    int fatal;  /* __atomic: Redis's state is gone, replaced or damaged */
    char why[512];
    int64_t last_log_ms;
} claimer_t;

/* source.h start_offset: claims partition p in Redis; *offset is where it
 * resumes: what Redis holds, or after what this process still has pending of
 * it (never read twice). Negative when Redis cannot be asked now. */
static int claim_partition(void *opaque, int32_t p, int64_t *offset)
{
    claimer_t *cl = opaque;
    char field[256], err[512];
    op_redis_sink_field(cl->source, p, field, sizeof(field));
    const char *fields[] = {field};
    op_redis_part_t part;
    int rc = op_redis_claim(cl->conn, cl->writer, 1, fields, &part, err, sizeof(err));
    if (rc == OP_REDIS_ESTATE) {
        snprintf(cl->why, sizeof(cl->why), "%s", err);
        __atomic_store_n(&cl->fatal, 1, __ATOMIC_RELEASE);
        return rc;
    }
    op_claims_t *c = cl->claims;
    if (rc < 0) {
        int64_t now = op_now_mono_ms();
        int64_t had = op_claims_get(&c->epoch[p]);
        if (had) {
            /* Ours before this rebalance: go on from where this process is,
             * under the epoch it holds. If someone else claimed p meanwhile,
             * the next commit's fence refuses it and this process rewinds. */
            int64_t from = op_claims_get(&c->consumed[p]);
            if (from < op_claims_get(&c->committed[p]))
                from = op_claims_get(&c->committed[p]);
            *offset = from < 0 ? RD_KAFKA_OFFSET_BEGINNING : from;
            if (now - cl->last_log_ms >= 5000) {
                fprintf(stderr,
                        PROG ": claiming %s: %s; going on from this engine's own position\n", field,
                        err);
                cl->last_log_ms = now;
            }
            return 0;
        }
        if (now - cl->last_log_ms >= 5000) {
            fprintf(stderr, PROG ": claiming %s: %s; the partition waits\n", field, err);
            cl->last_log_ms = now;
        }
        return -EIO;
    }
    int64_t had = op_claims_get(&c->epoch[p]);
    int64_t consumed = op_claims_get(&c->consumed[p]), committed = op_claims_get(&c->committed[p]);
    if (had && part.epoch != had && consumed > committed) {
        /* Another process owned p meanwhile: what is pending here of p may be
         * counted there too. Start over from Redis. */
        snprintf(cl->why, sizeof(cl->why),
                 "partition %d was owned by another engine while its records up to %lld were "
                 "pending here",
                 (int)p, (long long)consumed);
        __atomic_store_n(&cl->rewind, 1, __ATOMIC_RELEASE);
        return -EAGAIN;
    }
    op_claims_set(&c->epoch[p], part.epoch);
    op_claims_set(&c->committed[p], part.next_offset);
    int64_t resume = part.next_offset;
    if (had && part.epoch == had && consumed > resume)
        resume = consumed; /* still ours: continue after what is pending */
    else
        op_claims_reset_lateness(c, p, part.max_event_ms);
    *offset = resume < 0 ? RD_KAFKA_OFFSET_BEGINNING : resume;
    return 0;
}

/* Before partitions are given up: hold the workers and wait until everything
 * they consumed is in Redis, so that the next owner (maybe this process
 * again) resumes exactly after it. If Redis does not take it in time, it
 * stays pending and the fences decide. */
static void on_revoke(void *opaque)
{
    claimer_t *cl = opaque;
    if (!op_merger_running(cl->merger))
        return; /* shutting down: what was not committed is simply read again */
    op_merger_set_rebalancing(cl->merger, 1);
    int64_t t0 = op_now_mono_ms();
    int rc = op_merger_sync(cl->merger, 30000);
    if (rc < 0)
        fprintf(stderr,
                PROG ": rebalance: not everything read is in Redis yet (%s); it stays "
                     "pending\n",
                strerror(-rc));
    else
        fprintf(stderr, PROG ": rebalance: everything read is in Redis (%lld ms)\n",
                (long long)(op_now_mono_ms() - t0));
}

static void on_assigned(void *opaque)
{
    op_merger_set_rebalancing(((claimer_t *)opaque)->merger, 0);
}

/* --- one run of the pipeline --------------------------------------------------- */

/* What outlives a rewind. Owner: main. */
typedef struct engine {
    engine_conf_t *ec;
    op_intern_t *dict;
    op_snapshot_pub_t pub;
    op_http_t *http_live; /* __atomic: read by the merger's publish hook */
    op_merger_t *merger;  /* __atomic: the current run's, for /readyz */
    uint64_t rewinds;
    op_archive_t *archive; /* --archive, or NULL: outlives rewinds too */
    /* What the run that asked for a rewind held, for the next run's line on
     * how much went back. */
    int back_valid;
    int64_t back_pos, back_records;
    int back_nparts;
    int64_t back_next[OP_SOURCE_MAX_PARTITIONS]; /* committed next offset, -1: none */
    pthread_t main_thread;
    int64_t final_at_ms;     /* __atomic: when the final snapshot was published */
    long final_rss_kib;      /* written before final_at_ms is released; read after it */
    int64_t inputs_ended_ms; /* likewise: when the last worker's input ended */
    int64_t started_ms;
} engine_t;

/* The merger's publish hook: wakes the HTTP threads once the server runs. */
static void notify_http(void *arg)
{
    engine_t *e = arg;
    op_http_t *http = __atomic_load_n(&e->http_live, __ATOMIC_ACQUIRE);
    if (http)
        op_http_notify(http);
}

/* /readyz beside "a snapshot exists": a merger runs and (with Redis) Redis
 * takes the commits without falling too far behind. */
static int engine_ready(void *arg)
{
    engine_t *e = arg;
    op_merger_t *m = __atomic_load_n(&e->merger, __ATOMIC_ACQUIRE);
    return m && op_merger_running(m) && op_merger_redis_ok(m);
}

/* Anonymous resident memory in KiB (the heap, not the mapped input file),
 * for the once summary: what the benchmarks compare per user. */
static long rss_anon_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "RssAnon: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* The merger's final snapshot wakes the main thread out of sigtimedwait.
 * The memory figure is taken here, while the state is whole: by the time
 * the summary is printed, the teardown has freed it. */
static void wake_main(void *arg, int64_t inputs_ended_ms)
{
    engine_t *e = arg;
    e->final_rss_kib = rss_anon_kib();
    e->inputs_ended_ms = inputs_ended_ms;
    __atomic_store_n(&e->final_at_ms, op_now_mono_ms(), __ATOMIC_RELEASE);
    pthread_kill(e->main_thread, SIGUSR1);
}

/* The sink's events ring the merger. */
static void wake_merger(void *arg)
{
    op_merger_t *m = __atomic_load_n((op_merger_t **)arg, __ATOMIC_ACQUIRE);
    if (m)
        op_merger_wake(m);
}

static void new_writer_id(char *out, size_t len)
{
    unsigned char raw[8] = {0};
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(raw, 1, sizeof(raw), f) != sizeof(raw)) {
        int64_t t = op_now_wall_ms() ^ ((int64_t)getpid() << 20);
        memcpy(raw, &t, sizeof(raw));
    }
    if (f)
        fclose(f);
    size_t n = 0;
    for (size_t i = 0; i < sizeof(raw) && n + 3 <= len; i++)
        n += (size_t)snprintf(out + n, len - n, "%02x", raw[i]);
}

#define RUN_DONE   0 /* --once finished, or a signal */
#define RUN_REWIND 1
#define RUN_FAILED 2 /* message printed; *status set */
#define RUN_LOSS   3 /* --on-loss stop: the broker lost records (logged by the source) */

/* Waits for a signal, the end (--once), a reason to rewind, or --on-loss
 * stop. */
static int wait_run(engine_t *e, op_merger_t *merger, op_source_t *src, claimer_t *cl,
                    sigset_t *signals)
{
    for (;;) {
        struct timespec poll = {.tv_sec = 0, .tv_nsec = 100 * 1000000};
        int sig = sigtimedwait(signals, NULL, &poll);
        if (op_source_failed(src)) /* before the end: --once ends after a loss too */
            return RUN_LOSS;
        if (sig == SIGINT || sig == SIGTERM)
            return RUN_DONE;
        if (sig == SIGUSR1 && e->ec->src.once)
            return op_source_failed(src) ? RUN_LOSS : RUN_DONE;
        if (cl && __atomic_load_n(&cl->fatal, __ATOMIC_ACQUIRE)) {
            fprintf(stderr, PROG ": stopping: %s\n", cl->why);
            return RUN_FAILED;
        }
        if (cl && __atomic_load_n(&cl->rewind, __ATOMIC_ACQUIRE)) {
            fprintf(stderr, PROG ": rewinding: %s\n", cl->why);
            return RUN_REWIND;
        }
        if (!op_merger_running(merger)) {
            int v = op_merger_verdict(merger);
            if (v == OP_MERGER_REWIND)
                return RUN_REWIND;
            if (v == OP_MERGER_FATAL)
                return RUN_FAILED;
            return op_source_failed(src) ? RUN_LOSS : RUN_DONE; /* once: done */
        }
    }
}

/* A run is about to rewind: what it believed committed (its own partitions'
 * committed offsets, the others' as folded from the log) and served. */
static void remember_before_rewind(engine_t *e, op_redis_sink_t *sink, op_merger_t *merger,
                                   const op_claims_t *claims)
{
    const op_state_t *st = op_merger_state(merger);
    e->back_valid = 1;
    e->back_pos = op_redis_sink_read_pos(sink);
    e->back_records = st->totals.orders + st->bad_total;
    e->back_nparts = st->nparts_seen;
    for (int p = 0; p < st->nparts_seen; p++)
        e->back_next[p] = op_claims_get(&claims->epoch[p]) ? op_claims_get(&claims->committed[p])
                                                           : st->parts[p].next_offset;
}

/* The rewound run has loaded what Redis holds: one line on how far back that
 * is -- the log position, the committed records that Redis lost (they are
 * read again) and how far the served figures step back. */
static void report_rewind(engine_t *e, op_redis_sink_t *sink, op_merger_t *merger)
{
    if (!e->back_valid)
        return;
    e->back_valid = 0;
    const op_state_t *st = op_merger_state(merger);
    int64_t lost = 0, pos = op_redis_sink_read_pos(sink);
    int nlost = 0;
    char parts[256] = "";
    size_t used = 0;
    for (int p = 0; p < e->back_nparts; p++) {
        int64_t had = e->back_next[p], now = p < st->nparts_seen ? st->parts[p].next_offset : -1;
        if (had <= now)
            continue;
        lost += had - (now < 0 ? 0 : now);
        if (nlost++ < 6 && used < sizeof(parts))
            used += (size_t)snprintf(parts + used, sizeof(parts) - used, "%s%d: %lld->%lld",
                                     nlost > 1 ? ", " : " (", p, (long long)had, (long long)now);
    }
    if (nlost && used < sizeof(parts))
        snprintf(parts + used, sizeof(parts) - used, "%s)", nlost > 6 ? ", ..." : "");
    int64_t records = st->totals.orders + st->bad_total;
    fprintf(stderr,
            PROG ": rewind %llu: Redis holds log position %lld, this engine had read %lld%s; "
                 "%lld committed records in %d partition(s) are read again%s; the figures step "
                 "back %lld records\n",
            (unsigned long long)e->rewinds, (long long)pos, (long long)e->back_pos,
            pos < e->back_pos ? " (Redis went back in time: commits were lost)" : "",
            (long long)lost, nlost, parts,
            (long long)(e->back_records > records ? e->back_records - records : 0));
}

/* One run: Redis state, source, workers, merger, sink; then the teardown.
 * Returns RUN_DONE, RUN_REWIND or RUN_FAILED (with *status). */
static int run_once(engine_t *e, sigset_t *signals, int first, int *status)
{
    engine_conf_t *ec = e->ec;
    char err[OP_SOURCE_ERRLEN + 512];
    int n = ec->src.nworkers, verdict = RUN_FAILED;
    op_source_t *src = NULL;
    op_deadletter_t *dl = NULL;
    op_merger_t *merger = NULL, *merger_live = NULL;
    op_redis_sink_t *sink = NULL;
    op_redis_t *claim_conn = NULL;
    op_worker_t *workers[MAX_WORKERS] = {0};
    op_claims_t *claims = NULL;
    claimer_t cl = {0};
    char writer[32], source_id[200];
    op_source_conf_t srcconf = ec->src;
    op_merger_conf_t mconf = ec->merger;
    *status = 1;

    mconf.dict = e->dict;
    mconf.pub = &e->pub;
    mconf.on_final = wake_main;
    mconf.on_final_arg = e;
    mconf.on_publish = notify_http;
    mconf.on_publish_arg = e;
    mconf.rewinds = e->rewinds;
    mconf.archive = e->archive;
    if (redis_on(ec)) {
        claims = malloc(sizeof(*claims));
        if (!claims) {
            fprintf(stderr, PROG ": out of memory\n");
            goto teardown;
        }
        op_claims_init(claims);
        new_writer_id(writer, sizeof(writer));
        if (ec->src.file) {
            if (op_source_file_fingerprint(ec->src.file, source_id, sizeof(source_id), err,
                                           sizeof(err)) < 0) {
                fprintf(stderr, PROG ": %s\n", err);
                *status = 2;
                goto teardown;
            }
        } else {
            snprintf(source_id, sizeof(source_id), "kafka:%s", ec->src.topic);
        }
        op_redis_sink_conf_t sc = {
            .redis = ec->redis,
            .writer = writer,
            .source = source_id,
            .dict = e->dict,
            .claims = claims,
            .retention_ms = ec->merger.retention_ms,
            .tail_ms = ec->merger.tick_ms > 1000 ? ec->merger.tick_ms : 1000,
            .wake = wake_merger,
            .wake_arg = &merger_live,
        };
        /* The first run fails fast (a wrong address or password is one line);
         * a rewind waits for Redis to come back. */
        for (int attempt = 0;; attempt++) {
            int rc = op_redis_sink_create(&sink, &sc, err, sizeof(err));
            if (rc == 0)
                break;
            if (first || rc == OP_REDIS_ESTATE || rc == -EACCES) {
                fprintf(stderr, PROG ": %s\n", err);
                goto teardown;
            }
            if (attempt % 10 == 0)
                fprintf(stderr, PROG ": rewinding: waiting for Redis: %s\n", err);
            struct timespec pause = {.tv_sec = 1, .tv_nsec = 0};
            if (sigtimedwait(signals, NULL, &pause) > 0) {
                verdict = RUN_DONE;
                *status = 0;
                goto teardown;
            }
        }
        mconf.sink = sink;
    }
    if (op_merger_create(&merger, &mconf) < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        goto teardown;
    }
    if (sink) {
        /* The dashboard starts from the whole history, every engine's. */
        if (op_redis_sink_load(sink, op_merger_state(merger), err, sizeof(err)) < 0) {
            fprintf(stderr, PROG ": loading the state from Redis: %s\n", err);
            goto teardown;
        }
        report_rewind(e, sink, merger);
        if (op_redis_create(&claim_conn, &ec->redis) < 0) {
            fprintf(stderr, PROG ": out of memory\n");
            goto teardown;
        }
        op_redis_set_generation(claim_conn, op_redis_sink_generation(sink));
        cl = (claimer_t){.conn = claim_conn,
                         .writer = writer,
                         .source = source_id,
                         .claims = claims,
                         .merger = merger};
        srcconf.start_offset = claim_partition;
        srcconf.on_revoke = on_revoke;
        srcconf.on_assigned = on_assigned;
        srcconf.start_opaque = &cl;
        if (ec->src.file &&
            op_redis_file_chunks(claim_conn, source_id, n, &srcconf.chunks, err, sizeof(err)) < 0) {
            fprintf(stderr, PROG ": %s\n", err);
            goto teardown;
        }
    }
    if (op_source_open(&src, &srcconf, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        *status = first ? 1 : 1;
        goto teardown;
    }
    if (ec->dead_letter && op_deadletter_open(&dl, ec->dead_letter, ec->src.brokers,
                                              ec->src.kafka_config, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": --dead-letter: %s\n", err);
        goto teardown;
    }
    op_merger_set_source(merger, src);
    int ncpu = online_cpus();
    for (int i = 0; i < n; i++) {
        op_worker_conf_t wc = {
            .id = i,
            .cpu = i % ncpu,
            .input = op_source_input(src, i),
            .merger = merger,
            .claims = claims,
            .dict = e->dict,
            .dead_letters = dl,
            .lateness_ms = ec->lateness_ms,
            .late_drop = ec->late_drop,
            .tz_offset_s = ec->tz_offset_s,
            .days = e->archive != NULL,
        };
        if (op_worker_create(&workers[i], &wc) < 0 || op_worker_start(workers[i]) < 0) {
            fprintf(stderr, PROG ": cannot start worker %d\n", i);
            goto teardown;
        }
    }
    __atomic_store_n(&merger_live, merger, __ATOMIC_RELEASE);
    if (op_merger_start(merger) < 0 || (sink && op_redis_sink_start(sink) < 0)) {
        fprintf(stderr, PROG ": cannot start the merger\n");
        goto teardown;
    }
    __atomic_store_n(&e->merger, merger, __ATOMIC_RELEASE);
    verdict = wait_run(e, merger, src, sink ? &cl : NULL, signals);
    if (verdict == RUN_LOSS) {
        *status = 4;
    } else if (verdict == RUN_FAILED && __atomic_load_n(&cl.fatal, __ATOMIC_ACQUIRE)) {
        *status = 3;
    } else if (verdict == RUN_FAILED) {
        char why[512] = "";
        if (sink)
            op_redis_sink_reason(sink, why, sizeof(why));
        fprintf(stderr, PROG ": stopping: %s\n", why[0] ? why : "the merger stopped");
        *status = 3;
    } else {
        *status = 0;
    }

teardown:
    __atomic_store_n(&e->merger, NULL, __ATOMIC_RELEASE);
    if (merger)
        op_merger_stop(merger);
    for (int i = 0; i < n; i++)
        if (workers[i])
            op_worker_stop(workers[i]);
    for (int i = 0; i < n; i++)
        if (workers[i])
            op_worker_join(workers[i]);
    if (merger)
        op_merger_join(merger);
    /* The merger's work after the final snapshot (the archive's user days)
     * is done: the state is whole only now. */
    if (merger && ec->src.once && __atomic_load_n(&e->final_at_ms, __ATOMIC_ACQUIRE)) {
        long kib = rss_anon_kib();
        if (kib > e->final_rss_kib)
            e->final_rss_kib = kib;
    }
    if (sink)
        op_redis_sink_stop(sink);
    if (verdict == RUN_REWIND && sink && merger)
        remember_before_rewind(e, sink, merger, claims);
    __atomic_store_n(&merger_live, NULL, __ATOMIC_RELEASE);
    /* The source closes before the merger goes: its rebalance hooks (the
     * consumer's close revokes) still reach the merger, which no longer runs. */
    op_source_close(src);
    for (int i = 0; i < n; i++)
        op_worker_destroy(workers[i]);
    op_merger_destroy(merger);
    op_deadletter_close(dl);
    op_redis_sink_destroy(sink);
    op_redis_destroy(claim_conn);
    free(claims);
    return verdict;
}

/* --once: the final snapshot on stdout and a summary line on stderr. */
static int print_final(engine_t *e)
{
    int rc = 0;
    const op_snapshot_t *s = op_snapshot_acquire(&e->pub);
    if (s && s->res[OP_RES_SNAPSHOT].len && __atomic_load_n(&e->final_at_ms, __ATOMIC_ACQUIRE)) {
        /* Up to the final snapshot, not to the end of the shutdown. */
        int64_t end_ms = __atomic_load_n(&e->final_at_ms, __ATOMIC_ACQUIRE);
        double secs = (double)(end_ms - e->started_ms) / 1000.0;
        int64_t records = s->orders + s->bad_records;
        /* What came after the last worker's input ended is the merger's
         * alone: the benchmarks tell the workers' scaling from it. */
        double ended = e->inputs_ended_ms > e->started_ms
                           ? (double)(e->inputs_ended_ms - e->started_ms) / 1000.0
                           : secs;
        fprintf(stderr,
                PROG ": once: %lld records (%lld orders, %lld bad, %lld late) in %.3f s, "
                     "%.0f records/s, %d workers, %lld users, rss_anon %ld KiB, "
                     "last input ended at %.3f s\n",
                (long long)records, (long long)s->orders, (long long)s->bad_records,
                (long long)s->late_records, secs, secs > 0 ? records / secs : 0.0,
                e->ec->src.nworkers, (long long)s->users, e->final_rss_kib, ended);
        fwrite(s->res[OP_RES_SNAPSHOT].buf, 1, s->res[OP_RES_SNAPSHOT].len, stdout);
    } else {
        fprintf(stderr, PROG ": stopped before the input was complete\n");
        rc = 1;
    }
    op_snapshot_release(s);
    if (fflush(stdout) != 0) {
        fprintf(stderr, PROG ": cannot write the snapshot: %s\n", strerror(errno));
        rc = 1;
    }
    return rc;
}

static int run(engine_conf_t *ec, sigset_t *signals)
{
    engine_t e = {.ec = ec, .main_thread = pthread_self(), .started_ms = op_now_mono_ms()};
    int status = 1;
    if (op_intern_create(&e.dict) < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    op_http_t *http = NULL;
    op_archive_t *archive = NULL;
    if (ec->archive.url) {
        char err[OP_SOURCE_ERRLEN];
        if (op_archive_create(&archive, &ec->archive, e.dict, err, sizeof(err)) < 0) {
            fprintf(stderr, PROG ": %s\n", err);
            goto out;
        }
        if (err[0]) /* MariaDB did not answer: the archive keeps trying */
            fprintf(stderr, PROG ": %s; retrying in the background\n", err);
        if (op_archive_start(archive) < 0) {
            fprintf(stderr, PROG ": cannot start the archive thread\n");
            goto out;
        }
        const op_archive_db_t *db = op_archive_db(archive);
        fprintf(stderr, PROG ": archive: final windows go to %s@%s:%u/%s\n", db->user, db->host,
                db->port, db->db);
        e.archive = archive;
    }
    if (ec->http.listen) {
        char herr[OP_HTTP_ERRLEN];
        ec->http.pub = &e.pub;
        ec->http.ready = engine_ready;
        ec->http.ready_arg = &e;
        ec->http.archive = archive;
        if (op_http_start(&http, &ec->http, herr, sizeof(herr)) < 0) {
            fprintf(stderr, PROG ": %s\n", herr);
            status = 2;
            goto out;
        }
        __atomic_store_n(&e.http_live, http, __ATOMIC_RELEASE);
        fprintf(stderr, PROG ": http: listening on %s (%d thread%s%s)\n", op_http_address(http),
                ec->http.threads, ec->http.threads == 1 ? "" : "s",
                ec->http.tls_cert ? ", TLS" : "");
    }
    for (int first = 1;; first = 0) {
        int v = run_once(&e, signals, first, &status);
        if (v != RUN_REWIND)
            break;
        e.rewinds++;
        fprintf(stderr, PROG ": rewinding: reloading the state from Redis (rewind %llu)\n",
                (unsigned long long)e.rewinds);
    }
    if (status == 0 && ec->src.once)
        status = print_final(&e);
out:
    __atomic_store_n(&e.http_live, NULL, __ATOMIC_RELEASE);
    op_http_stop(http);
    /* After the final snapshot (--once prints it first): what the merger
     * offered last goes to MariaDB before the process ends. */
    op_archive_destroy(archive, ARCHIVE_PATIENCE_MS);
    op_snapshot_pub_dispose(&e.pub);
    op_intern_destroy(e.dict);
    return status;
}

int main(int argc, char **argv)
{
    op_conf_t conf;
    char err[OP_CONF_ERRLEN];
    int rc = op_conf_load(&conf, options, NOPTIONS, ENV_PREFIX, argc, argv, err, sizeof(err));
    if (rc == OP_CONF_HELP) {
        op_conf_usage(options, NOPTIONS, ENV_PREFIX, PROG " [OPTIONS]",
                      "Real-time order analytics: consumes orders, aggregates the eight dashboard "
                      "metrics exactly.",
                      stdout);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return 2;
    }
    engine_conf_t ec;
    if (read_conf(&conf, &ec, err, sizeof(err)) < 0) {
        op_conf_locate_error(&conf, err, sizeof(err));
        fprintf(stderr, PROG ": %s\n", err);
        op_conf_dispose(&conf);
        return 2;
    }
    if (op_conf_flag(&conf, "redis-migrate")) {
        if (!redis_on(&ec)) {
            fprintf(stderr, PROG ": --redis-migrate needs --redis HOST:PORT\n");
            op_conf_dispose(&conf);
            return 2;
        }
        rcu_register_thread();
        op_intern_t *dict = NULL;
        char msg[OP_CONF_ERRLEN + 512];
        rc = op_intern_create(&dict) < 0 ? -ENOMEM
                                         : op_redis_migrate(&ec.redis, dict, msg, sizeof(msg));
        fprintf(stderr, PROG ": %s\n", rc < 0 && rc != -ENOMEM ? msg : rc ? "out of memory" : msg);
        op_intern_destroy(dict);
        rcu_unregister_thread();
        op_conf_dispose(&conf);
        return rc < 0 ? 1 : 0;
    }
    /* Signals are taken by the main thread only (sigtimedwait); every thread
     * created from here on inherits the mask. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    rcu_register_thread();
    rc = run(&ec, &signals);
    rcu_unregister_thread();
    op_conf_dispose(&conf);
    return rc;
}
