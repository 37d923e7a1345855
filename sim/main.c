/* main.c — orderpulse-sim: generates orders at a controlled rate into a JSONL
 * file or a Kafka topic, and optionally writes the exact expected snapshot.
 *
 * The loop is single-threaded: a token bucket decides how many records may go
 * now, the generator renders each one into the sink's buffer, the sink sends
 * it, and delivery reports (served by the same thread) feed the truth. A
 * signal only sets a flag; the loop then stops generating, flushes what is
 * queued and writes the truth for what was delivered. SIGUSR1 holds the
 * stream: the loop flushes until every record sent is acknowledged, says
 * "held", and waits for SIGUSR2. A test takes the brokers down only while
 * held: a produce in flight when they go would be retried, and the dev
 * broker (librdkafka's mock cluster) appends such a retry a second time
 * despite enable.idempotence -- a stream the truth does not describe.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim/catalog.h"
#include "sim/gen.h"
#include "sim/options.h"
#include "sim/sink.h"
#include "sim/truth.h"

#define PROG  "orderpulse-sim"
#define BATCH 1024

static volatile sig_atomic_t stop_requested, hold_requested;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        hold_requested = 1;
    else if (sig == SIGUSR2)
        hold_requested = 0;
    else
        stop_requested = 1;
}

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* What the delivery callback updates. Owner: the main thread. */
struct tally {
    op_truth_t *truth; /* NULL without --truth */
    uint64_t bad, late;
};

static void on_delivered(void *opaque, const op_gen_record_t *rec, int ok)
{
    struct tally *t = opaque;
    if (!ok)
        return;
    if (rec->bad)
        t->bad++;
    else
        t->late += rec->late;
    if (t->truth)
        op_truth_add(t->truth, rec);
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    nanosleep(&ts, NULL); /* EINTR is fine: the loop re-checks everything */
}

static void progress(const op_sink_t *sink, uint64_t *last_sent, int64_t *last_ns, int64_t now)
{
    uint64_t sent = op_sink_sent(sink);
    double dt = (double)(now - *last_ns) / 1e9;
    fprintf(stderr, "sim: sent=%llu rate=%.0f/s delivered=%llu errors=%llu\n",
            (unsigned long long)sent, dt > 0 ? (double)(sent - *last_sent) / dt : 0.0,
            (unsigned long long)op_sink_delivered(sink), (unsigned long long)op_sink_failed(sink));
    *last_sent = sent;
    *last_ns = now;
}

