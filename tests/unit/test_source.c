/* test_source.c — the record sources: JSONL file chunks and Kafka partitions.
 *
 * The file cases compare what the workers receive with an independent
 * splitting of the same bytes, for several worker counts and batch sizes.
 * The Kafka cases run bin/orderpulse-devbroker (skipped while it is not
 * built), produce keyed messages with a producer of their own, and check
 * that every message reaches exactly one worker, the one of its partition;
 * and that records the broker deleted before they were read (the dev
 * broker keeps ~5 MB per partition) are reported as losses, exactly.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/source.h"
#include "tests/unit/devbroker.h"

/* --- file source ----------------------------------------------------------- */

typedef struct line {
    const char *buf;
    size_t len;
    int64_t offset;
} line_t;

/* The expected records of content, split the obvious way. */
static size_t split_lines(const char *s, size_t size, line_t *out)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i < size; i++) {
        if (s[i] != '\n')
            continue;
        size_t len = i - start;
        if (len > 0 && s[i - 1] == '\r')
            len--;
        out[n++] = (line_t){s + start, len, (int64_t)start};
        start = i + 1;
    }
    if (start < size)
        out[n++] = (line_t){s + start, size - start, (int64_t)start};
    return n;
}

static char tmp_path[64];

static const char *write_tmp(const char *content, size_t size)
{
    strcpy(tmp_path, "/tmp/op_test_source_XXXXXX");
    int fd = mkstemp(tmp_path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, content, size), (ssize_t)size);
    close(fd);
    return tmp_path;
}

static void remove_tmp(void)
{
    if (tmp_path[0])
        unlink(tmp_path);
}

TestSuite(file_source, .fini = remove_tmp);

/* Reads every input to EOF (one after the other; each input has one owner,
 * this thread) and checks the records against split_lines. */
static void check_file(const char *content, size_t size, int nworkers, size_t batch_max)
{
    const char *path = write_tmp(content, size);
    line_t *want = calloc(size + 1, sizeof(*want));
    size_t nwant = split_lines(content, size, want);

    op_source_conf_t conf = {.file = path, .nworkers = nworkers, .batch_max = batch_max};
    op_source_t *src;
    char err[OP_SOURCE_ERRLEN];
    cr_assert_eq(op_source_open(&src, &conf, err, sizeof(err)), 0, "%s", err);

    size_t got = 0;
    int64_t prev_end = 0; /* chunks are contiguous and in worker order */
    for (int w = 0; w < nworkers; w++) {
        op_input_t *in = op_source_input(src, w);
        cr_assert_not_null(in);
        op_batch_t b;
        int rc;
        while ((rc = op_input_next(in, &b, 0)) != OP_INPUT_EOF) {
            cr_assert(rc > 0, "rc %d before EOF", rc);
            cr_assert_eq((size_t)rc, b.n);
            cr_assert_leq(b.n, batch_max ? batch_max : 1024);
            for (size_t i = 0; i < b.n; i++, got++) {
                const op_record_t *r = &b.recs[i];
                cr_assert_lt(got, nwant, "more records than lines");
                cr_assert_eq(r->partition, w);
                cr_assert_eq(r->offset, want[got].offset, "record %zu: offset %lld, want %lld", got,
                             (long long)r->offset, (long long)want[got].offset);
                cr_assert_eq(r->len, want[got].len, "record %zu: len %zu, want %zu", got, r->len,
                             want[got].len);
                cr_assert(r->len == 0 || memcmp(r->buf, want[got].buf, r->len) == 0);
                cr_assert_geq(r->offset, prev_end);
                prev_end = r->offset;
            }
            op_input_release(in, &b);
        }
        /* EOF is sticky */
        cr_assert_eq(op_input_next(in, &b, 0), OP_INPUT_EOF);
    }
    cr_assert_eq(got, nwant, "workers=%d: %zu records, want %zu", nworkers, got, nwant);
    cr_assert_eq(op_source_lag(src), 0);
    op_source_close(src);
    free(want);
    unlink(path);
    tmp_path[0] = '\0';
}

static const int worker_counts[] = {1, 2, 3, 7};

static void check_all_splits(const char *content, size_t size)
{
    for (size_t i = 0; i < sizeof(worker_counts) / sizeof(worker_counts[0]); i++) {
        check_file(content, size, worker_counts[i], 0);
        check_file(content, size, worker_counts[i], 3);
        check_file(content, size, worker_counts[i], 1);
    }
}

