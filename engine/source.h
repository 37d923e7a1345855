/* source.h — where a worker's records come from: a Kafka topic or a JSONL file.
 *
 * A source is opened once by main() and hands out one op_input_t per worker.
 * Each input is owned by its worker thread: only that thread calls
 * op_input_next/op_input_release on it. A record belongs to exactly one
 * partition, and a partition is read by exactly one worker at a time, in
 * offset order, so a worker may keep per-partition state (watermarks, last
 * offsets) without synchronisation.
 *
 * Records are handed out in batches, zero-copy: the bytes stay valid until
 * the batch is released.
 */
#ifndef OP_SOURCE_H
#define OP_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#define OP_SOURCE_MAX_PARTITIONS 1024
#define OP_SOURCE_ERRLEN         256

typedef struct op_record {
    const char *buf; /* the record's bytes, not NUL-terminated (may be NULL when len is 0) */
    size_t len;
    int32_t partition; /* 0..OP_SOURCE_MAX_PARTITIONS-1 (file source: the worker's chunk) */
    int64_t offset;    /* Kafka offset, or the line's byte offset in the file */
} op_record_t;

/* Offsets [from, to) of a partition that the broker deleted before this
 * process read them (retention, or an offset reset to the log start): lost
 * records. Counted in offsets, so transaction markers or compacted-away
 * records inside a deleted range count too. */
typedef struct op_loss {
    int32_t partition;
    int64_t from, to;
} op_loss_t;

/* One batch of records. Owned by the worker between op_input_next and
 * op_input_release. */
typedef struct op_batch {
    op_record_t *recs;
    size_t n;
    void *priv; /* the source's bookkeeping (e.g. rd_kafka_message_t pointers) */
    /* Losses noticed while filling this batch, each just before the
     * records of its partition that follow it: the worker counts them in
     * the same shard as those records, so that the count and the offsets
     * past the gap are committed together. Empty for a file. */
    const op_loss_t *losses;
    size_t nlosses;
} op_batch_t;

typedef struct op_source op_source_t;
typedef struct op_input op_input_t;

/* The kind of source and its settings, filled in by main() from the flags. */
typedef struct op_source_conf {
    const char *file;    /* JSONL path for the file source, or NULL for Kafka */
    const char *brokers; /* Kafka bootstrap servers */
    const char *topic;
    const char *group;
    int once; /* stop at the end: end of file, or the end offsets seen at start */
    int nworkers;
    size_t batch_max; /* records per batch (default 1024) */
    /* Optional: where to start reading a partition (a file chunk), asked at
     * open (files, Kafka --once) and on every assignment, since Redis and not
     * Kafka holds the truth (DESIGN §4): the claim of the partition. Returns
     * 0 with *offset set (RD_KAFKA_OFFSET_BEGINNING = -2 for "from the
     * start"), or a negative value when the partition cannot be claimed now
     * (Redis unreachable): a file or --once source then fails to open, a
     * group member holds the partition -- assigned but not consumed -- and
     * asks again until the claim succeeds; it never falls back to Kafka's
     * committed offset. Called from op_source_open or from the source's Kafka
     * poll thread, never from a worker; start_opaque is passed back. NULL:
     * files from their start, Kafka from the group's committed offset (or the
     * earliest), for runs without Redis. */
    int (*start_offset)(void *start_opaque, int32_t partition, int64_t *offset);
    void *start_opaque;
    /* Optional (group mode), on the poll thread with start_opaque: called
     * before partitions are given up (the engine flushes what it consumed
     * of them, so that the next owner starts exactly there) and after an
     * assignment's seeks are in place. */
    void (*on_revoke)(void *start_opaque);
    void (*on_assigned)(void *start_opaque);
    /* Extra librdkafka properties, "name=value,name=value" (may be NULL). */
    const char *kafka_config;
    /* File source: cut the file into this many chunks (0: one per worker). */
    int chunks;
    /* --on-loss stop: when the broker deleted records before they were
     * read, do not read past the gap (and do not count it): log it and
     * report op_source_failed, so that main stops. Default (0): count the
     * loss (op_batch_t.losses) and go on. */
    int on_loss_stop;
} op_source_conf_t;

/* Opens the source and creates nworkers inputs. Returns 0 or a negative
 * error code with a one-line message in err. Called by main() only. */
int op_source_open(op_source_t **out, const op_source_conf_t *conf, char *err, size_t errlen);

/* The input of worker i (0 <= i < nworkers). Owned by the source. */
op_input_t *op_source_input(op_source_t *src, int i);

/* Closes the source after every worker has stopped using its input. */
void op_source_close(op_source_t *src);

/* Return values of op_input_next besides a count of records. */
#define OP_INPUT_EOF (-1) /* --once and this input has nothing more: stop */

/* Waits up to timeout_ms for records and fills *batch. One batch at a time:
 * a call releases the previous batch if the caller has not. Returns the number of
 * records (0 on timeout: the worker then checks for a tick and calls again),
 * OP_INPUT_EOF, or another negative error code (logged by the source; the
 * worker keeps going). Called by the owning worker only. */
int op_input_next(op_input_t *in, op_batch_t *batch, int timeout_ms);

/* Releases the records of a batch returned by op_input_next. */
void op_input_release(op_input_t *in, op_batch_t *batch);

/* The identity of a file for Redis: "file:<hash of its edges>-<size>".
 * Returns 0 or a negative error code with a message. */
int op_source_file_fingerprint(const char *path, char *out, size_t outlen, char *err,
                               size_t errlen);

/* Partition lag for /metrics and stats.lag: the sum over partitions this
 * process reads of (high watermark - next offset to read), or 0 for a file.
 * Any thread. */
int64_t op_source_lag(op_source_t *src);

/* A partition this process reads now, as op_source_partitions sees it. */
typedef struct op_source_part {
    int32_t partition;
    int64_t next_offset; /* the next offset to read, -1 until known */
    int64_t end_offset;  /* the high watermark (librdkafka's cached one), -1 until known */
    int64_t lag;         /* end_offset - next_offset, 0 when either is unknown */
} op_source_part_t;

/* Fills out (room for max entries) with the partitions this process reads
 * now, in ascending order, and returns how many there are (0 for a file).
 * Approximate by design, like op_source_lag. Any thread; no allocation. */
int op_source_partitions(op_source_t *src, op_source_part_t *out, int max);

/* 0, or a negative error code once the source stopped reading on purpose
 * (--on-loss stop after a loss; the reason was logged): the process should
 * stop. Any thread. */
int op_source_failed(op_source_t *src);

#endif
