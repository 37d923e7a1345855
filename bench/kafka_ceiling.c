/* kafka_ceiling.c — the bare librdkafka consumer: the ceiling of the engine's
 * Kafka source.
 *
 * usage: kafka_ceiling BROKERS [TOPIC] [EXPECTED]
 * One consumer, every partition of TOPIC (default "orders") assigned at its
 * log start and forwarded to one queue, drained as the engine's workers
 * drain theirs (engine/io/source_kafka.c take()): what the queue holds, up
 * to 1024 messages, without waiting; only an empty queue is waited on (the
 * engine worker's 50 ms timeout) for its first message. Nothing is parsed:
 * messages and payload bytes are counted, that is all. The consumer
 * properties, and the one ListOffsets request each for the partitions'
 * ends and starts, are those of the engine, so the difference from
 * `orderpulse --once` is the work done per message.
 *
 * A partition is done, as in the engine's --once, at the message just before
 * the high watermark read at start, or at its partition-EOF event, whichever
 * comes first; messages past that end are not counted. (Waiting for the EOF
 * event alone costs one more fetch round of the slowest partition.) The
 * clock runs from just before rd_kafka_assign to the last partition done
 * (the engine's --once figure runs from after its assign to its final
 * snapshot).
 *
 * Prints one line:
 *   SUMMARY bench=kafka_ceiling partitions=8 msgs=... bytes=... seconds=...
 *           rate=... bytes_per_s=... low_min=... (low_min: the smallest log
 *           start offset, 0 when the broker still holds every message)
 * and exits 1 if EXPECTED is given and a different number was read.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/lines.h"

#define BATCH     1024
#define MAX_PARTS 1024
/* The engine worker's input timeout (engine/worker.c INPUT_TIMEOUT_MS). */
#define TIMEOUT_MS 50

/* The log start (what = RD_KAFKA_OFFSET_BEGINNING) or end (OFFSET_END) of
 * partitions 0..np-1 in one request, as the engine's --once does. */
static void list_offsets(rd_kafka_t *rk, const char *topic, int np, int64_t what, int64_t *out)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = what;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, l, 10000);
    for (int i = 0; i < l->cnt; i++) {
        if (e || l->elems[i].err || l->elems[i].offset < 0) {
            fprintf(stderr, "kafka_ceiling: offsets of [%d]: %s\n", (int)l->elems[i].partition,
                    rd_kafka_err2str(e ? e : l->elems[i].err));
            exit(1);
        }
        out[l->elems[i].partition] = l->elems[i].offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* engine/io/source_kafka.c take(). */
static ssize_t take(rd_kafka_queue_t *q, rd_kafka_message_t **batch, size_t max)
{
    ssize_t got = rd_kafka_consume_batch_queue(q, 0, batch, max);
    if (got != 0)
        return got;
    rd_kafka_message_t *m = rd_kafka_consume_queue(q, TIMEOUT_MS);
    if (!m)
        return 0;
    batch[0] = m;
    got = rd_kafka_consume_batch_queue(q, 0, batch + 1, max - 1);
    return got < 0 ? 1 : got + 1;
}

static void conf_set(rd_kafka_conf_t *kc, const char *name, const char *value)
{
    char errstr[256];
    if (rd_kafka_conf_set(kc, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka_ceiling: %s=%s: %s\n", name, value, errstr);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: kafka_ceiling BROKERS [TOPIC] [EXPECTED]\n");
        return 2;
    }
    const char *brokers = argv[1];
    const char *topic = argc > 2 ? argv[2] : "orders";
    long long expected = argc > 3 ? atoll(argv[3]) : -1;

    /* engine/io/source_kafka.c make_consumer(), property for property. */
    const char *settings[][2] = {
        {"bootstrap.servers", brokers},
        {"group.id", "orderpulse-bench-ceiling"},
        {"client.id", "orderpulse"},
        {"enable.auto.commit", "true"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "true"},
        {"queued.min.messages", "100000"},
        {"queued.max.messages.kbytes", "65536"},
        {"fetch.wait.max.ms", "10"},
        {"fetch.message.max.bytes", "4194304"},
    };
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
        conf_set(kc, settings[i][0], settings[i][1]);
    char errstr[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "kafka_ceiling: %s\n", errstr);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);

    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (e || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0 ||
        md->topics[0].partition_cnt > MAX_PARTS) {
        fprintf(stderr, "kafka_ceiling: metadata of %s: %s\n", topic,
                rd_kafka_err2str(e               ? e
                                 : md->topic_cnt ? md->topics[0].err
                                                 : 0));
        return 1;
    }
    int np = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);

    static rd_kafka_message_t *batch[BATCH];
    static unsigned char eof[MAX_PARTS]; /* partition finished */
    static int64_t end[MAX_PARTS];       /* its high watermark at start */
    static int64_t first[MAX_PARTS];     /* its log start */
    int remaining = np;
    long long low_min = -1;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    list_offsets(rk, topic, np, RD_KAFKA_OFFSET_END, end);
    list_offsets(rk, topic, np, RD_KAFKA_OFFSET_BEGINNING, first);
    for (int p = 0; p < np; p++) {
        if (low_min < 0 || first[p] < low_min)
            low_min = first[p];
        if (end[p] <= first[p]) { /* empty: nothing to wait for */
            eof[p] = 1;
            remaining--;
            continue;
        }
        rd_kafka_queue_t *pq = rd_kafka_queue_get_partition(rk, topic, p);
        rd_kafka_queue_forward(pq, q);
        rd_kafka_queue_destroy(pq);
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = first[p];
    }

    long long msgs = 0, bytes = 0, errors = 0;
    double start = op_bench_now();
    if ((e = rd_kafka_assign(rk, l))) {
        fprintf(stderr, "kafka_ceiling: assign: %s\n", rd_kafka_err2str(e));
        return 1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    while (remaining > 0) {
        ssize_t got = take(q, batch, BATCH);
        if (got < 0) {
            perror("kafka_ceiling: consume");
            return 1;
        }
        for (ssize_t i = 0; i < got; i++) {
            rd_kafka_message_t *m = batch[i];
            if (!m->err) {
                int32_t p = m->partition;
                if (p < 0 || p >= np || eof[p] || m->offset >= end[p]) {
                    rd_kafka_message_destroy(m); /* after the end seen at start */
                    continue;
                }
                msgs++;
                bytes += (long long)m->len;
                if (m->offset + 1 >= end[p]) {
                    eof[p] = 1;
                    remaining--;
                }
            } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (m->partition >= 0 && m->partition < np && !eof[m->partition]) {
                    eof[m->partition] = 1;
                    remaining--;
                }
            } else if (errors++ < 10) {
                fprintf(stderr, "kafka_ceiling: [%d]: %s\n", (int)m->partition,
                        rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
        }
    }
    double secs = op_bench_now() - start;

    printf("SUMMARY bench=kafka_ceiling partitions=%d msgs=%lld bytes=%lld seconds=%.3f rate=%.0f "
           "bytes_per_s=%.0f low_min=%lld\n",
           np, msgs, bytes, secs, msgs / secs, bytes / secs, low_min);
    fflush(stdout);

    rd_kafka_assign(rk, NULL);
    for (int p = 0; p < np; p++) {
        rd_kafka_queue_t *pq = rd_kafka_queue_get_partition(rk, topic, p);
        rd_kafka_queue_forward(pq, NULL);
        rd_kafka_queue_destroy(pq);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    if (expected >= 0 && msgs != expected) {
        fprintf(stderr, "kafka_ceiling: read %lld messages, expected %lld (log start moved?)\n",
                msgs, expected);
        return 1;
    }
    return 0;
}