Test(file_source, lines_split_across_workers)
{
    /* Lines of varied lengths, so that chunk boundaries fall mid-line. */
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    unsigned seed = 12345;
    for (int i = 0; i < 400; i++) {
        int len = (int)(rand_r(&seed) % 120);
        n += (size_t)snprintf(s + n, cap - n, "{\"i\":%d,\"pad\":\"%.*s\"}\n", i, len,
                              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    }
    check_all_splits(s, n);
    free(s);
}

/* Newlines at every offset of the 64-byte blocks the splitter reads:
 * runs of them, lines of 0..200 bytes, '\r' before some, and a file size
 * that is and is not a multiple of 64. */
Test(file_source, newlines_at_every_block_offset)
{
    size_t cap = 1 << 16;
    char *s = malloc(cap);
    unsigned seed = 777;
    for (int round = 0; round < 6; round++) {
        size_t n = 0;
        while (n < cap - 256) {
            int len = (int)(rand_r(&seed) % (round < 3 ? 8 : 201));
            for (int k = 0; k < len; k++)
                s[n++] = (char)('a' + rand_r(&seed) % 26);
            if (rand_r(&seed) % 5 == 0)
                s[n++] = '\r';
            s[n++] = '\n';
        }
        size_t size = round % 2 ? n & ~(size_t)63 : n - 1; /* cut mid-line, or at a block end */
        check_file(s, size, 1, 0);
        check_file(s, size, 3, 7);
    }
    free(s);
}

Test(file_source, crlf_and_empty_lines)
{
    static const char s[] = "{\"a\":1}\r\n\n{\"b\":2}\n\r\n\n\n{\"c\":3}\r\n"
                            "x\ry\r\n\r\r\n"
                            "{\"d\":4}\n";
    check_all_splits(s, sizeof(s) - 1);
    /* The exact records for one worker, spelled out. */
    const char *path = write_tmp(s, sizeof(s) - 1);
    op_source_conf_t conf = {.file = path, .nworkers = 1};
    op_source_t *src;
    char err[OP_SOURCE_ERRLEN];
    cr_assert_eq(op_source_open(&src, &conf, err, sizeof(err)), 0, "%s", err);
    op_input_t *in = op_source_input(src, 0);
    op_batch_t b;
    cr_assert_eq(op_input_next(in, &b, 0), 10);
    static const char *const want[] = {"{\"a\":1}", "",          "{\"b\":2}", "",   "",
                                       "",          "{\"c\":3}", "x\ry",      "\r", "{\"d\":4}"};
    for (int i = 0; i < 10; i++)
        cr_expect(b.recs[i].len == strlen(want[i]) &&
                      memcmp(b.recs[i].buf, want[i], b.recs[i].len) == 0,
                  "record %d: '%.*s'", i, (int)b.recs[i].len, b.recs[i].buf);
    op_input_release(in, &b);
    cr_assert_eq(op_input_next(in, &b, 0), OP_INPUT_EOF);
    op_source_close(src);
}

Test(file_source, no_final_newline)
{
    static const char s[] = "{\"a\":1}\n{\"b\":2}\n{\"c\":3}";
    check_all_splits(s, sizeof(s) - 1);
    static const char one[] = "only line, no newline";
    check_all_splits(one, sizeof(one) - 1);
    static const char crlf[] = "a\r\nb\r"; /* a '\r' not before '\n' is kept */
    check_all_splits(crlf, sizeof(crlf) - 1);
}

Test(file_source, one_long_line_and_more_workers_than_lines)
{
    size_t n = 100000;
    char *s = malloc(n + 3);
    memset(s, 'z', n);
    memcpy(s + n, "\nq\n", 3);
    check_all_splits(s, n + 3);
    check_all_splits("\n", 1);
    check_all_splits("\n\n", 2);
    free(s);
}

Test(file_source, empty_file)
{
    const char *path = write_tmp("", 0);
    op_source_conf_t conf = {.file = path, .nworkers = 3, .once = 0};
    op_source_t *src;
    char err[OP_SOURCE_ERRLEN];
    cr_assert_eq(op_source_open(&src, &conf, err, sizeof(err)), 0, "%s", err);
    for (int w = 0; w < 3; w++) {
        op_batch_t b;
        cr_assert_eq(op_input_next(op_source_input(src, w), &b, 0), OP_INPUT_EOF);
    }
    op_source_close(src);
}

Test(file_source, missing_file)
{
    op_source_conf_t conf = {.file = "/nonexistent/orders.jsonl", .nworkers = 2};
    op_source_t *src = (op_source_t *)1;
    char err[OP_SOURCE_ERRLEN] = "";
    cr_assert_eq(op_source_open(&src, &conf, err, sizeof(err)), -ENOENT);
    cr_assert_null(src);
    cr_assert_str_eq(err, "cannot open /nonexistent/orders.jsonl: No such file or directory");
}

Test(file_source, directory_is_rejected)
{
    op_source_conf_t conf = {.file = "/tmp", .nworkers = 1};
    op_source_t *src;
    char err[OP_SOURCE_ERRLEN] = "";
    cr_assert_lt(op_source_open(&src, &conf, err, sizeof(err)), 0);
    cr_assert(strstr(err, "cannot open /tmp") != NULL, "%s", err);
}

Test(file_source, bad_worker_count)
{
    op_source_conf_t conf = {.file = "/dev/null", .nworkers = 0};
    op_source_t *src;
    char err[OP_SOURCE_ERRLEN] = "";
    cr_assert_eq(op_source_open(&src, &conf, err, sizeof(err)), -EINVAL);
    cr_assert(err[0]);
}

/* --- Kafka source ---------------------------------------------------------- */

#define TOPIC "orders"
#define NPART 4

static devbroker_t broker;

static void stop_broker(void)
{
    devbroker_stop(&broker);
}

TestSuite(kafka_source, .fini = stop_broker, .timeout = 120);

static void start_broker(void)
{
    static const char *const args[] = {"--partitions", "4", "--topic", TOPIC ",empty,lossy", NULL};
    int rc = devbroker_start(&broker, args);
    if (rc == -ENOENT)
        cr_skip_test("%s is not built yet: skipping the Kafka source tests", devbroker_path());
    cr_assert_eq(rc, 0, "cannot start %s: %s", devbroker_path(), strerror(-rc));
}

/* Where each produced message went, from the delivery reports. */
typedef struct produced {
    int32_t partition;
    int64_t offset;
} produced_t;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    produced_t *where = opaque;
    cr_assert_eq(m->err, 0, "delivery: %s", rd_kafka_err2str(m->err));
    int idx = (int)(intptr_t)m->_private;
    where[idx].partition = m->partition;
    where[idx].offset = m->offset;
}