int main(int argc, char **argv)
{
    op_sim_options_t opt;
    char err[OP_CONF_ERRLEN + 256];
    int status = 2;
    op_sink_t *sink = NULL;
    FILE *truth_file = NULL, *users_file = NULL;
    struct tally tally = {0};
    op_gen_t gen;

    int rc = op_sim_options_load(&opt, argc, argv, err, sizeof(err));
    if (rc == OP_CONF_HELP) {
        op_sim_options_usage(stdout);
        op_sim_options_dispose(&opt);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        goto out;
    }
    if (op_gen_init(&gen, &opt.gen, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        goto out;
    }
    /* Opened now so that an unwritable path is a usage error, not a
     * surprise after the run. */
    if (opt.truth && !(truth_file = fopen(opt.truth, "w"))) {
        fprintf(stderr, PROG ": --truth: cannot open %s: %s\n", opt.truth, strerror(errno));
        goto out;
    }
    if (opt.truth_users && !(users_file = fopen(opt.truth_users, "w"))) {
        fprintf(stderr, PROG ": --truth-users: cannot open %s: %s\n", opt.truth_users,
                strerror(errno));
        goto out;
    }
    if (opt.truth || opt.truth_users) {
        if (op_truth_create(&tally.truth, &opt.gen) < 0) {
            fprintf(stderr, PROG ": --truth: out of memory for %llu users\n",
                    (unsigned long long)opt.gen.users);
            status = 1;
            goto out;
        }
        op_truth_set_late_drop(tally.truth, opt.truth_late_drop);
    }
    if (opt.out) {
        rc = op_sink_open_file(&sink, opt.out, on_delivered, &tally, err, sizeof(err));
    } else {
        op_sink_kafka_opts_t ko = {opt.brokers, opt.topic, opt.compression, opt.key_mode,
                                   opt.gen.seed};
        rc = op_sink_open_kafka(&sink, &ko, on_delivered, &tally, err, sizeof(err));
    }
    if (rc < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        status = rc == -ENOMEM ? 1 : 2;
        goto out;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    status = 0;
    const int live = opt.gen.start_ms < 0, kafka = opt.brokers != NULL;
    const double burst = opt.rate / 20.0 > 1.0 ? opt.rate / 20.0 : 1.0; /* 50 ms of orders */
    const int64_t t0 = clock_ns(CLOCK_MONOTONIC);
    int64_t last_refill = t0, last_progress = t0;
    uint64_t generated = 0, last_sent = 0;
    double tokens = 1.0;
    char key[OP_CATALOG_USER_MAX];
    size_t keylen = 0;

    while (!stop_requested) {
        if (hold_requested && kafka) {
            if (op_sink_flush(sink, (int)opt.flush_timeout_ms, err, sizeof(err)) < 0)
                goto fatal;
            fprintf(stderr, PROG ": held: every record sent is acknowledged\n");
            while (hold_requested && !stop_requested)
                if (op_sink_poll(sink, 50, err, sizeof(err)) < 0)
                    goto fatal;
            fprintf(stderr, PROG ": going on\n");
            last_refill = clock_ns(CLOCK_MONOTONIC); /* no burst for the time held */
            continue;
        }
        int64_t now = clock_ns(CLOCK_MONOTONIC);
        if (!opt.quiet && now - last_progress >= 1000000000)
            progress(sink, &last_sent, &last_progress, now);
        if (opt.duration_ms >= 0 && now - t0 >= opt.duration_ms * 1000000)
            break;
        if (opt.count >= 0 && generated >= (uint64_t)opt.count)
            break;
        uint64_t n = BATCH;
        if (opt.rate > 0) {
            tokens += (double)(now - last_refill) * (double)opt.rate / 1e9;
            last_refill = now;
            if (tokens > burst)
                tokens = burst;
            if (tokens < 1.0) {
                int64_t wait = (int64_t)((1.0 - tokens) / (double)opt.rate * 1e9);
                wait = wait < 50000 ? 50000 : wait > 10000000 ? 10000000 : wait;
                if (kafka && wait >= 1000000) {
                    if (op_sink_poll(sink, (int)(wait / 1000000), err, sizeof(err)) < 0)
                        goto fatal;
                } else {
                    sleep_ns(wait);
                }
                continue;
            }
            if ((uint64_t)tokens < n)
                n = (uint64_t)tokens;
        }
        if (opt.count >= 0 && (uint64_t)opt.count - generated < n)
            n = (uint64_t)opt.count - generated;

        for (uint64_t i = 0; i < n && !stop_requested; i++) {
            op_gen_record_t rec;
            int64_t live_ms = live ? clock_ns(CLOCK_REALTIME) / 1000000 : 0;
            size_t len = op_gen_next(&gen, live_ms, op_sink_buf(sink), &rec);
            if (kafka)
                keylen = op_gen_user_name(&gen, rec.user, key);
            while ((rc = op_sink_commit(sink, len, key, keylen, &rec, err, sizeof(err))) ==
                   -EAGAIN) {
                if (stop_requested)
                    break; /* this record is dropped: it was never sent */
                if (op_sink_poll(sink, 5, err, sizeof(err)) < 0)
                    goto fatal;
            }
            if (rc == -EAGAIN)
                break;
            if (rc < 0)
                goto fatal;
            generated++;
        }
        tokens -= (double)n;
        if (kafka && op_sink_poll(sink, 0, err, sizeof(err)) < 0)
            goto fatal;
    }
    goto finish;

fatal:
    fprintf(stderr, PROG ": %s\n", err);
    status = 1;
finish:
    if (op_sink_flush(sink, (int)opt.flush_timeout_ms, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        status = 1;
    }
    double secs = (double)(clock_ns(CLOCK_MONOTONIC) - t0) / 1e9;
    if (truth_file) {
        int64_t as_of = clock_ns(CLOCK_REALTIME) / 1000000;
        if (op_truth_write(tally.truth, truth_file, as_of) < 0 || fclose(truth_file) != 0) {
            fprintf(stderr, PROG ": --truth: writing %s failed\n", opt.truth);
            status = 1;
        }
        truth_file = NULL;
    }
    if (users_file) {
        if (op_truth_write_users(tally.truth, users_file) < 0 || fclose(users_file) != 0) {
            fprintf(stderr, PROG ": --truth-users: writing %s failed\n", opt.truth_users);
            status = 1;
        }
        users_file = NULL;
    }
    fprintf(stderr,
            "sim: done sent=%llu delivered=%llu errors=%llu bad=%llu late=%llu elapsed=%.3fs "
            "rate=%.0f/s%s\n",
            (unsigned long long)op_sink_sent(sink), (unsigned long long)op_sink_delivered(sink),
            (unsigned long long)op_sink_failed(sink), (unsigned long long)tally.bad,
            (unsigned long long)tally.late, secs,
            secs > 0 ? (double)op_sink_sent(sink) / secs : 0.0,
            stop_requested ? " (stopped by signal)" : "");
out:
    op_sink_destroy(sink);
    if (truth_file)
        fclose(truth_file);
    if (users_file)
        fclose(users_file);
    op_truth_destroy(tally.truth);
    op_sim_options_dispose(&opt);
    return status;
}
