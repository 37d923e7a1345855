/* stress_source.c — the Kafka source and the dead letters under threads.
 *
 * Against bin/orderpulse-devbroker (skipped, exit 0, while it is not built):
 * a group consumer with three worker threads reads while a producer thread
 * keeps producing and another thread polls op_source_lag and
 * op_source_partitions; then a --once
 * reader with two workers drains the topic; then four threads put dead
 * letters to a file and to a topic at once. Checks: every message exactly
 * once, on the worker of its partition, in offset order; every dead letter
 * written. Run under TSan and ASan by `make test` (the rebalance callback on
 * the poll thread, the lag counters, the per-worker queues, librdkafka's
 * threads through engine/rdkafka_tsan.h).
 *
 * A plain program rather than a Criterion test: Criterion cannot start under
 * ThreadSanitizer (Snaipe/Criterion#274). Exit status 0 = pass.
 */
#include "tests/stress/check.h"
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/io/deadletter.h"
#include "engine/source.h"
#include "tests/unit/devbroker.h"

#define NPART    6
#define FIRST    20000 /* produced before the group consumer starts */
#define LATER    20000 /* produced while it reads */
#define TOTAL    (FIRST + LATER)
#define NWORKERS 3
#define DL_PER   1000

static devbroker_t broker;
static op_source_t *src;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- producing ------------------------------------------------------------- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    CHECK(m->err == 0, "delivery of %d: %s", (int)(intptr_t)m->_private, rd_kafka_err2str(m->err));
}

static void produce(int first, int n, int rate_per_ms)
{
    char errstr[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "bootstrap.servers", broker.bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(kc, "linger.ms", "5", errstr, sizeof(errstr));
    rd_kafka_conf_set_dr_msg_cb(kc, dr_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof(errstr));
    REQUIRE(rk != NULL, "producer: %s", errstr);
    for (int i = first; i < first + n; i++) {
        char key[32], val[32];
        snprintf(key, sizeof(key), "user-%d", i % 1009);
        snprintf(val, sizeof(val), "order-%d", i);
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC("orders"), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(val, strlen(val)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE((void *)(intptr_t)i), RD_KAFKA_V_END);
        CHECK(e == 0, "produce: %s", rd_kafka_err2str(e));
        rd_kafka_poll(rk, 0);
        if (rate_per_ms && (i - first) % rate_per_ms == 0)
            usleep(1000);
    }
    CHECK(rd_kafka_flush(rk, 20000) == 0, "flush");
    rd_kafka_destroy(rk);
}

static void *producer_main(void *arg)
{
    (void)arg;
    produce(FIRST, LATER, 20);
    return NULL;
}

/* --- consuming ------------------------------------------------------------- */

typedef struct worker {
    pthread_t thread;
    op_input_t *in;
    int index;
    int nworkers;
    int *got;            /* TOTAL entries, owned by this worker */
    atomic_long count;   /* read by main to know when to stop */
    int64_t last[NPART]; /* last offset per partition */
    int eof;
} worker_t;

static atomic_int stop;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < NPART; i++)
        w->last[i] = -1;
    while (!atomic_load(&stop)) {
        op_batch_t b;
        int rc = op_input_next(w->in, &b, 20);
        if (rc == OP_INPUT_EOF) {
            __atomic_store_n(&w->eof, 1, __ATOMIC_RELAXED);
            break;
        }
        CHECK(rc < 0 || b.nlosses == 0, "a loss reported in a full log");
        for (size_t i = 0; rc > 0 && i < b.n; i++) {
            const op_record_t *r = &b.recs[i];
            char tmp[32];
            size_t len = r->len < sizeof(tmp) - 1 ? r->len : sizeof(tmp) - 1;
            memcpy(tmp, r->buf, len);
            tmp[len] = '\0';
            int idx;
            if (sscanf(tmp, "order-%d", &idx) != 1 || idx < 0 || idx >= TOTAL) {
                CHECK(0, "unexpected record '%s'", tmp);
                continue;
            }
            CHECK(r->partition >= 0 && r->partition < NPART, "partition %d", r->partition);
            CHECK(r->partition % w->nworkers == w->index, "partition %d on worker %d", r->partition,
                  w->index);
            CHECK(r->offset > w->last[r->partition], "partition %d: %lld after %lld", r->partition,
                  (long long)r->offset, (long long)w->last[r->partition]);
            w->last[r->partition] = r->offset;
            w->got[idx]++;
        }
        if (rc > 0) {
            atomic_fetch_add(&w->count, rc);
            op_input_release(w->in, &b);
        }
    }
    return NULL;
}

