/* deadletter.c — rejected records, copied verbatim to a file or a topic.
 *
 * File target: each record becomes one JSON line, built whole in memory and
 * appended with a single write(2) on an O_APPEND descriptor under a mutex,
 * so concurrent workers (and another process appending to the same file)
 * never interleave partial lines. The raw bytes are base64-encoded, which
 * keeps invalid UTF-8, NULs and newlines intact.
 *
 * Kafka target ("kafka:TOPIC"): a producer of its own; the value is the raw
 * record, the headers "reason", "partition" and "offset" carry the rest (the
 * numbers as decimal text). Delivery reports are served by the putting
 * thread with rd_kafka_poll(rk, 0); failed deliveries are logged (at most
 * once a second) and counted, and close waits up to 10 s for the rest.
 *
 * Bad records are rare: this path allocates per record and takes a lock.
 * Out of memory: put returns -ENOMEM.
 */
#include "engine/io/deadletter.h"
#include "engine/io/kafkaconf.h"
#include "engine/io/rdkafka_tsan.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FLUSH_TIMEOUT_MS 10000
#define META_TIMEOUT_MS  5000

/* Created by main(); put from any worker; closed by main() after the
 * workers stopped. */
struct op_deadletter {
    /* File target: fd is written under lock only. */
    int fd;
    char *path;
    pthread_mutex_t lock;
    /* Kafka target: rk and rkt are thread-safe, topic immutable. */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    char *topic;
    atomic_ulong failed;      /* deliveries that failed (delivery report thread) */
    atomic_llong last_log_ms; /* rate limit of the delivery failure log */
};

static int set_err(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int set_err(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- file target ---------------------------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding; out has room for 4 * ((len + 2) / 3) bytes. */
static size_t b64_encode(char *out, const unsigned char *in, size_t len)
{
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = b64_alphabet[(v >> 6) & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    return (size_t)(o - out);
}

/* The reason as JSON string content (the parser's names need no escaping,
 * but a caller's string might). out has room for 6 * strlen(s) bytes. */
static size_t json_escape(char *out, const char *s)
{
    char *o = out;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            o += sprintf(o, "\\u%04x", c);
        } else {
            *o++ = (char)c;
        }
    }
    return (size_t)(o - out);
}

static int file_put(op_deadletter_t *dl, const char *reason, const char *buf, size_t len,
                    int32_t partition, int64_t offset)
{
    size_t rlen = strlen(reason);
    size_t cap = 96 + 6 * rlen + 4 * ((len + 2) / 3);
    char *line = malloc(cap);
    if (!line)
        return -ENOMEM;
    size_t n = (size_t)sprintf(line, "{\"reason\":\"");
    n += json_escape(line + n, reason);
    n += (size_t)sprintf(line + n,
                         "\",\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"record_b64\":\"",
                         partition, offset);
    n += b64_encode(line + n, (const unsigned char *)buf, len);
    line[n++] = '"';
    line[n++] = '}';
    line[n++] = '\n';

    int rc = 0;
    pthread_mutex_lock(&dl->lock);
    for (size_t done = 0; done < n;) {
        ssize_t w = write(dl->fd, line + done, n - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        done += (size_t)w;
    }
    pthread_mutex_unlock(&dl->lock);
    free(line);
    return rc;
}

/* --- Kafka target ---------------------------------------------------------- */

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    op_deadletter_t *dl = opaque;
    (void)rk;
    if (!m->err)
        return;
    unsigned long failed = atomic_fetch_add(&dl->failed, 1) + 1;
    int64_t now = now_ms(), last = atomic_load(&dl->last_log_ms);
    if (now - last >= 1000 && atomic_compare_exchange_strong(&dl->last_log_ms, &last, now))
        fprintf(stderr, "orderpulse: dead letter to %s not delivered: %s (%lu so far)\n", dl->topic,
                rd_kafka_err2str(m->err), failed);
}

static int kafka_put(op_deadletter_t *dl, const char *reason, const char *buf, size_t len,
                     int32_t partition, int64_t offset)
{
    char p[16], o[24];
    snprintf(p, sizeof(p), "%" PRId32, partition);
    snprintf(o, sizeof(o), "%" PRId64, offset);
    rd_kafka_resp_err_t e;
    for (int attempt = 0;; attempt++) {
        e = rd_kafka_producev(
            dl->rk, RD_KAFKA_V_RKT(dl->rkt), RD_KAFKA_V_VALUE((void *)(len ? buf : NULL), len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADER("reason", reason, -1),
            RD_KAFKA_V_HEADER("partition", p, -1), RD_KAFKA_V_HEADER("offset", o, -1),
            RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt == 10)
            break;
        rd_kafka_poll(dl->rk, 100); /* make room: serve delivery reports */
    }
    rd_kafka_poll(dl->rk, 0);
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return 0;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return -ENOBUFS;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return -EMSGSIZE;
    default:
        return -EIO;
    }
}

static int kafka_open(op_deadletter_t *dl, const char *brokers, const char *kafka_config, char *err,
                      size_t errlen)
{
    char errstr[256];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    if (!kc)
        return set_err(err, errlen, -ENOMEM, "dead letter: out of memory");
    const char *settings[][2] = {
        {"bootstrap.servers", brokers},
        {"client.id", "orderpulse-deadletter"},
        {"linger.ms", "50"},
    };
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        if (rd_kafka_conf_set(kc, settings[i][0], settings[i][1], errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(kc);
            return set_err(err, errlen, -EINVAL, "dead letter: kafka %s: %s", settings[i][0],
                           errstr);
        }
    }
    int rc = op_kafkaconf_apply(kc, kafka_config, err, errlen);
    if (rc < 0) {
        rd_kafka_conf_destroy(kc);
        return rc;
    }
    rd_kafka_conf_set_opaque(kc, dl);
    rd_kafka_conf_set_dr_msg_cb(kc, dr_msg_cb);
    dl->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof(errstr));
    if (!dl->rk) {
        rd_kafka_conf_destroy(kc);
        return set_err(err, errlen, -EINVAL, "dead letter: kafka producer: %s", errstr);
    }
    /* Fail at start, not at the first bad record, if the brokers are out of
     * reach or refuse the topic. */
    dl->rkt = rd_kafka_topic_new(dl->rk, dl->topic, NULL);
    if (!dl->rkt)
        return set_err(err, errlen, -EINVAL, "dead letter: topic %s: %s", dl->topic,
                       rd_kafka_err2str(rd_kafka_last_error()));
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(dl->rk, 0, dl->rkt, &md, META_TIMEOUT_MS);
    if (e)
        return set_err(err, errlen, -EIO, "dead letter: topic %s on %s: %s", dl->topic, brokers,
                       rd_kafka_err2str(e));
    rc = 0;
    if (md->topic_cnt == 1 && md->topics[0].err &&
        md->topics[0].err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) /* being auto-created */
        rc = set_err(err, errlen, -ENOENT, "dead letter: topic %s on %s: %s", dl->topic, brokers,
                     rd_kafka_err2str(md->topics[0].err));
    rd_kafka_metadata_destroy(md);
    return rc;
}

