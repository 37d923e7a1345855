/* sink.c — the JSONL file writer and the Kafka producer behind sink.h.
 *
 * The file sink keeps an 8 MB buffer and renders records in place, so the
 * file path costs one write(2) per ~25 000 orders and nothing per order.
 * The Kafka sink renders into a scratch buffer that librdkafka copies
 * (RD_KAFKA_MSG_F_COPY), and keeps the record's description in a ring until
 * the delivery report says whether it may count.
 *
 * Out of memory: opening returns -ENOMEM; nothing is allocated per record.
 */
#include "sim/sink.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/io/rdkafka_tsan.h" /* TSan builds only: librdkafka's C11 threads */
#include "sim/rng.h"

#define FILE_BUF       (8u << 20)
#define RING_BITS      19 /* pending Kafka records; > queue.buffering.max.messages */
#define KAFKA_MAX_MSGS "500000"
#define KAFKA_MAX_KB   "1048576" /* 1 GB of queued payload */
#define RANDOM_KEY_LEN 16

enum kind { SINK_FILE, SINK_KAFKA };

/* A Kafka record between produce and its delivery report. */
struct pending {
    op_gen_record_t rec;
    int busy;
};

/* Owner: the simulator's main thread (see sink.h). librdkafka's threads do
 * not touch it: its callbacks are served by rd_kafka_poll on that thread. */
struct op_sink {
    enum kind kind;
    op_sink_delivered_cb cb;
    void *opaque;
    uint64_t sent, delivered, failed;
    char *buf; /* file: the output buffer; kafka: the scratch record */
    /* file */
    int fd, own_fd;
    size_t used;
    char *path;
    /* kafka */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    int key_mode;
    op_rng_t keyrng;
    struct pending *ring;
    uint64_t next_id;
    int fatal;
    char fatal_msg[256];
    char first_failure[256];
    time_t last_error_log;
};

static int sink_alloc(op_sink_t **out, enum kind kind, size_t bufsize, op_sink_delivered_cb cb,
                      void *opaque)
{
    op_sink_t *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->buf = malloc(bufsize);
    if (!s->buf) {
        free(s);
        return -ENOMEM;
    }
    s->kind = kind;
    s->cb = cb;
    s->opaque = opaque;
    s->fd = -1;
    *out = s;
    return 0;
}

/* ---- file -------------------------------------------------------------------------- */

int op_sink_open_file(op_sink_t **out, const char *path, op_sink_delivered_cb cb, void *opaque,
                      char *err, size_t errlen)
{
    op_sink_t *s;
    int rc = sink_alloc(&s, SINK_FILE, FILE_BUF, cb, opaque);
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    if (strcmp(path, "-") == 0) {
        s->fd = STDOUT_FILENO;
    } else {
        s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (s->fd < 0) {
            rc = -errno;
            snprintf(err, errlen, "--out: cannot open %s: %s", path, strerror(errno));
            goto fail;
        }
        s->own_fd = 1;
    }
    s->path = strdup(path);
    if (!s->path) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    *out = s;
    return 0;
fail:
    op_sink_destroy(s);
    return rc;
}

static int file_drain(op_sink_t *s, char *err, size_t errlen)
{
    size_t off = 0;
    while (off < s->used) {
        ssize_t n = write(s->fd, s->buf + off, s->used - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            snprintf(err, errlen, "writing %s: %s", s->path, strerror(e));
            return -e;
        }
        off += (size_t)n;
    }
    s->used = 0;
    return 0;
}

/* ---- kafka ------------------------------------------------------------------------- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    op_sink_t *s = opaque;
    uint64_t id = (uint64_t)(uintptr_t)m->_private;
    struct pending *p = &s->ring[id & ((1u << RING_BITS) - 1)];
    if (!p->busy)
        return;
    int ok = m->err == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (ok) {
        s->delivered++;
    } else {
        s->failed++;
        if (!s->first_failure[0])
            snprintf(s->first_failure, sizeof(s->first_failure), "%s", rd_kafka_err2str(m->err));
    }
    p->busy = 0;
    if (s->cb)
        s->cb(s->opaque, &p->rec, ok);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    op_sink_t *s = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[200];
        rd_kafka_fatal_error(rk, buf, sizeof(buf));
        snprintf(s->fatal_msg, sizeof(s->fatal_msg), "kafka: fatal error: %s", buf);
        s->fatal = 1;
        return;
    }
    time_t now = time(NULL);
    if (now != s->last_error_log) { /* at most one line a second */
        fprintf(stderr, "sim: kafka: %s\n", reason);
        s->last_error_log = now;
    }
}

static int set_conf(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t errlen)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka: %s=%s: %s", k, v, errstr);
        return -EINVAL;
    }
    return 0;
}