static void *lag_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        CHECK(op_source_lag(src) >= 0, "negative lag");
        op_source_part_t parts[NPART + 1];
        int n = op_source_partitions(src, parts, NPART + 1);
        CHECK(n >= 0 && n <= NPART, "%d partitions owned", n);
        for (int i = 0; i < n; i++)
            CHECK(parts[i].partition >= (i ? parts[i - 1].partition + 1 : 0) &&
                      parts[i].partition < NPART && parts[i].lag >= 0,
                  "partition entry %d: %d lag %lld", i, (int)parts[i].partition,
                  (long long)parts[i].lag);
        usleep(2000);
    }
    return NULL;
}

/* Runs nworkers over src until each got EOF (once) or want records arrived. */
static void consume(int once, int nworkers, const char *group, int want, pthread_t *producer)
{
    op_source_conf_t conf = {.brokers = broker.bootstrap,
                             .topic = "orders",
                             .group = group,
                             .once = once,
                             .nworkers = nworkers,
                             .batch_max = 256};
    char err[OP_SOURCE_ERRLEN];
    REQUIRE(op_source_open(&src, &conf, err, sizeof(err)) == 0, "open: %s", err);
    atomic_store(&stop, 0);
    worker_t ws[NWORKERS];
    memset(ws, 0, sizeof(ws));
    for (int i = 0; i < nworkers; i++) {
        ws[i].in = op_source_input(src, i);
        ws[i].index = i;
        ws[i].nworkers = nworkers;
        ws[i].got = calloc(TOTAL, sizeof(int));
        atomic_init(&ws[i].count, 0);
        pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);
    }
    pthread_t lag;
    pthread_create(&lag, NULL, lag_main, NULL);
    if (producer)
        pthread_create(producer, NULL, producer_main, NULL);

    long total = 0;
    for (int64_t end = mono_ms() + 90000; mono_ms() < end; usleep(10000)) {
        total = 0;
        int eofs = 0;
        for (int i = 0; i < nworkers; i++) {
            total += atomic_load(&ws[i].count);
            eofs += __atomic_load_n(&ws[i].eof, __ATOMIC_RELAXED);
        }
        if ((!once && total >= want) || (once && eofs == nworkers))
            break;
    }
    if (producer)
        pthread_join(*producer, NULL);
    atomic_store(&stop, 1);
    pthread_join(lag, NULL);
    for (int i = 0; i < nworkers; i++)
        pthread_join(ws[i].thread, NULL);
    if (once) {
        for (int i = 0; i < nworkers; i++)
            CHECK(ws[i].eof, "%s: worker %d did not reach EOF", group, i);
        CHECK(op_source_lag(src) == 0, "%s: lag %lld at the end", group,
              (long long)op_source_lag(src));
    }
    op_source_close(src);

    total = 0;
    for (int idx = 0; idx < want; idx++) {
        int n = 0;
        for (int i = 0; i < nworkers; i++)
            n += ws[i].got[idx];
        CHECK(n == 1, "%s: order-%d delivered %d times", group, idx, n);
        total += n;
    }
    for (int i = 0; i < nworkers; i++)
        free(ws[i].got);
    fprintf(stderr, "stress_source: %s: %ld records on %d workers\n", group, total, nworkers);
}

/* --- dead letters ---------------------------------------------------------- */

static op_deadletter_t *dl;

static void *put_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    char rec[64];
    for (int i = 0; i < DL_PER; i++) {
        int len = snprintf(rec, sizeof(rec), "bad\n%d %d\xff", id, i);
        rec[2] = 0; /* a NUL inside the record */
        CHECK(op_deadletter_put(dl, "syntax", rec, (size_t)len, id, i) == 0, "put");
    }
    return NULL;
}

static void dead_letters(const char *target)
{
    char err[256];
    REQUIRE(op_deadletter_open(&dl, target, broker.bootstrap, NULL, err, sizeof(err)) == 0, "%s",
            err);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, put_main, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    op_deadletter_close(dl);
}

int main(void)
{
    static const char *const args[] = {"--partitions", "6", "--topic", "orders,dlq", NULL};
    int rc = devbroker_start(&broker, args);
    if (rc == -ENOENT) {
        fprintf(stderr, "stress_source: %s is not built: skipped\n", devbroker_path());
        return 0;
    }
    REQUIRE(rc == 0, "cannot start %s", devbroker_path());

    produce(0, FIRST, 0);
    pthread_t producer;
    consume(0, NWORKERS, "stress-group", TOTAL, &producer);
    consume(1, 2, "stress-once", TOTAL, NULL);

    char path[] = "/tmp/op_stress_dl_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp");
    close(fd);
    dead_letters(path);
    FILE *f = fopen(path, "r");
    int lines = 0, c;
    while ((c = fgetc(f)) != EOF)
        lines += c == '\n';
    fclose(f);
    unlink(path);
    CHECK(lines == 4 * DL_PER, "%d dead-letter lines, want %d", lines, 4 * DL_PER);
    dead_letters("kafka:dlq");

    devbroker_stop(&broker);
    return check_report("stress_source");
}
