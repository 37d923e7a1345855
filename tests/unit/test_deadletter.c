/* test_deadletter.c — rejected records reach the file or topic byte-exactly.
 *
 * The file lines are decoded here with a base64 decoder of the test's own;
 * the Kafka case runs bin/orderpulse-devbroker (skipped while it is not
 * built) and reads the dead-letter topic back with a consumer.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/io/deadletter.h"
#include "tests/unit/devbroker.h"

static char path[64];

static void make_path(void)
{
    strcpy(path, "/tmp/op_test_dl_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
}

static void remove_path(void)
{
    if (path[0])
        unlink(path);
}

TestSuite(deadletter_file, .init = make_path, .fini = remove_path);

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict decoder: length a multiple of 4, padding only at the end.
 * Returns the decoded length, or -1. */
static long b64_decode(const char *s, size_t len, unsigned char *out)
{
    if (len % 4)
        return -1;
    long n = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64_value(s[i + k])) < 0) {
                return -1;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | v[3];
        out[n++] = (unsigned char)(w >> 16);
        if (pad < 2)
            out[n++] = (unsigned char)(w >> 8);
        if (pad < 1)
            out[n++] = (unsigned char)w;
    }
    return n;
}

typedef struct dl_line {
    char reason[64];
    int32_t partition;
    int64_t offset;
    unsigned char rec[4096];
    long len;
} dl_line_t;

/* Parses one line in exactly the documented shape. */
static void parse_line(const char *line, dl_line_t *d)
{
    int n = 0;
    long long off;
    int part;
    cr_assert_eq(sscanf(line, "{\"reason\":\"%63[^\"]\",\"partition\":%d,\"offset\":%lld,%n",
                        d->reason, &part, &off, &n),
                 3, "bad line: %s", line);
    d->partition = part;
    d->offset = off;
    const char *p = line + n;
    cr_assert_eq(strncmp(p, "\"record_b64\":\"", 14), 0, "bad line: %s", line);
    p += 14;
    const char *q = strchr(p, '"');
    cr_assert_not_null(q);
    cr_assert_str_eq(q, "\"}\n", "bad line end: %s", line);
    d->len = b64_decode(p, (size_t)(q - p), d->rec);
    cr_assert_geq(d->len, 0, "bad base64 in %s", line);
}

/* Every line of the file, NULL-terminated; free with free_lines. */
static char **read_lines(size_t *count)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t cap = 16, n = 0;
    char **lines = malloc(cap * sizeof(*lines));
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, f) > 0) {
        if (n + 1 == cap)
            lines = realloc(lines, (cap *= 2) * sizeof(*lines));
        lines[n++] = strdup(line);
    }
    free(line);
    fclose(f);
    lines[n] = NULL;
    *count = n;
    return lines;
}

static void free_lines(char **lines)
{
    for (char **l = lines; *l; l++)
        free(*l);
    free(lines);
}

struct sample {
    const char *reason;
    const char *buf;
    size_t len;
};

#define SAMPLE(reason, lit)                                                                        \
    {                                                                                              \
        reason, lit, sizeof(lit) - 1                                                               \
    }