/* A producer to the test's broker; with where, delivery reports fill it. */
static rd_kafka_t *new_producer(produced_t *where)
{
    char errstr[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    cr_assert_eq(
        rd_kafka_conf_set(kc, "bootstrap.servers", broker.bootstrap, errstr, sizeof(errstr)),
        RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(kc, "linger.ms", "5", errstr, sizeof(errstr));
    if (where) {
        rd_kafka_conf_set_dr_msg_cb(kc, dr_cb);
        rd_kafka_conf_set_opaque(kc, where);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof(errstr));
    cr_assert_not_null(rk, "%s", errstr);
    return rk;
}

/* Produces messages first..first+n-1: key "user-<i % 97>", value "order-<i>". */
static void produce(const char *topic, int first, int n, produced_t *where)
{
    rd_kafka_t *rk = new_producer(where);
    for (int i = first; i < first + n; i++) {
        char key[32], val[32];
        snprintf(key, sizeof(key), "user-%d", i % 97);
        snprintf(val, sizeof(val), "order-%d", i);
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(val, strlen(val)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE((void *)(intptr_t)i), RD_KAFKA_V_END);
        cr_assert_eq(e, 0, "produce: %s", rd_kafka_err2str(e));
        rd_kafka_poll(rk, 0);
    }
    cr_assert_eq(rd_kafka_flush(rk, 10000), 0);
    rd_kafka_destroy(rk);
}

typedef struct got {
    int32_t partition;
    int64_t offset;
    int index; /* parsed from the value */
} got_t;

/* One worker: reads its input until EOF (once) or until *stop. */
typedef struct reader {
    op_input_t *in;
    got_t *recs;
    size_t n, cap;
    int eof;
    volatile int *stop;
    int64_t deadline_ms;
} reader_t;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    while (mono_ms() < r->deadline_ms && !(r->stop && __atomic_load_n(r->stop, __ATOMIC_ACQUIRE))) {
        op_batch_t b;
        int rc = op_input_next(r->in, &b, 50);
        if (rc == OP_INPUT_EOF) {
            r->eof = 1;
            break;
        }
        size_t n = r->n;
        for (size_t i = 0; rc > 0 && i < b.n && n < r->cap; i++) {
            got_t *g = &r->recs[n++];
            g->partition = b.recs[i].partition;
            g->offset = b.recs[i].offset;
            char tmp[64];
            size_t len = b.recs[i].len < sizeof(tmp) - 1 ? b.recs[i].len : sizeof(tmp) - 1;
            memcpy(tmp, b.recs[i].buf, len);
            tmp[len] = '\0';
            int idx;
            g->index = sscanf(tmp, "order-%d", &idx) == 1 ? idx : -1;
        }
        __atomic_store_n(&r->n, n, __ATOMIC_RELEASE); /* read by read_all while running */
        if (rc > 0)
            op_input_release(r->in, &b);
    }
    return NULL;
}

/* Runs one thread per input; stops at EOF, or when want records arrived
 * (stop_at_count), or after timeout_ms. Returns the readers. */
static reader_t *read_all(op_source_t *src, int nworkers, size_t cap, size_t want,
                          int stop_at_count, int timeout_ms)
{
    reader_t *rd = calloc((size_t)nworkers, sizeof(*rd));
    pthread_t *th = calloc((size_t)nworkers, sizeof(*th));
    static volatile int stop;
    stop = 0;
    for (int w = 0; w < nworkers; w++) {
        rd[w].in = op_source_input(src, w);
        rd[w].cap = cap;
        rd[w].recs = calloc(cap, sizeof(got_t));
        rd[w].deadline_ms = mono_ms() + timeout_ms;
        rd[w].stop = &stop;
        pthread_create(&th[w], NULL, reader_main, &rd[w]);
    }
    if (stop_at_count) {
        for (int64_t end = mono_ms() + timeout_ms; mono_ms() < end;) {
            size_t total = 0;
            for (int w = 0; w < nworkers; w++)
                total += __atomic_load_n(&rd[w].n, __ATOMIC_ACQUIRE);
            if (total >= want)
                break;
            usleep(20000);
        }
        __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    }
    for (int w = 0; w < nworkers; w++)
        pthread_join(th[w], NULL);
    free(th);
    return rd;
}

/* Every message of where[0..n) arrived exactly once, at the worker of its
 * partition, with its partition and offset, in offset order. */
static void check_delivery(reader_t *rd, int nworkers, const produced_t *where, int n)
{
    int *seen = calloc((size_t)n, sizeof(int));
    int64_t last[NPART] = {-1, -1, -1, -1};
    size_t total = 0;
    for (int w = 0; w < nworkers; w++) {
        for (size_t i = 0; i < rd[w].n; i++) {
            const got_t *g = &rd[w].recs[i];
            cr_assert(g->index >= 0 && g->index < n, "unexpected record %d", g->index);
            cr_assert_eq(seen[g->index]++, 0, "order-%d delivered twice", g->index);
            cr_assert(g->partition >= 0 && g->partition < NPART);
            cr_assert_eq(g->partition % nworkers, w, "partition %d read by worker %d", g->partition,
                         w);
            cr_assert_eq(g->partition, where[g->index].partition);
            cr_assert_eq(g->offset, where[g->index].offset);
            cr_assert_gt(g->offset, last[g->partition], "partition %d: offset %lld after %lld",
                         g->partition, (long long)g->offset, (long long)last[g->partition]);
            last[g->partition] = g->offset;
        }
        total += rd[w].n;
    }
    cr_assert_eq(total, (size_t)n, "%zu records delivered, want %d", total, n);
    free(seen);
}

static void free_readers(reader_t *rd, int nworkers)
{
    for (int w = 0; w < nworkers; w++)
        free(rd[w].recs);
    free(rd);
}

static op_source_t *open_kafka(int once, int nworkers, const char *topic, const char *group)
{
    op_source_conf_t conf = {.brokers = broker.bootstrap,
                             .topic = topic,
                             .group = group,
                             .once = once,
                             .nworkers = nworkers,
                             .batch_max = 64};
    op_source_t *src;
    char err[OP_SOURCE_ERRLEN];
    int rc = op_source_open(&src, &conf, err, sizeof(err));
    cr_assert_eq(rc, 0, "open: %s", err);
    return src;
}

Test(kafka_source, once_delivers_every_message_to_its_partitions_worker)
{
    enum { N = 3000 };
    start_broker();
    static produced_t where[N];
    produce(TOPIC, 0, N, where);
    int used[NPART] = {0};
    for (int i = 0; i < N; i++)
        used[where[i].partition] = 1;
    for (int p = 0; p < NPART; p++)
        cr_assert(used[p], "keys did not spread over partition %d", p);

    op_source_t *src = open_kafka(1, 2, TOPIC, "test-once");
    cr_assert_eq(op_source_lag(src), N, "lag before reading: %lld", (long long)op_source_lag(src));
    reader_t *rd = read_all(src, 2, N + 10, N, 0, 30000);
    for (int w = 0; w < 2; w++)
        cr_assert(rd[w].eof, "worker %d did not reach EOF (%zu records)", w, rd[w].n);
    check_delivery(rd, 2, where, N);
    cr_assert_eq(op_source_lag(src), 0, "lag after reading: %lld", (long long)op_source_lag(src));
    free_readers(rd, 2);
    op_source_close(src);
}

Test(kafka_source, once_stops_at_the_end_seen_at_start)
{
    enum { N = 1000, LATER = 500 };
    start_broker();
    static produced_t where[N + LATER];
    produce(TOPIC, 0, N, where);
    op_source_t *src = open_kafka(1, 2, TOPIC, "test-end");
    produce(TOPIC, N, LATER, where); /* after the end offsets were taken */
    reader_t *rd = read_all(src, 2, N + LATER, N, 0, 30000);
    for (int w = 0; w < 2; w++)
        cr_assert(rd[w].eof, "worker %d did not reach EOF", w);
    check_delivery(rd, 2, where, N);
    free_readers(rd, 2);
    op_source_close(src);

    /* The group committed what was handed out: a second run reads the rest. */
    src = open_kafka(1, 2, TOPIC, "test-end");
    rd = read_all(src, 2, N + LATER, LATER, 0, 30000);
    size_t total = 0;
    for (int w = 0; w < 2; w++) {
        cr_assert(rd[w].eof);
        for (size_t i = 0; i < rd[w].n; i++)
            cr_assert_geq(rd[w].recs[i].index, N, "order-%d read again", rd[w].recs[i].index);
        total += rd[w].n;
    }
    cr_assert_eq(total, (size_t)LATER);
    free_readers(rd, 2);
    op_source_close(src);
}

Test(kafka_source, once_with_idle_workers_and_an_empty_topic)
{
    enum { N = 400 };
    start_broker();
    static produced_t where[N];
    produce(TOPIC, 0, N, where);
    /* 6 workers, 4 partitions: inputs 4 and 5 read nothing. */
    op_source_t *src = open_kafka(1, 6, TOPIC, "test-idle");
    op_batch_t b;
    cr_assert_eq(op_input_next(op_source_input(src, 4), &b, 0), OP_INPUT_EOF);
    cr_assert_eq(op_input_next(op_source_input(src, 5), &b, 0), OP_INPUT_EOF);
    reader_t *rd = read_all(src, 6, N, N, 0, 30000);
    for (int w = 0; w < 6; w++)
        cr_assert(rd[w].eof);
    check_delivery(rd, 6, where, N);
    free_readers(rd, 6);
    op_source_close(src);

    src = open_kafka(1, 3, "empty", "test-empty");
    for (int w = 0; w < 3; w++)
        cr_assert_eq(op_input_next(op_source_input(src, w), &b, 0), OP_INPUT_EOF);
    cr_assert_eq(op_source_lag(src), 0);
    op_source_close(src);
}

static int start_at_10(void *opaque, int32_t partition, int64_t *offset)
{
    (*(int *)opaque)++;
    *offset = partition == 1 ? 10 : -2 /* RD_KAFKA_OFFSET_BEGINNING */;
    return 0;
}

static int cannot_claim(void *opaque, int32_t partition, int64_t *offset)
{
    (void)opaque, (void)partition, (void)offset;
    return -5;
}

Test(kafka_source, start_offset_callback)
{
    enum { N = 400 };
    start_broker();
    static produced_t where[N];
    produce(TOPIC, 0, N, where);
    int calls = 0;
    op_source_conf_t conf = {.brokers = broker.bootstrap,
                             .topic = TOPIC,
                             .group = "test-start",
                             .once = 1,
                             .nworkers = 2,
                             .start_offset = start_at_10,
                             .start_opaque = &calls};
    op_source_t *src;
    char err[OP_SOURCE_ERRLEN];
    cr_assert_eq(op_source_open(&src, &conf, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(calls, NPART);
    reader_t *rd = read_all(src, 2, N, N, 0, 30000);
    size_t total = 0, want = 0;
    for (int i = 0; i < N; i++)
        want += where[i].partition != 1 || where[i].offset >= 10;
    for (int w = 0; w < 2; w++) {
        cr_assert(rd[w].eof);
        for (size_t i = 0; i < rd[w].n; i++)
            cr_assert(rd[w].recs[i].partition != 1 || rd[w].recs[i].offset >= 10);
        total += rd[w].n;
    }
    cr_assert_eq(total, want);
    free_readers(rd, 2);
    op_source_close(src);
}

/* A partition whose start cannot be asked (Redis down) is never read from
 * Kafka's own idea of where to start: --once refuses to open. */
Test(kafka_source, no_start_offset_no_reading)
{
    start_broker();
    static produced_t where[10];
    produce(TOPIC, 0, 10, where);
    op_source_conf_t conf = {.brokers = broker.bootstrap,
                             .topic = TOPIC,
                             .group = "test-nostart",
                             .once = 1,
                             .nworkers = 2,
                             .start_offset = cannot_claim};
    op_source_t *src = NULL;
    char err[OP_SOURCE_ERRLEN];
    cr_assert_lt(op_source_open(&src, &conf, err, sizeof(err)), 0);
    cr_assert(strstr(err, "cannot claim") != NULL, "%s", err);
}

Test(kafka_source, group_subscription_forwards_partitions)
{
    enum { N = 2000 };
    start_broker();
    static produced_t where[N];
    produce(TOPIC, 0, N, where);
    op_source_t *src = open_kafka(0, 2, TOPIC, "test-group");
    reader_t *rd = read_all(src, 2, N + 10, N, 1, 60000);
    for (int w = 0; w < 2; w++)
        cr_assert_not(rd[w].eof, "EOF without --once");
    check_delivery(rd, 2, where, N);
    /* Lag is approximate (cached high watermarks): it reaches 0 soon. */
    int64_t lag = -1;
    for (int i = 0; i < 100 && lag != 0; i++, usleep(50000))
        lag = op_source_lag(src);
    cr_assert_eq(lag, 0);
    free_readers(rd, 2);
    op_source_close(src);

    /* The same group again, with 3 workers: only what was produced since
     * (the offsets of released batches were committed). Read with --once:
     * the mock cluster makes a group that a member just left wait a whole
     * session timeout (45 s) before the next join; kcat shows the same. */
    enum { MORE = 300 };
    static produced_t more[N + MORE];
    produce(TOPIC, N, MORE, more);
    src = open_kafka(1, 3, TOPIC, "test-group");
    rd = read_all(src, 3, MORE + 10, MORE, 0, 30000);
    size_t total = 0;
    for (int w = 0; w < 3; w++) {
        cr_assert(rd[w].eof);
        for (size_t i = 0; i < rd[w].n; i++) {
            const got_t *g = &rd[w].recs[i];
            cr_assert_geq(g->index, N, "order-%d read again", g->index);
            cr_assert_eq(g->partition % 3, w);
            cr_assert_eq(g->offset, more[g->index].offset);
        }
        total += rd[w].n;
    }
    cr_assert_eq(total, (size_t)MORE);
    free_readers(rd, 3);
    op_source_close(src);
}

/* (An unknown topic cannot be tested here: the mock cluster creates any
 * topic a client asks about.) The devbroker stops at 1024 partitions, so
 * the too-many case hosts librdkafka's mock cluster in this process. */
Test(kafka_source, too_many_partitions_and_bad_brokers)
{
    char errstr[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof(errstr));
    cr_assert_not_null(host, "%s", errstr);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(host, 1);
    cr_assert_not_null(mc);
    cr_assert_eq(rd_kafka_mock_topic_create(mc, "big", OP_SOURCE_MAX_PARTITIONS + 1, 1), 0);
    op_source_conf_t conf = {.brokers = rd_kafka_mock_cluster_bootstraps(mc),
                             .topic = "big",
                             .group = "g",
                             .once = 1,
                             .nworkers = 2};
    op_source_t *src;
    char err[OP_SOURCE_ERRLEN] = "";
    cr_assert_eq(op_source_open(&src, &conf, err, sizeof(err)), -E2BIG);
    cr_assert(strstr(err, "1025 partitions") != NULL, "%s", err);
    conf.once = 0;
    cr_assert_eq(op_source_open(&src, &conf, err, sizeof(err)), -E2BIG);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(host);

    conf.brokers = NULL;
    cr_assert_eq(op_source_open(&src, &conf, err, sizeof(err)), -EINVAL);
    cr_assert(err[0]);

    conf.brokers = "127.0.0.1:1"; /* nothing listens there: metadata times out */
    err[0] = '\0';
    cr_assert_lt(op_source_open(&src, &conf, err, sizeof(err)), 0);
    cr_assert(strstr(err, "127.0.0.1:1") != NULL, "%s", err);
}

/* --- lost records ------------------------------------------------------------- */

/* Produces n messages of size bytes each to partition 0 of topic. */
static void produce_big(const char *topic, int n, size_t size)
{
    rd_kafka_t *rk = new_producer(NULL);
    char *val = malloc(size);
    memset(val, 'x', size);
    for (int i = 0; i < n; i++) {
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                      RD_KAFKA_V_VALUE(val, size),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        cr_assert_eq(e, 0, "produce: %s", rd_kafka_err2str(e));
        rd_kafka_poll(rk, 0);
    }
    cr_assert_eq(rd_kafka_flush(rk, 10000), 0);
    free(val);
    rd_kafka_destroy(rk);
}

static void watermarks(const char *topic, int64_t *lo, int64_t *hi)
{
    rd_kafka_t *rk = new_producer(NULL);
    cr_assert_eq(rd_kafka_query_watermark_offsets(rk, topic, 0, lo, hi, 10000), 0);
    rd_kafka_destroy(rk);
}

/* What one input handed out: records of partition 0 (their offsets) and
 * the losses, until EOF (once) or until the records reach want_last. */
typedef struct taken {
    int64_t first, last;
    size_t records;
    op_loss_t losses[8];
    size_t nlosses;
    int eof;
} taken_t;

static void take_all(op_source_t *src, int nworkers, int64_t want_last, int timeout_ms, taken_t *t)
{
    memset(t, 0, sizeof(*t));
    t->first = t->last = -1;
    for (int64_t end = mono_ms() + timeout_ms; mono_ms() < end && !t->eof;) {
        for (int w = 0; w < nworkers; w++) {
            op_batch_t b;
            int rc = op_input_next(op_source_input(src, w), &b, 10);
            if (rc == OP_INPUT_EOF) {
                t->eof |= w == 0; /* partition 0 is worker 0's */
                continue;
            }
            for (size_t i = 0; i < b.nlosses && t->nlosses < 8; i++)
                t->losses[t->nlosses++] = b.losses[i];
            for (size_t i = 0; rc > 0 && i < b.n; i++) {
                cr_assert_eq(b.recs[i].partition, 0);
                cr_assert(t->last < 0 || b.recs[i].offset == t->last + 1, "offset %lld after %lld",
                          (long long)b.recs[i].offset, (long long)t->last);
                if (t->first < 0)
                    t->first = b.recs[i].offset;
                t->last = b.recs[i].offset;
                t->records++;
            }
            if (rc >= 0)
                op_input_release(op_source_input(src, w), &b);
        }
        if (want_last >= 0 && t->last >= want_last)
            break;
    }
}

static op_source_t *open_lossy(int once, int stop, const char *group)
{
    op_source_conf_t conf = {.brokers = broker.bootstrap,
                             .topic = "lossy",
                             .group = group,
                             .once = once,
                             .nworkers = 2,
                             .batch_max = 64,
                             .on_loss_stop = stop};
    op_source_t *src;
    char err[OP_SOURCE_ERRLEN];
    cr_assert_eq(op_source_open(&src, &conf, err, sizeof(err)), 0, "open: %s", err);
    return src;
}

/* Fills partition 0 past the dev broker's ~5 MB, until its log start moves
 * past `past`. Returns the new log start. */
static int64_t overflow(int64_t past)
{
    int64_t lo = 0, hi = 0;
    for (int i = 0; i < 20 && lo <= past; i++) {
        produce_big("lossy", 200, 8192);
        watermarks("lossy", &lo, &hi);
    }
    cr_assert_gt(lo, past, "the dev broker kept offset %lld", (long long)past);
    return lo;
}

/* Produces n small messages to partition 0 of "lossy"; --once reads them
 * (without a loss: the log is whole) and the group commits offset n. */
static void read_and_commit(const char *group, int n)
{
    produce_big("lossy", n, 100);
    op_source_t *src = open_lossy(1, 0, group);
    taken_t t;
    take_all(src, 2, -1, 30000, &t);
    cr_assert(t.eof);
    cr_assert_eq(t.records, (size_t)n);
    cr_assert_eq(t.nlosses, 0, "a loss in a full log");
    op_source_close(src);
}

Test(kafka_source, lost_records_are_reported_once_with_their_range)
{
    start_broker();
    read_and_commit("test-loss", 100);

    /* Past the committed offset 100, the log now starts at lo: --once
     * reports [100, lo) lost, at open, then reads lo..hi-1 without a gap. */
    int64_t lo = overflow(100), lo2, hi;
    watermarks("lossy", &lo2, &hi);
    op_source_t *src = open_lossy(1, 0, "test-loss");
    taken_t t;
    op_source_part_t parts[8];
    int n = op_source_partitions(src, parts, 8);
    cr_assert_eq(n, 1);
    cr_assert_eq(parts[0].partition, 0);
    cr_assert_eq(parts[0].next_offset, lo);
    cr_assert_eq(parts[0].lag, hi - lo);
    take_all(src, 2, -1, 30000, &t);
    cr_assert(t.eof);
    cr_assert_eq(t.nlosses, 1);
    cr_assert_eq(t.losses[0].partition, 0);
    cr_assert_eq(t.losses[0].from, 100);
    cr_assert_eq(t.losses[0].to, lo);
    cr_assert_eq(t.first, lo);
    cr_assert_eq(t.last, hi - 1);
    cr_assert_eq(t.records, (size_t)(hi - lo));
    cr_assert_eq(op_source_failed(src), 0);
    op_source_close(src);

    /* The group consumer, at the committed offset hi: the broker deletes
     * past it; the fetch resets to the log start and the worker counts the
     * gap (librdkafka's own path, not the one at open). */
    int64_t lo3 = overflow(hi), hi3;
    watermarks("lossy", &lo3, &hi3);
    src = open_lossy(0, 0, "test-loss");
    take_all(src, 2, hi3 - 1, 60000, &t);
    cr_assert_eq(t.nlosses, 1, "%zu losses", t.nlosses);
    cr_assert_eq(t.losses[0].from, hi);
    cr_assert_eq(t.losses[0].to, lo3);
    cr_assert_eq(t.first, lo3);
    cr_assert_eq(t.last, hi3 - 1);
    op_source_close(src);
}

Test(kafka_source, on_loss_stop_reads_nothing_past_the_gap)
{
    start_broker();
    read_and_commit("test-stop", 10);
    overflow(10);

    /* At open (--once) ... */
    op_source_t *src = open_lossy(1, 1, "test-stop");
    taken_t t;
    cr_assert_lt(op_source_failed(src), 0);
    take_all(src, 2, -1, 2000, &t);
    cr_assert_eq(t.records, 0);
    cr_assert_eq(t.nlosses, 0, "a loss counted with --on-loss stop");
    op_source_close(src);

    /* ... and in a group (the reset path): nothing read, nothing counted,
     * and the committed offset stays where it was. */
    src = open_lossy(0, 1, "test-stop");
    for (int64_t end = mono_ms() + 60000; mono_ms() < end && !op_source_failed(src);) {
        take_all(src, 2, -1, 200, &t);
        cr_assert_eq(t.records, 0);
        cr_assert_eq(t.nlosses, 0);
    }
    cr_assert_lt(op_source_failed(src), 0);
    op_source_close(src);
    src = open_lossy(1, 1, "test-stop");
    cr_assert_lt(op_source_failed(src), 0, "the gap was committed past");
    op_source_close(src);
}
