/* main.c — the orderpulse engine: flags, threads, signals.
 *
 * Reads the options (conf.h), opens the source, starts one pinned worker per
 * core and the merger, and waits: for the input to end (--once, which then
 * prints the final snapshot document on stdout) or for SIGINT/SIGTERM.
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

#include "engine/conf.h"
#include "engine/io/deadletter.h"
#include "engine/intern.h"
#include "engine/merger.h"
#include "engine/parse.h"
#include "engine/io/redis.h"
#include "engine/snapshot.h"
#include "engine/source.h"
#include "engine/util.h"
#include "engine/worker.h"
#include "http/server.h"

#define PROG        "orderpulse"
#define ENV_PREFIX  "ORDERPULSE_"
#define MAX_WORKERS 256

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
    {"redis", OP_CONF_VALUE, "HOST:PORT|none", "none",
     "Redis holding the exactly-once cumulative state and offsets (none: memory only)"},
    {"redis-password", OP_CONF_VALUE, "PASSWORD", NULL, "Redis AUTH password"},
    {"view", OP_CONF_VALUE, "local|redis", "local",
     "local: snapshots of this process's state; redis: of the global state in Redis (scale-out)"},
    {"redis-prefix", OP_CONF_VALUE, "PREFIX", "{op}", "prefix (hash tag) of every Redis key"},
    {"pending-max-users", OP_CONF_VALUE, "N", "2000000",
     "while Redis is unreachable, pause consumption once this many users wait to be flushed"},
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
    op_redis_conf_t redis; /* host NULL: --redis none */
    char redis_host[256];
    op_http_conf_t http; /* listen NULL: no --http */
    char static_dir[PATH_MAX], vendor_dir[PATH_MAX];
} engine_conf_t;

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

