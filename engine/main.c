/* main.c — the orderpulse engine: flags, threads, signals.
 *
 * Reads the options (conf.h), opens the source, starts one pinned worker per
 * core and the merger, and waits: for the input to end (--once, which then
 * prints the final snapshot document on stdout) or for SIGINT/SIGTERM.
 * Every error before the threads start is one line on stderr and exit 2.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu.h>

#include "engine/conf.h"
#include "engine/deadletter.h"
#include "engine/intern.h"
#include "engine/merger.h"
#include "engine/parse.h"
#include "engine/snapshot.h"
#include "engine/source.h"
#include "engine/util.h"
#include "engine/worker.h"

#define PROG        "orderpulse"
#define ENV_PREFIX  "ORDERPULSE_"
#define MAX_WORKERS 256

static const op_conf_spec_t options[] = {
    {"brokers", OP_CONF_VALUE, "HOST:PORT[,...]", "127.0.0.1:9092", "Kafka bootstrap servers"},
    {"topic", OP_CONF_VALUE, "NAME", "orders", "topic of the orders"},
    {"group", OP_CONF_VALUE, "NAME", "orderpulse", "Kafka consumer group"},
    {"source", OP_CONF_VALUE, "kafka|file:PATH", "kafka", "where orders come from"},
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
    {"dead-letter", OP_CONF_VALUE, "FILE|kafka:TOPIC", NULL, "where rejected records are copied"},
    {"snapshot-file", OP_CONF_VALUE, "PATH", NULL, "also write each tick's snapshot document here"},
    {"redis", OP_CONF_VALUE, "HOST:PORT|none", "none", "Redis for the exactly-once state"},
};
#define NOPTIONS (sizeof(options) / sizeof(options[0]))

typedef struct engine_conf {
    op_source_conf_t src;
    op_merger_conf_t merger;
    int64_t lateness_ms;
    int late_drop;
    int32_t tz_offset_s;
    const char *dead_letter;
} engine_conf_t;

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (int)n;
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
    ec->src.once = op_conf_flag(c, "once");
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
    if (strcmp(op_conf_get(c, "redis"), "none") != 0)
        return op_conf_error(err, errlen,
                             "--redis: only 'none' is supported by this build (Redis flushing is "
                             "not implemented yet)");
    ec->dead_letter = op_conf_get(c, "dead-letter");
    m->snapshot_file = op_conf_get(c, "snapshot-file");
    return 0;
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

/* The merger's final snapshot wakes the main thread out of sigtimedwait. */
static void wake_main(void *arg)
{
    pthread_kill(*(pthread_t *)arg, SIGUSR1);
}

static int run(engine_conf_t *ec, sigset_t *signals)
{
    char err[OP_SOURCE_ERRLEN];
    int n = ec->src.nworkers, rc = 1;
    op_intern_t *dict = NULL;
    op_source_t *src = NULL;
    op_deadletter_t *dl = NULL;
    op_merger_t *merger = NULL;
    op_worker_t *workers[MAX_WORKERS] = {0};

    if (op_intern_create(&dict) < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        goto fail;
    }
    if (op_source_open(&src, &ec->src, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        goto fail;
    }
    if (ec->dead_letter &&
        op_deadletter_open(&dl, ec->dead_letter, ec->src.brokers, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": --dead-letter: %s\n", err);
        goto fail;
    }
    pthread_t main_thread = pthread_self();
    ec->merger.src = src;
    ec->merger.dict = dict;
    ec->merger.on_final = wake_main;
    ec->merger.on_final_arg = &main_thread;
    if (op_merger_create(&merger, &ec->merger) < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        goto fail;
    }
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

    /* Wait for a signal; in once mode also for the merger's final tick. */
    for (;;) {
        struct timespec poll = {.tv_sec = 0, .tv_nsec = 100 * 1000000};
        int sig = sigtimedwait(signals, NULL, &poll);
        if (sig == SIGINT || sig == SIGTERM)
            break;
        if (ec->src.once && !op_merger_running(merger))
            break;
    }
    rc = 0;
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
    if (rc == 0 && ec->src.once) {
        const op_snapshot_t *s = op_snapshot_acquire(op_merger_pub(merger));
        if (s && s->res[OP_RES_SNAPSHOT].len) {
            double secs = (double)(op_now_mono_ms() - started_ms) / 1000.0;
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
    op_intern_destroy(dict);
    return rc;
}

int main(int argc, char **argv)
{
    op_conf_t conf;
    char err[OP_CONF_ERRLEN];
    int rc = op_conf_load(&conf, options, NOPTIONS, ENV_PREFIX, argc, argv, err, sizeof(err));
    if (rc == OP_CONF_HELP) {
        op_conf_usage(options, NOPTIONS, ENV_PREFIX, "usage: " PROG " [OPTIONS]",
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