static const struct sample samples[] = {
    SAMPLE("utf8", "{\"userName\":\"\xff\xfe\xc3\"}"),
    SAMPLE("syntax", "a\0b\0\0"),
    SAMPLE("syntax", "line\nbreak\r\n"),
    SAMPLE("syntax", ""),
    SAMPLE("syntax", "x"),
    SAMPLE("syntax", "xy"),
    SAMPLE("syntax", "xyz"),
    SAMPLE("missing_field", "{\"a\":1}"),
    SAMPLE("wrong_type", "\"quotes\" and \\backslashes\\ \t"),
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

Test(deadletter_file, records_round_trip_byte_exactly)
{
    op_deadletter_t *dl;
    char err[256];
    cr_assert_eq(op_deadletter_open(&dl, path, NULL, NULL, err, sizeof(err)), 0, "%s", err);
    for (size_t i = 0; i < NSAMPLES; i++)
        cr_assert_eq(op_deadletter_put(dl, samples[i].reason, samples[i].buf, samples[i].len,
                                       (int32_t)i, 1000 + (int64_t)i * 7),
                     0);
    /* all 256 byte values, and a large record */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    cr_assert_eq(op_deadletter_put(dl, "utf8", (const char *)all, 256, 1023, INT64_MAX), 0);
    op_deadletter_close(dl);

    size_t n;
    char **lines = read_lines(&n);
    cr_assert_eq(n, NSAMPLES + 1);
    for (size_t i = 0; i < NSAMPLES; i++) {
        dl_line_t d;
        parse_line(lines[i], &d);
        cr_expect_str_eq(d.reason, samples[i].reason);
        cr_expect_eq(d.partition, (int32_t)i);
        cr_expect_eq(d.offset, 1000 + (int64_t)i * 7);
        cr_expect_eq(d.len, (long)samples[i].len, "sample %zu: %ld bytes", i, d.len);
        cr_expect(memcmp(d.rec, samples[i].buf, samples[i].len) == 0, "sample %zu differs", i);
    }
    dl_line_t d;
    parse_line(lines[NSAMPLES], &d);
    cr_expect_eq(d.partition, 1023);
    cr_expect_eq(d.offset, INT64_MAX);
    cr_expect_eq(d.len, 256);
    cr_expect(memcmp(d.rec, all, 256) == 0);
    /* exactly the documented shape */
    cr_expect_str_eq(lines[4], "{\"reason\":\"syntax\",\"partition\":4,\"offset\":1028,"
                               "\"record_b64\":\"eA==\"}\n");
    free_lines(lines);
}

Test(deadletter_file, appends_to_an_existing_file)
{
    FILE *f = fopen(path, "w");
    fputs("{\"previous\":\"run\"}\n", f);
    fclose(f);
    op_deadletter_t *dl;
    char err[256];
    cr_assert_eq(op_deadletter_open(&dl, path, NULL, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(op_deadletter_put(dl, "depth", "[[[", 3, 0, 0), 0);
    op_deadletter_close(dl);
    size_t n;
    char **lines = read_lines(&n);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(lines[0], "{\"previous\":\"run\"}\n");
    cr_expect_str_eq(lines[1], "{\"reason\":\"depth\",\"partition\":0,\"offset\":0,"
                               "\"record_b64\":\"W1tb\"}\n");
    free_lines(lines);
}

#define THREADS 4
#define PER     2000

struct putter {
    op_deadletter_t *dl;
    int id;
};

static void *put_main(void *arg)
{
    struct putter *p = arg;
    char rec[300];
    for (int i = 0; i < PER; i++) {
        /* varied lengths, some above the pipe/stdio buffer granularity */
        int len = snprintf(rec, sizeof(rec), "%d:%d:", p->id, i);
        int pad = (i * 37) % 250;
        memset(rec + len, '\n', (size_t)pad);
        cr_assert_eq(op_deadletter_put(p->dl, "syntax", rec, (size_t)(len + pad), p->id, i), 0);
    }
    return NULL;
}

Test(deadletter_file, concurrent_puts_give_complete_lines)
{
    op_deadletter_t *dl;
    char err[256];
    cr_assert_eq(op_deadletter_open(&dl, path, NULL, NULL, err, sizeof(err)), 0, "%s", err);
    pthread_t th[THREADS];
    struct putter args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (struct putter){dl, t};
        pthread_create(&th[t], NULL, put_main, &args[t]);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    op_deadletter_close(dl);

    size_t n;
    char **lines = read_lines(&n);
    cr_assert_eq(n, THREADS * PER);
    static unsigned char seen[THREADS][PER];
    memset(seen, 0, sizeof(seen));
    int64_t next[THREADS] = {0};
    for (size_t k = 0; k < n; k++) {
        dl_line_t d;
        parse_line(lines[k], &d);
        int id, i;
        cr_assert_eq(sscanf((const char *)d.rec, "%d:%d:", &id, &i), 2);
        cr_assert(id >= 0 && id < THREADS && i >= 0 && i < PER);
        cr_assert_eq(d.partition, id);
        cr_assert_eq(d.offset, i);
        cr_assert_eq(seen[id][i]++, 0);
        cr_assert_eq(i, next[id]++, "thread %d: record %d out of order", id, i);
    }
    free_lines(lines);
}

Test(deadletter_file, unwritable_path)
{
    op_deadletter_t *dl = (op_deadletter_t *)1;
    char err[256] = "";
    cr_assert_eq(
        op_deadletter_open(&dl, "/nonexistent-dir/dead.jsonl", NULL, NULL, err, sizeof(err)),
        -ENOENT);
    cr_assert_null(dl);
    cr_assert_str_eq(err, "cannot open dead-letter file /nonexistent-dir/dead.jsonl: "
                          "No such file or directory");
    cr_assert_lt(op_deadletter_open(&dl, "/tmp", NULL, NULL, err, sizeof(err)), 0);
    cr_assert(strstr(err, "/tmp") != NULL, "%s", err);
    cr_assert_eq(op_deadletter_open(&dl, "kafka:", "127.0.0.1:9092", NULL, err, sizeof(err)),
                 -EINVAL);
    cr_assert_eq(op_deadletter_open(&dl, "kafka:dlq", NULL, NULL, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "brokers") != NULL, "%s", err);
    /* --kafka-config reaches the dead-letter producer too. */
    cr_assert_eq(op_deadletter_open(&dl, "kafka:dlq", "127.0.0.1:9092", "no.such.property=1", err,
                                    sizeof(err)),
                 -EINVAL);
    cr_assert(strstr(err, "no.such.property") != NULL, "%s", err);
}

/* --- Kafka target ---------------------------------------------------------- */

static devbroker_t broker;

static void stop_broker(void)
{
    devbroker_stop(&broker);
}

TestSuite(deadletter_kafka, .fini = stop_broker, .timeout = 60);

static const char *header(rd_kafka_headers_t *h, const char *name, char *buf, size_t cap)
{
    const void *v;
    size_t len;
    if (!h || rd_kafka_header_get_last(h, name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        len >= cap)
        return NULL;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return buf;
}

Test(deadletter_kafka, records_and_headers_round_trip)
{
    static const char *const args[] = {"--partitions", "2", "--topic", "orders,dlq", NULL};
    int rc = devbroker_start(&broker, args);
    if (rc == -ENOENT)
        cr_skip_test("%s is not built yet: skipping the Kafka dead-letter test", devbroker_path());
    cr_assert_eq(rc, 0, "cannot start %s: %s", devbroker_path(), strerror(-rc));

    op_deadletter_t *dl;
    char err[256];
    cr_assert_eq(op_deadletter_open(&dl, "kafka:dlq", broker.bootstrap, NULL, err, sizeof(err)), 0,
                 "%s", err);
    for (size_t i = 0; i < NSAMPLES; i++)
        cr_assert_eq(op_deadletter_put(dl, samples[i].reason, samples[i].buf, samples[i].len,
                                       (int32_t)i, 5000000000LL + (int64_t)i),
                     0);
    op_deadletter_close(dl); /* flushes */

    /* Read dlq back from the beginning of both partitions. */
    char errstr[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "bootstrap.servers", broker.bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(kc, "group.id", "test-dlq", errstr, sizeof(errstr));
    rd_kafka_conf_set(kc, "auto.offset.reset", "earliest", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof(errstr));
    cr_assert_not_null(rk, "%s", errstr);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(l, "dlq", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_topic_partition_list_add(l, "dlq", 1)->offset = RD_KAFKA_OFFSET_BEGINNING;
    cr_assert_eq(rd_kafka_assign(rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);

    int seen[NSAMPLES] = {0};
    size_t got = 0;
    for (int tries = 0; got < NSAMPLES && tries < 200; tries++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        rd_kafka_headers_t *h = NULL;
        rd_kafka_message_headers(m, &h);
        char reason[64], part[32], off[32];
        cr_assert_not_null(header(h, "partition", part, sizeof(part)));
        cr_assert_not_null(header(h, "offset", off, sizeof(off)));
        cr_assert_not_null(header(h, "reason", reason, sizeof(reason)));
        size_t i = (size_t)atoi(part);
        cr_assert_lt(i, NSAMPLES);
        cr_expect_eq(strtoll(off, NULL, 10), 5000000000LL + (int64_t)i);
        cr_expect_str_eq(reason, samples[i].reason);
        cr_expect_eq(m->len, samples[i].len, "sample %zu: %zu bytes", i, m->len);
        cr_expect(m->len == 0 || memcmp(m->payload, samples[i].buf, m->len) == 0);
        seen[i]++;
        got++;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    cr_assert_eq(got, NSAMPLES);
    for (size_t i = 0; i < NSAMPLES; i++)
        cr_expect_eq(seen[i], 1, "sample %zu seen %d times", i, seen[i]);
}