static int read_redis_conf(const op_conf_t *c, engine_conf_t *ec, char *err, size_t errlen)
{
    const char *spec = op_conf_get(c, "redis");
    if (strcmp(spec, "none") == 0) {
        if (strcmp(op_conf_get(c, "view"), "local") != 0)
            return op_conf_error(err, errlen, "--view redis needs --redis HOST:PORT");
        return 0;
    }
    const char *colon = strrchr(spec, ':');
    int64_t port = 6379;
    size_t hostlen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (colon && op_conf_parse_i64("--redis port", colon + 1, 1, 65535, &port, err, errlen) < 0)
        return -EINVAL;
    if (hostlen == 0 || hostlen >= sizeof(ec->redis_host))
        return op_conf_error(err, errlen, "--redis: expected HOST:PORT or none, got '%s'", spec);
    memcpy(ec->redis_host, spec, hostlen);
    ec->redis_host[hostlen] = 0;
    ec->redis.host = ec->redis_host;
    ec->redis.port = (int)port;
    ec->redis.password = op_conf_get(c, "redis-password");
    ec->redis.prefix = op_conf_get(c, "redis-prefix");
    ec->redis.topic = ec->src.topic;
    ec->redis.retention_ms = ec->merger.retention_ms;
    static const char *const views[] = {"local", "redis", NULL};
    if (op_conf_parse_choice("--view", op_conf_get(c, "view"), views, &ec->merger.view_redis, err,
                             errlen) < 0)
        return -EINVAL;
    if (op_conf_parse_i64("--pending-max-users", op_conf_get(c, "pending-max-users"), 1000,
                          INT64_MAX, &ec->merger.pending_max_users, err, errlen) < 0)
        return -EINVAL;
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
    if (read_redis_conf(c, ec, err, errlen) < 0)
        return -EINVAL;
    ec->dead_letter = op_conf_get(c, "dead-letter");
    m->snapshot_file = op_conf_get(c, "snapshot-file");
    if (m->snapshot_file &&
        op_conf_check_output_file("--snapshot-file", m->snapshot_file, err, errlen) < 0)
        return -EINVAL;
    return read_http_conf(c, ec, err, errlen);
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

/* What the Kafka source's rebalance hooks need (they run on its poll
 * thread): a Redis connection of their own and the merger. */
typedef struct rebalance_ctx {
    op_redis_t *redis;
    op_merger_t *merger;
} rebalance_ctx_t;

/* Where a partition resumes: the next offset Redis holds for it (source.h
 * start_offset; called at each assignment). The merger's next flush of the
 * partition is fenced on that same offset. */
static int redis_start_offset(void *opaque, int32_t partition, int64_t *offset)
{
    rebalance_ctx_t *rb = opaque;
    char err[256];
    int64_t offs[OP_SOURCE_MAX_PARTITIONS];
    if (partition < 0 || partition >= OP_SOURCE_MAX_PARTITIONS)
        return -EINVAL;
    if (op_redis_offsets(rb->redis, partition + 1, offs, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": reading offsets from Redis: %s\n", err);
        return -EIO;
    }
    op_merger_set_committed(rb->merger, partition, offs[partition]);
    /* No offset in Redis: nothing of this partition was ever counted, so
     * read it from its beginning (not from Kafka's committed offset, which
     * may be ahead of what reached Redis). */
    *offset = offs[partition] < 0 ? RD_KAFKA_OFFSET_BEGINNING : offs[partition];
    return 0;
}

/* Before partitions are given up: hold the workers and flush everything
 * they consumed, so the next owner (maybe this process again) resumes from
 * Redis exactly after it. If that flush cannot happen, the deltas stay
 * pending and the fence decides at the next flush. */
static void redis_on_revoke(void *opaque)
{
    rebalance_ctx_t *rb = opaque;
    if (!op_merger_running(rb->merger))
        return; /* shutting down: what was not flushed is simply read again */
    op_merger_set_rebalancing(rb->merger, 1);
    int rc = op_merger_sync(rb->merger, 30000);
    if (rc < 0)
        fprintf(stderr, PROG ": rebalance: could not flush before giving partitions up (%s)\n",
                strerror(-rc));
}

static void redis_on_assigned(void *opaque)
{
    op_merger_set_rebalancing(((rebalance_ctx_t *)opaque)->merger, 0);
}

/* The merger's publish hook: wakes the HTTP threads once the server runs. */
static void notify_http(void *arg)
{
    op_http_t *http = __atomic_load_n((op_http_t **)arg, __ATOMIC_ACQUIRE);
    if (http)
        op_http_notify(http);
}

/* /readyz beside "a snapshot exists": the merger still runs, was not
 * fenced, and (with Redis) its last flush reached Redis. */
static int engine_ready(void *arg)
{
    return op_merger_running(arg) && !op_merger_fenced(arg) && op_merger_redis_ok(arg);
}

/* The merger's final snapshot wakes the main thread out of sigtimedwait. */
typedef struct final_signal {
    pthread_t main_thread;
    int64_t at_ms; /* __atomic: when the final snapshot was published (monotonic) */
} final_signal_t;

static void wake_main(void *arg)
{
    final_signal_t *f = arg;
    __atomic_store_n(&f->at_ms, op_now_mono_ms(), __ATOMIC_RELEASE);
    pthread_kill(f->main_thread, SIGUSR1);
}

static int run(engine_conf_t *ec, sigset_t *signals)
{
    char err[OP_SOURCE_ERRLEN];
    int n = ec->src.nworkers, rc = 1;
    op_intern_t *dict = NULL;
    op_source_t *src = NULL;
    op_deadletter_t *dl = NULL;
    op_merger_t *merger = NULL;
    op_redis_t *redis = NULL;
    op_redis_t *offsets_conn = NULL;
    rebalance_ctx_t rebalance = {0};
    op_worker_t *workers[MAX_WORKERS] = {0};
    op_http_t *http = NULL, *http_live = NULL; /* http_live: read by the merger (__atomic) */

    if (op_intern_create(&dict) < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        goto fail;
    }
    final_signal_t final = {.main_thread = pthread_self()};
    ec->merger.dict = dict;
    ec->merger.on_final = wake_main;
    ec->merger.on_final_arg = &final;
    ec->merger.on_publish = notify_http;
    ec->merger.on_publish_arg = &http_live;
    if (ec->redis.host) {
        if (op_redis_connect(&redis, &ec->redis, err, sizeof(err)) < 0) {
            fprintf(stderr, PROG ": %s\n", err);
            goto fail;
        }
        ec->merger.redis = redis;
        if (op_merger_create(&merger, &ec->merger) < 0) {
            fprintf(stderr, PROG ": out of memory\n");
            goto fail;
        }
        /* Redis, not Kafka's committed offsets, says where each partition
         * resumes; and the dashboard starts from the full history. */
        if (op_merger_load(merger, err, sizeof(err)) < 0) {
            fprintf(stderr, PROG ": loading the state from Redis: %s\n", err);
            goto fail;
        }
        /* Assignments later in the run ask Redis again, on a connection of
         * their own (the callback runs on the source's poll thread). */
        if (op_redis_connect(&offsets_conn, &ec->redis, err, sizeof(err)) < 0) {
            fprintf(stderr, PROG ": %s\n", err);
            goto fail;
        }
        rebalance.redis = offsets_conn;
        rebalance.merger = merger;
        ec->src.start_offset = redis_start_offset;
        ec->src.on_revoke = redis_on_revoke;
        ec->src.on_assigned = redis_on_assigned;
        ec->src.start_opaque = &rebalance;
    }
    if (op_source_open(&src, &ec->src, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        goto fail;
    }
    if (ec->dead_letter && op_deadletter_open(&dl, ec->dead_letter, ec->src.brokers,
                                              ec->src.kafka_config, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": --dead-letter: %s\n", err);
        goto fail;
    }
    if (!merger && op_merger_create(&merger, &ec->merger) < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        goto fail;
    }
    op_merger_set_source(merger, src);
    int ncpu = online_cpus();
    int64_t started_ms = op_now_mono_ms();
    for (int i = 0; i < n; i++) {
        op_worker_conf_t wc = {
            .id = i,
            .cpu = i % ncpu,
            .input = op_source_input(src, i),
            .merger = merger,
            .dict = dict,
            .dead_letters = dl,
            .lateness_ms = ec->lateness_ms,
            .late_drop = ec->late_drop,
            .tz_offset_s = ec->tz_offset_s,
        };
        if (op_worker_create(&workers[i], &wc) < 0 || op_worker_start(workers[i]) < 0) {
            fprintf(stderr, PROG ": cannot start worker %d\n", i);
            goto stop;
        }
    }
    if (op_merger_start(merger) < 0) {
        fprintf(stderr, PROG ": cannot start the merger\n");
        goto stop;
    }
    if (ec->http.listen) {
        char herr[OP_HTTP_ERRLEN];
        ec->http.pub = op_merger_pub(merger);
        ec->http.ready = engine_ready;
        ec->http.ready_arg = merger;
        if (op_http_start(&http, &ec->http, herr, sizeof(herr)) < 0) {
            fprintf(stderr, PROG ": %s\n", herr);
            rc = 2;
            goto stop;
        }
        __atomic_store_n(&http_live, http, __ATOMIC_RELEASE);
        fprintf(stderr, PROG ": http: listening on %s (%d thread%s%s)\n", op_http_address(http),
                ec->http.threads, ec->http.threads == 1 ? "" : "s",
                ec->http.tls_cert ? ", TLS" : "");
    }

    /* Wait for a signal; in once mode also for the merger's final tick. */
    for (;;) {
        struct timespec poll = {.tv_sec = 0, .tv_nsec = 100 * 1000000};
        int sig = sigtimedwait(signals, NULL, &poll);
        if (sig == SIGINT || sig == SIGTERM || (sig == SIGUSR1 && ec->src.once))
            break;
        if (!op_merger_running(merger) || op_source_failed(src)) /* done, fenced, --on-loss */
            break;
    }
    rc = op_merger_fenced(merger) ? 3 : op_source_failed(src) ? 4 : 0;
stop:
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
    /* The merger no longer publishes: nothing calls notify_http now. */
    __atomic_store_n(&http_live, NULL, __ATOMIC_RELEASE);
    op_http_stop(http);
    if (rc == 0 && ec->src.once) {
        const op_snapshot_t *s = op_snapshot_acquire(op_merger_pub(merger));
        if (s && s->res[OP_RES_SNAPSHOT].len) {
            /* Up to the final snapshot, not to the end of the shutdown. */
            int64_t end_ms = __atomic_load_n(&final.at_ms, __ATOMIC_ACQUIRE);
            double secs = (double)((end_ms ? end_ms : op_now_mono_ms()) - started_ms) / 1000.0;
            int64_t records = s->orders + s->bad_records;
            fprintf(stderr,
                    PROG ": once: %lld records (%lld orders, %lld bad, %lld late) in %.3f s, "
                         "%.0f records/s, %d workers, %lld users, rss_anon %ld KiB\n",
                    (long long)records, (long long)s->orders, (long long)s->bad_records,
                    (long long)s->late_records, secs, secs > 0 ? records / secs : 0.0, n,
                    (long long)s->users, rss_anon_kib());
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
    }
    for (int i = 0; i < n; i++)
        op_worker_destroy(workers[i]);
fail:
    op_merger_destroy(merger);
    op_deadletter_close(dl);
    op_source_close(src);
    op_redis_close(offsets_conn);
    op_redis_close(redis);
    op_intern_destroy(dict);
    return rc;
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
