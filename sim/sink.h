/* sink.h — where the simulator's records go: a JSONL file or a Kafka topic.
 *
 * The generator renders each record straight into op_sink_buf(), and
 * op_sink_commit() sends it. A record counts as delivered — and is handed to
 * the delivered callback, which feeds the truth — when it is in the file's
 * buffer (a later write error is fatal for the whole run) or when Kafka
 * acknowledged it; a Kafka record whose delivery failed is reported to the
 * callback with ok = 0 and never counted.
 *
 * Kafka bookkeeping: each produced record's op_gen_record_t waits in a ring of
 * pending slots, and msg_opaque carries its sequence number; the delivery
 * report callback (run by rd_kafka_poll, i.e. inside op_sink_poll/commit on
 * the caller's thread) finds it there. A record whose slot is still taken by
 * an older undelivered one waits (-EAGAIN), so the ring never overwrites.
 *
 * Thread safety: one thread calls every op_sink_* function; librdkafka's own
 * threads never call back into the sink (delivery reports are polled).
 */
#ifndef OP_SINK_H
#define OP_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "sim/gen.h"

/* Called once per committed record, on the caller's thread. */
typedef void (*op_sink_delivered_cb)(void *opaque, const op_gen_record_t *rec, int ok);

enum op_sink_key { OP_SINK_KEY_USER = 0, OP_SINK_KEY_RANDOM = 1, OP_SINK_KEY_NONE = 2 };

typedef struct op_sink_kafka_opts {
    const char *brokers;
    const char *topic;
    const char *compression; /* none|gzip|snappy|lz4|zstd */
    int key_mode;            /* enum op_sink_key */
    uint64_t seed;           /* for random keys */
} op_sink_kafka_opts_t;

typedef struct op_sink op_sink_t;

/* path "-" is stdout. Returns 0 or a negative errno with a message. */
int op_sink_open_file(op_sink_t **out, const char *path, op_sink_delivered_cb cb, void *opaque,
                      char *err, size_t errlen);
int op_sink_open_kafka(op_sink_t **out, const op_sink_kafka_opts_t *o, op_sink_delivered_cb cb,
                       void *opaque, char *err, size_t errlen);

/* Where to render the next record: at least OP_GEN_MAX_RECORD bytes. */
char *op_sink_buf(op_sink_t *s);

/* Sends the len bytes at op_sink_buf(). key is the user's name (used with
 * --key user). Returns 0; -EAGAIN when the producer queue is full (call
 * op_sink_poll, then commit the same record again — the buffer is kept);
 * or another negative errno with a message (fatal: stop the run). */
int op_sink_commit(op_sink_t *s, size_t len, const char *key, size_t keylen,
                   const op_gen_record_t *rec, char *err, size_t errlen);

/* Serves delivery reports for up to timeout_ms. Returns 0 or a fatal
 * negative errno with a message (a fatal producer error). */
int op_sink_poll(op_sink_t *s, int timeout_ms, char *err, size_t errlen);

/* Writes or flushes everything. Kafka: waits up to timeout_ms, then purges
 * what is left (reported as failed). Returns 0 or a negative errno. */
int op_sink_flush(op_sink_t *s, int timeout_ms, char *err, size_t errlen);

/* Closes without flushing (call op_sink_flush first). NULL is fine. */
void op_sink_destroy(op_sink_t *s);

/* Counters: records committed, acknowledged, failed. */
uint64_t op_sink_sent(const op_sink_t *s);
uint64_t op_sink_delivered(const op_sink_t *s);
uint64_t op_sink_failed(const op_sink_t *s);
/* Records committed but neither delivered nor failed yet. */
uint64_t op_sink_pending(const op_sink_t *s);

#endif