/* --- public --------------------------------------------------------------- */

int op_deadletter_open(op_deadletter_t **out, const char *target, const char *brokers,
                       const char *kafka_config, char *err, size_t errlen)
{
    int rc;
    *out = NULL;
    if (!target || !*target)
        return set_err(err, errlen, -EINVAL, "dead letter: empty target");
    op_deadletter_t *dl = calloc(1, sizeof(*dl));
    if (!dl)
        return set_err(err, errlen, -ENOMEM, "dead letter: out of memory");
    dl->fd = -1;
    pthread_mutex_init(&dl->lock, NULL);
    atomic_init(&dl->failed, 0);
    atomic_init(&dl->last_log_ms, 0);

    if (strncmp(target, "kafka:", 6) == 0) {
        if (!target[6]) {
            rc = set_err(err, errlen, -EINVAL, "dead letter: no topic in %s", target);
            goto fail;
        }
        if (!brokers || !*brokers) {
            rc = set_err(err, errlen, -EINVAL, "dead letter: %s needs Kafka brokers", target);
            goto fail;
        }
        dl->topic = strdup(target + 6);
        if (!dl->topic) {
            rc = set_err(err, errlen, -ENOMEM, "dead letter: out of memory");
            goto fail;
        }
        if ((rc = kafka_open(dl, brokers, kafka_config, err, errlen)) < 0)
            goto fail;
    } else {
        dl->path = strdup(target);
        if (!dl->path) {
            rc = set_err(err, errlen, -ENOMEM, "dead letter: out of memory");
            goto fail;
        }
        dl->fd = open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (dl->fd < 0) {
            int e = errno;
            rc = set_err(err, errlen, -e, "cannot open dead-letter file %s: %s", target,
                         strerror(e));
            goto fail;
        }
    }
    *out = dl;
    return 0;

fail:
    op_deadletter_close(dl);
    return rc;
}

int op_deadletter_put(op_deadletter_t *dl, const char *reason, const char *buf, size_t len,
                      int32_t partition, int64_t offset)
{
    if (!reason)
        reason = "";
    if (dl->rk)
        return kafka_put(dl, reason, buf, len, partition, offset);
    return file_put(dl, reason, buf, len, partition, offset);
}

void op_deadletter_close(op_deadletter_t *dl)
{
    if (!dl)
        return;
    if (dl->rk) {
        rd_kafka_flush(dl->rk, FLUSH_TIMEOUT_MS);
        int left = rd_kafka_outq_len(dl->rk);
        unsigned long failed = atomic_load(&dl->failed);
        if (left > 0 || failed > 0)
            fprintf(stderr,
                    "orderpulse: dead letters to %s: %lu not delivered, %d still queued "
                    "after %d s\n",
                    dl->topic, failed, left, FLUSH_TIMEOUT_MS / 1000);
        if (dl->rkt)
            rd_kafka_topic_destroy(dl->rkt);
        rd_kafka_destroy(dl->rk);
    }
    if (dl->fd >= 0 && close(dl->fd) < 0)
        fprintf(stderr, "orderpulse: dead-letter file %s: %s\n", dl->path, strerror(errno));
    pthread_mutex_destroy(&dl->lock);
    free(dl->topic);
    free(dl->path);
    free(dl);
}