int op_sink_open_kafka(op_sink_t **out, const op_sink_kafka_opts_t *o, op_sink_delivered_cb cb,
                       void *opaque, char *err, size_t errlen)
{
    op_sink_t *s;
    rd_kafka_conf_t *conf = NULL;
    char errstr[512];
    int rc = sink_alloc(&s, SINK_KAFKA, OP_GEN_MAX_RECORD, cb, opaque);
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    s->key_mode = o->key_mode;
    op_rng_init(&s->keyrng, o->seed ^ 0x6b6579736b657973ULL);
    s->ring = calloc((size_t)1 << RING_BITS, sizeof(struct pending));
    conf = rd_kafka_conf_new();
    if (!s->ring || !conf) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    const char *kv[][2] = {
        {"bootstrap.servers", o->brokers},
        {"enable.idempotence", "true"},
        {"compression.type", o->compression},
        {"linger.ms", "20"},
        {"batch.num.messages", "10000"},
        {"queue.buffering.max.messages", KAFKA_MAX_MSGS},
        {"queue.buffering.max.kbytes", KAFKA_MAX_KB},
        {"log.connection.close", "false"},
    };
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        if ((rc = set_conf(conf, kv[i][0], kv[i][1], err, errlen)) < 0)
            goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, s);
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!s->rk) {
        rc = -EINVAL;
        snprintf(err, errlen, "kafka: %s", errstr);
        goto fail;
    }
    conf = NULL; /* owned by rk now */
    s->rkt = rd_kafka_topic_new(s->rk, o->topic, NULL);
    if (!s->rkt) {
        rc = -EINVAL;
        snprintf(err, errlen, "kafka: topic %s: %s", o->topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    *out = s;
    return 0;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    op_sink_destroy(s);
    return rc;
}

/* ---- both -------------------------------------------------------------------------- */

char *op_sink_buf(op_sink_t *s)
{
    return s->kind == SINK_FILE ? s->buf + s->used : s->buf;
}

int op_sink_commit(op_sink_t *s, size_t len, const char *key, size_t keylen,
                   const op_gen_record_t *rec, char *err, size_t errlen)
{
    if (s->kind == SINK_FILE) {
        s->buf[s->used + len] = '\n';
        s->used += len + 1;
        s->sent++;
        s->delivered++;
        if (s->cb)
            s->cb(s->opaque, rec, 1);
        if (FILE_BUF - s->used < OP_GEN_MAX_RECORD + 1)
            return file_drain(s, err, errlen);
        return 0;
    }

    if (s->fatal) {
        snprintf(err, errlen, "%s", s->fatal_msg);
        return -EIO;
    }
    struct pending *p = &s->ring[s->next_id & ((1u << RING_BITS) - 1)];
    if (p->busy)
        return -EAGAIN; /* an old record is still in flight: let reports drain */
    char rkey[RANDOM_KEY_LEN];
    if (s->key_mode == OP_SINK_KEY_RANDOM) {
        uint64_t a = op_rng_next(&s->keyrng), b = op_rng_next(&s->keyrng);
        memcpy(rkey, &a, 8);
        memcpy(rkey + 8, &b, 8);
        key = rkey;
        keylen = sizeof(rkey);
    } else if (s->key_mode == OP_SINK_KEY_NONE) {
        key = NULL;
        keylen = 0;
    }
    /* A zero-length payload must still be a non-NULL pointer: NULL would be a
     * tombstone (null value) rather than the empty record we mean. */
    if (rd_kafka_produce(s->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, s->buf, len, key,
                         keylen, (void *)(uintptr_t)s->next_id) != 0) {
        rd_kafka_resp_err_t e = rd_kafka_last_error();
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return -EAGAIN;
        snprintf(err, errlen, "kafka: produce: %s", rd_kafka_err2str(e));
        return -EIO;
    }
    p->rec = *rec;
    p->busy = 1;
    s->next_id++;
    s->sent++;
    return 0;
}

int op_sink_poll(op_sink_t *s, int timeout_ms, char *err, size_t errlen)
{
    if (s->kind == SINK_FILE)
        return 0;
    rd_kafka_poll(s->rk, timeout_ms);
    if (s->fatal) {
        snprintf(err, errlen, "%s", s->fatal_msg);
        return -EIO;
    }
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int op_sink_flush(op_sink_t *s, int timeout_ms, char *err, size_t errlen)
{
    if (s->kind == SINK_FILE) {
        int rc = file_drain(s, err, errlen);
        if (rc == 0 && s->own_fd) {
            int fd = s->fd;
            s->fd = -1;
            if (close(fd) < 0) {
                rc = -errno;
                snprintf(err, errlen, "closing %s: %s", s->path, strerror(errno));
            }
        }
        return rc;
    }

    rd_kafka_resp_err_t e = rd_kafka_flush(s->rk, timeout_ms);
    if (e == RD_KAFKA_RESP_ERR__TIMED_OUT) {
        fprintf(stderr, "sim: kafka: %llu records not delivered after %d ms; purging them\n",
                (unsigned long long)op_sink_pending(s), timeout_ms);
        rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        /* The purged records come back as failed delivery reports. */
        int64_t deadline = mono_ms() + 5000;
        while (op_sink_pending(s) && mono_ms() < deadline)
            rd_kafka_poll(s->rk, 50);
    }
    /* Anything still unreported cannot be known delivered: count it failed. */
    for (size_t i = 0; op_sink_pending(s) && i < ((size_t)1 << RING_BITS); i++) {
        struct pending *p = &s->ring[i];
        if (!p->busy)
            continue;
        p->busy = 0;
        s->failed++;
        if (s->cb)
            s->cb(s->opaque, &p->rec, 0);
    }
    if (s->first_failure[0])
        fprintf(stderr, "sim: kafka: first delivery failure: %s\n", s->first_failure);
    if (s->fatal) {
        snprintf(err, errlen, "%s", s->fatal_msg);
        return -EIO;
    }
    return 0;
}

void op_sink_destroy(op_sink_t *s)
{
    if (!s)
        return;
    if (s->rkt)
        rd_kafka_topic_destroy(s->rkt);
    if (s->rk)
        rd_kafka_destroy(s->rk);
    if (s->own_fd && s->fd >= 0)
        close(s->fd);
    free(s->ring);
    free(s->path);
    free(s->buf);
    free(s);
}

uint64_t op_sink_sent(const op_sink_t *s)
{
    return s->sent;
}

uint64_t op_sink_delivered(const op_sink_t *s)
{
    return s->delivered;
}

uint64_t op_sink_failed(const op_sink_t *s)
{
    return s->failed;
}

uint64_t op_sink_pending(const op_sink_t *s)
{
    return s->sent - s->delivered - s->failed;
}
