/* source_kafka.c — records from a Kafka topic, one consumer per process.
 *
 * One rd_kafka_t consumer, one librdkafka queue per worker. Every partition
 * this process reads has its fetch queue forwarded to the queue of worker
 * (partition % nworkers), so a partition is only ever read by one worker,
 * in offset order, and the workers never contend on a shared consumer
 * queue. Workers drain their queue with rd_kafka_consume_batch_queue and get
 * the messages in place (zero-copy) until they release the batch.
 *
 * Two ways to get partitions:
 *  - normally, a consumer group subscription: the rebalance callback sets up
 *    the forwarding (and asks conf->start_offset where to start) before
 *    rd_kafka_assign, and undoes it on revocation;
 *  - with --once, no group rebalance: op_source_open reads the topic's
 *    partitions, their watermarks and the group's committed offsets (one
 *    request each for all partitions), and assigns every partition that has
 *    something to read directly, at a concrete offset, so that fetching
 *    starts without a per-partition offset lookup. An input reports
 *    OP_INPUT_EOF when every partition it reads has been consumed up to the
 *    watermark seen at start (the last message, or a partition-EOF event);
 *    later messages are not handed out, and a finished partition is paused.
 *
 * Workers take what their queue holds without waiting for a full batch,
 * and wait (up to their timeout) only when it is empty: a batch never waits
 * for records that are not there, so --once ends with the last record and
 * a trickle of orders is handed on at once.
 *
 * Lost records: a worker knows the next offset it expects of each of its
 * partitions (ks->next). A record past it is a gap; the gap is a loss only
 * if the broker's log now starts past the expected offset (retention
 * deleted the records, and librdkafka's auto.offset.reset=earliest jumped to
 * the log start). Other gaps are transaction markers or compaction and are
 * not losses. A loss travels in the batch (op_batch_t.losses) and is logged
 * once; with --on-loss stop the partition is paused instead and the source
 * reports op_source_failed. (librdkafka 2.0.2 reports such a reset as an
 * error event, RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET, only when
 * auto.offset.reset=error, and then stops fetching the partition until it
 * is assigned again; with earliest it only logs. Hence the gap check.)
 *
 * The consumer's own queue (rebalances, errors; the main queue is forwarded
 * to it) is served by a small thread of this module, "op-kafka-poll", so that
 * a busy or stopped worker never delays a rebalance.
 *
 * Offsets: enable.auto.commit with enable.auto.offset.store=false; an offset
 * is stored when its batch is released, i.e. after the worker applied it
 * (after a counted loss, the offset past the gap too).
 * Kafka commits are advisory (DESIGN §4: Redis holds the truth, reached
 * through conf->start_offset).
 *
 * Out of memory: open returns -ENOMEM; the hot path (next/release) never
 * allocates; the rebalance callback logs and takes no partitions.
 */
#include "engine/io/kafkaconf.h"
#include "engine/io/source_internal.h"
#include "engine/io/rdkafka_tsan.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define META_TIMEOUT_MS 10000
#define POLL_TIMEOUT_MS 100
#define LOG_INTERVAL_MS 1000
#define CLAIM_RETRY_MS  1000

typedef struct kafka_source kafka_source_t;

/* Logs at most one line a second; the lines in between are counted. Owner:
 * whichever single thread the limiter belongs to. */
typedef struct log_limiter {
    int64_t last_ms;
    unsigned long suppressed;
} log_limiter_t;

/* One worker's queue and batch. Owner: that worker (everything below base
 * and ks); q is created at open and destroyed at close by main(). Cache-line
 * aligned so that neighbouring workers do not share lines. */
typedef struct kafka_input {
    alignas(64) op_input_t base;
    kafka_source_t *ks;
    rd_kafka_queue_t *q;       /* partitions p with p % nworkers == index forward here */
    rd_kafka_message_t **raw;  /* batch_max: what rd_kafka_consume_batch_queue returned */
    rd_kafka_message_t **held; /* batch_max: the messages behind the records handed out */
    op_record_t *recs;         /* batch_max */
    op_loss_t *losses;         /* batch_max + OP_SOURCE_MAX_PARTITIONS: the batch's losses */
    size_t nheld;              /* records of the batch not yet released */
    size_t nlosses;            /* losses of the batch not yet released */
    int handed;                /* a batch (records or losses) is out, not yet released */
    int remaining;             /* --once: partitions of this input not finished */
    log_limiter_t log;
} kafka_input_t;

/* Created and closed by main(). Fields are immutable after open unless
 * their comment says otherwise. */
struct kafka_source {
    op_source_t base;
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt; /* for storing offsets past a loss */
    char *topic;
    char *group;
    int nworkers;
    int once;
    int on_loss_stop;
    size_t batch_max;
    int npartitions; /* from the metadata at open */
    int (*start_offset)(void *opaque, int32_t partition, int64_t *offset);
    void (*on_revoke)(void *opaque);
    void (*on_assigned)(void *opaque);
    void *start_opaque;
    kafka_input_t *inputs; /* nworkers */

    /* --once only, npartitions each. end: the high watermark seen at start.
     * done[p]: written only by the worker that reads p. */
    int64_t *end;
    uint8_t *done;

    /* stopped[p]: --on-loss stop gave up partition p (its worker only).
     * failed: set by that worker, read by any thread. */
    uint8_t stopped[OP_SOURCE_MAX_PARTITIONS];
    atomic_int failed;

    /* forwarded[p]: partition p's queue is forwarded to a worker. Touched by
     * the poll thread (rebalance callback) and, after it stopped, by main(). */
    uint8_t forwarded[OP_SOURCE_MAX_PARTITIONS];

    /* For op_source_lag (any thread), relaxed atomics, approximate by
     * design. owned[p]: this process reads p (set at assignment). next[p]:
     * the next offset to read, -1 if unknown; set at assignment when the
     * start is known, then by the worker of p once per run of p in a batch
     * and at each partition-EOF event (so that a caught-up consumer shows
     * no lag even before its first message). The worker of p also checks
     * each record of p against it: that is how gaps are noticed. */
    atomic_uchar owned[OP_SOURCE_MAX_PARTITIONS];
    _Atomic int64_t next[OP_SOURCE_MAX_PARTITIONS];

    /* Claims (conf->start_offset) that failed at assignment: the partition is
     * assigned (from its beginning, paused) but not consumed; the poll thread
     * asks again every CLAIM_RETRY_MS, then seeks to the claimed offset and
     * resumes. Workers drop every record of a held partition and every record
     * below start[p] (fetched before the seek). held/start: poll thread
     * writes, workers read (relaxed is enough: a stale read only drops a
     * record that would have been dropped, or lets through one at or after
     * the claimed start). nheld, next_claim_ms: poll thread only. */
    atomic_uchar held[OP_SOURCE_MAX_PARTITIONS];
    _Atomic int64_t start[OP_SOURCE_MAX_PARTITIONS];
    int nheld;
    int64_t next_claim_ms;

    pthread_t poller;
    int poller_started;
    atomic_int stop;       /* set by close to stop the poll thread */
    log_limiter_t pol_log; /* the poll thread's (and close's, after the join) */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 2, 3))) static void log_limited(log_limiter_t *ll, const char *fmt,
                                                              ...)
{
    int64_t now = now_ms();
    if (ll->last_ms && now - ll->last_ms < LOG_INTERVAL_MS) {
        ll->suppressed++;
        return;
    }
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (ll->suppressed)
        fprintf(stderr, "orderpulse: kafka: %s (%lu more since the last message)\n", line,
                ll->suppressed);
    else
        fprintf(stderr, "orderpulse: kafka: %s\n", line);
    ll->last_ms = now;
    ll->suppressed = 0;
}

/* --- partition forwarding (poll thread, or open/close) ------------------- */

static int forward_partition(kafka_source_t *ks, int32_t p)
{
    rd_kafka_queue_t *pq = rd_kafka_queue_get_partition(ks->rk, ks->topic, p);
    if (!pq)
        return -ENOENT;
    rd_kafka_queue_forward(pq, ks->inputs[p % ks->nworkers].q);
    rd_kafka_queue_destroy(pq);
    ks->forwarded[p] = 1;
    return 0;
}

static void unforward_partition(kafka_source_t *ks, int32_t p)
{
    if (!ks->forwarded[p])
        return;
    rd_kafka_queue_t *pq = rd_kafka_queue_get_partition(ks->rk, ks->topic, p);
    if (pq) {
        rd_kafka_queue_forward(pq, NULL);
        rd_kafka_queue_destroy(pq);
    }
    ks->forwarded[p] = 0;
}

static void set_owned(kafka_source_t *ks, int32_t p, int64_t start)
{
    atomic_store_explicit(&ks->next[p], start >= 0 ? start : -1, memory_order_relaxed);
    atomic_store_explicit(&ks->owned[p], 1, memory_order_relaxed);
}

static void revoke_all(kafka_source_t *ks)
{
    rd_kafka_resp_err_t e = rd_kafka_assign(ks->rk, NULL);
    if (e)
        log_limited(&ks->pol_log, "unassign: %s", rd_kafka_err2str(e));
    for (int32_t p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++) {
        unforward_partition(ks, p);
        atomic_store_explicit(&ks->owned[p], 0, memory_order_relaxed);
        atomic_store_explicit(&ks->held[p], 0, memory_order_relaxed);
    }
    ks->nheld = 0;
}

/* Pauses (on) or resumes one partition. */
static void pause_one(kafka_source_t *ks, int32_t p, int on)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    if (!l)
        return;
    rd_kafka_topic_partition_list_add(l, ks->topic, p);
    rd_kafka_resp_err_t e =
        on ? rd_kafka_pause_partitions(ks->rk, l) : rd_kafka_resume_partitions(ks->rk, l);
    if (e)
        log_limited(&ks->pol_log, "%s [%d]: %s", on ? "pause" : "resume", (int)p,
                    rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

/* Where partition p starts: its claim. A failed claim holds it (see held). */
static int64_t claim_start(kafka_source_t *ks, int32_t p, int64_t dflt)
{
    int64_t off = dflt;
    if (ks->start_offset && ks->start_offset(ks->start_opaque, p, &off) < 0) {
        atomic_store_explicit(&ks->start[p], INT64_MAX, memory_order_relaxed);
        atomic_store_explicit(&ks->held[p], 1, memory_order_relaxed);
        ks->nheld++;
        return RD_KAFKA_OFFSET_BEGINNING; /* below any claimed offset: fetched, then dropped */
    }
    atomic_store_explicit(&ks->start[p], off >= 0 ? off : 0, memory_order_relaxed);
    atomic_store_explicit(&ks->held[p], 0, memory_order_relaxed);
    return off;
}

/* Poll thread: claims the held partitions again; those that succeed are
 * sought to their claimed offset and resumed. */
static void retry_claims(kafka_source_t *ks)
{
    int64_t now = now_ms();
    if (!ks->nheld || now < ks->next_claim_ms)
        return;
    ks->next_claim_ms = now + CLAIM_RETRY_MS;
    for (int32_t p = 0; p < OP_SOURCE_MAX_PARTITIONS && ks->nheld; p++) {
        if (!atomic_load_explicit(&ks->held[p], memory_order_relaxed))
            continue;
        int64_t off = 0;
        if (ks->start_offset(ks->start_opaque, p, &off) < 0)
            return; /* Redis still unreachable: again later */
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        if (!l)
            return;
        rd_kafka_topic_partition_list_add(l, ks->topic, p)->offset = off;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(ks->rk, l, META_TIMEOUT_MS);
        rd_kafka_topic_partition_list_destroy(l);
        if (e) {
            log_limited(&ks->pol_log, "seek [%d] to %lld: %s", (int)p, (long long)off,
                        rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            return;
        }
        atomic_store_explicit(&ks->start[p], off >= 0 ? off : 0, memory_order_relaxed);
        atomic_store_explicit(&ks->next[p], off >= 0 ? off : -1, memory_order_relaxed);
        atomic_store_explicit(&ks->held[p], 0, memory_order_relaxed);
        ks->nheld--;
        pause_one(ks, p, 0);
        fprintf(stderr, "orderpulse: kafka: claimed partition %d at %lld\n", (int)p,
                (long long)off);
    }
}

/* Partitions with no start of their own (-1001: no start_offset hook, or
 * it left the default) start at the group's committed offset: one request
 * for all of them, so that the worker knows what offset comes next and a
 * reset past it counts as a loss. Where the group has none (or the request
 * fails: the error is returned) the offset stays -1001 and librdkafka
 * applies auto.offset.reset: a start that nobody asked for cannot lose
 * anything. */
static rd_kafka_resp_err_t resolve_committed(kafka_source_t *ks, rd_kafka_topic_partition_list_t *l)
{
    int need = 0;
    for (int i = 0; i < l->cnt; i++)
        need |= l->elems[i].offset == RD_KAFKA_OFFSET_INVALID;
    if (!need)
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_copy(l);
    if (!c)
        return RD_KAFKA_RESP_ERR__FAIL; /* out of memory */
    rd_kafka_resp_err_t e = rd_kafka_committed(ks->rk, c, META_TIMEOUT_MS);
    for (int i = 0; !e && i < l->cnt; i++) {
        const rd_kafka_topic_partition_t *t =
            rd_kafka_topic_partition_list_find(c, ks->topic, l->elems[i].partition);
        if (l->elems[i].offset == RD_KAFKA_OFFSET_INVALID && t && !t->err && t->offset >= 0)
            l->elems[i].offset = t->offset;
    }
    rd_kafka_topic_partition_list_destroy(c);
    return e;
}

/* One line per assignment (operators and tests wait for it): which
 * partitions, and the offset each resumes at (-2 = beginning, -1001 = the
 * group's committed offset, when the group has none). */
static void log_assignment(const rd_kafka_topic_partition_list_t *parts)
{
    char line[1024];
    size_t n = 0;
    for (int i = 0; i < parts->cnt && n < sizeof(line) - 32; i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%d@%lld", i ? " " : "",
                              (int)parts->elems[i].partition, (long long)parts->elems[i].offset);
    line[n] = 0;
    fprintf(stderr, "orderpulse: kafka: assigned %d partition(s): %s\n", parts->cnt, line);
}

/* Group mode. Runs on the poll thread (rd_kafka_consumer_poll), or in main()
 * inside rd_kafka_consumer_close. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kafka_source_t *ks = opaque;
    (void)rk;
    if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            log_limited(&ks->pol_log, "rebalance: %s", rd_kafka_err2str(err));
        /* One line per revocation, beside "assigned": what a rebalance did
         * is then readable from the log alone. */
        fprintf(stderr, "orderpulse: kafka: revoking %d partition(s)%s\n", parts ? parts->cnt : 0,
                rd_kafka_assignment_lost(ks->rk)
                    ? " (assignment lost: the group dropped this member)"
                    : "");
        if (ks->on_revoke)
            ks->on_revoke(ks->start_opaque);
        revoke_all(ks);
        return;
    }
    /* A copy without the partitions we cannot take (librdkafka owns parts). */
    rd_kafka_topic_partition_list_t *mine = rd_kafka_topic_partition_list_new(parts->cnt);
    if (!mine) {
        log_limited(&ks->pol_log, "rebalance: out of memory, taking no partitions");
        revoke_all(ks);
        return;
    }
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *t = &parts->elems[i];
        if (strcmp(t->topic, ks->topic) != 0 || t->partition < 0 ||
            t->partition >= OP_SOURCE_MAX_PARTITIONS) {
            log_limited(&ks->pol_log, "rebalance: ignoring %s [%d] (at most %d partitions)",
                        t->topic, (int)t->partition, OP_SOURCE_MAX_PARTITIONS);
            continue;
        }
        int64_t off = claim_start(ks, t->partition, t->offset);
        if (forward_partition(ks, t->partition) < 0) {
            log_limited(&ks->pol_log, "rebalance: no queue for %s [%d]", t->topic,
                        (int)t->partition);
            continue;
        }
        rd_kafka_topic_partition_list_add(mine, t->topic, t->partition)->offset = off;
    }
    rd_kafka_resp_err_t ce = resolve_committed(ks, mine);
    if (ce) /* librdkafka looks them up itself; a loss at that start goes unseen */
        log_limited(&ks->pol_log, "committed offsets of %s: %s", ks->topic, rd_kafka_err2str(ce));
    for (int i = 0; i < mine->cnt; i++)
        set_owned(ks, mine->elems[i].partition, mine->elems[i].offset);
    rd_kafka_resp_err_t e = rd_kafka_assign(ks->rk, mine);
    if (e)
        log_limited(&ks->pol_log, "assign: %s", rd_kafka_err2str(e));
    else
        log_assignment(mine);
    for (int i = 0; !e && i < mine->cnt; i++)
        if (atomic_load_explicit(&ks->held[mine->elems[i].partition], memory_order_relaxed))
            pause_one(ks, mine->elems[i].partition, 1);
    if (ks->nheld)
        fprintf(stderr,
                "orderpulse: kafka: %d partition(s) held until Redis can be asked where they "
                "resume\n",
                ks->nheld);
    ks->next_claim_ms = now_ms() + CLAIM_RETRY_MS;
    rd_kafka_topic_partition_list_destroy(mine);
    if (ks->on_assigned)
        ks->on_assigned(ks->start_opaque);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_source_t *ks = opaque;
    (void)rk;
    log_limited(&ks->pol_log, "%s: %s", rd_kafka_err2name(err), reason);
}

static void *poll_main(void *arg)
{
    kafka_source_t *ks = arg;
    while (!atomic_load_explicit(&ks->stop, memory_order_acquire)) {
        retry_claims(ks);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ks->rk, POLL_TIMEOUT_MS);
        if (!m)
            continue;
        if (m->err)
            log_limited(&ks->pol_log, "%s", rd_kafka_message_errstr(m));
        else /* cannot happen: every assigned partition is forwarded first */
            log_limited(&ks->pol_log, "message %s [%d] at %lld was not forwarded, dropped",
                        rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset);
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

/* --- the worker's side ---------------------------------------------------- */

static void pause_partition(kafka_source_t *ks, int32_t p)
{
    /* A failure only costs bandwidth: what comes is dropped anyway. */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    if (l) {
        rd_kafka_topic_partition_list_add(l, ks->topic, p);
        rd_kafka_pause_partitions(ks->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
    }
}

/* --once: partition p (read by this input) has reached its end. */
static void finish_partition(kafka_input_t *ki, int32_t p)
{
    kafka_source_t *ks = ki->ks;
    if (ks->done[p])
        return;
    ks->done[p] = 1;
    ki->remaining--;
    if (atomic_load_explicit(&ks->next[p], memory_order_relaxed) < ks->end[p])
        atomic_store_explicit(&ks->next[p], ks->end[p], memory_order_relaxed);
    pause_partition(ks, p); /* stop fetching what comes after the end */
}

static void kafka_release(op_input_t *in, op_batch_t *batch)
{
    kafka_input_t *ki = (kafka_input_t *)in;
    kafka_source_t *ks = ki->ks;
    /* Past a counted loss first: the records after it store larger offsets. */
    for (size_t i = 0; i < ki->nlosses; i++)
        rd_kafka_offset_store(ks->rkt, ki->losses[i].partition, ki->losses[i].to - 1);
    ki->nlosses = 0;
    size_t n = ki->nheld;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = ki->held[i];
        /* The last message of each run of one partition: store its offset
         * for the next auto-commit (librdkafka commits offset + 1). */
        if (i + 1 == n || ki->held[i + 1]->partition != m->partition)
            rd_kafka_offset_store(m->rkt, m->partition, m->offset);
        rd_kafka_message_destroy(m);
    }
    ki->nheld = 0;
    ki->handed = 0;
    if (batch) {
        batch->n = 0;
        batch->nlosses = 0;
    }
}

static void input_event(kafka_input_t *ki, const rd_kafka_message_t *m)
{
    kafka_source_t *ks = ki->ks;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (m->partition < 0 || m->partition >= OP_SOURCE_MAX_PARTITIONS)
            return;
        atomic_store_explicit(&ks->next[m->partition], m->offset, memory_order_relaxed);
        /* The broker's high watermark never goes back, so EOF here means
         * the end seen at start has been reached. */
        if (ks->once && m->partition < ks->npartitions)
            finish_partition(ki, m->partition);
        return;
    }
    log_limited(&ki->log, "%s [%d]: %s", m->rkt ? rd_kafka_topic_name(m->rkt) : "-",
                (int)m->partition, rd_kafka_message_errstr(m));
}

/* The record at offset got of partition p follows expected (>= 0) with a
 * gap. Returns 1 if the gap is a loss, with [expected, *to) lost: the
 * broker's log now starts past expected. librdkafka's cached log start is
 * the one of the fetch that brought the record; only if it is unknown is
 * the broker asked (a round trip on this worker, once per gap). */
static int gap_is_loss(kafka_input_t *ki, int32_t p, int64_t expected, int64_t got, int64_t *to)
{
    kafka_source_t *ks = ki->ks;
    int64_t lo = RD_KAFKA_OFFSET_INVALID, hi = RD_KAFKA_OFFSET_INVALID;
    rd_kafka_get_watermark_offsets(ks->rk, ks->topic, p, &lo, &hi);
    if (lo < 0) {
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(ks->rk, ks->topic, p, &lo, &hi, META_TIMEOUT_MS);
        if (e) {
            log_limited(&ki->log,
                        "%s [%d]: offsets %lld..%lld skipped; cannot tell whether they were "
                        "deleted (log start: %s)",
                        ks->topic, (int)p, (long long)expected, (long long)got - 1,
                        rd_kafka_err2str(e));
            return 0;
        }
    }
    if (lo <= expected)
        return 0; /* transaction markers or compaction: nothing was deleted */
    *to = lo < got ? lo : got;
    return 1;
}

/* A loss of [from, to) in partition p: one line, and either counted with
 * the batch or, with --on-loss stop, the end of reading p. Returns 0 to go
 * on with the record, -1 if p is stopped. */
static int note_loss(kafka_input_t *ki, int32_t p, int64_t from, int64_t to)
{
    kafka_source_t *ks = ki->ks;
    fprintf(stderr,
            "orderpulse: kafka: %s [%d]: %lld records at offsets %lld..%lld were deleted by the "
            "broker before they were read (log start %lld); %s\n",
            ks->topic, (int)p, (long long)(to - from), (long long)from, (long long)to - 1,
            (long long)to,
            ks->on_loss_stop ? "stopping (--on-loss stop): they are not counted"
                             : "counted in lost_records");
    if (ks->on_loss_stop) {
        ks->stopped[p] = 1;
        atomic_store_explicit(&ks->failed, 1, memory_order_release);
        pause_partition(ks, p);
        return -1;
    }
    ki->losses[ki->nlosses++] = (op_loss_t){.partition = p, .from = from, .to = to};
    return 0;
}

/* Takes what the queue holds (up to batch_max) without waiting for more;
 * only an empty queue is waited on, up to timeout_ms, for its first op. */
static ssize_t take(kafka_input_t *ki, int timeout_ms)
{
    size_t max = ki->ks->batch_max;
    ssize_t got = rd_kafka_consume_batch_queue(ki->q, 0, ki->raw, max);
    if (got != 0 || timeout_ms <= 0)
        return got;
    rd_kafka_message_t *m = rd_kafka_consume_queue(ki->q, timeout_ms);
    if (!m)
        return 0;
    ki->raw[0] = m;
    got = max > 1 ? rd_kafka_consume_batch_queue(ki->q, 0, ki->raw + 1, max - 1) : 0;
    return got < 0 ? 1 : got + 1;
}

static int kafka_next(op_input_t *in, op_batch_t *batch, int timeout_ms)
{
    kafka_input_t *ki = (kafka_input_t *)in;
    kafka_source_t *ks = ki->ks;

    if (ki->handed) /* the arrays are reused: the previous batch ends here */
        kafka_release(in, NULL);
    batch->recs = ki->recs;
    batch->n = 0;
    batch->priv = ki->held;
    batch->losses = ki->losses;
    batch->nlosses = ki->nlosses;
    if (ki->nlosses) { /* noticed at open (assign_once): a batch of their own */
        ki->handed = 1;
        return 0;
    }
    if (ks->once && ki->remaining == 0)
        return OP_INPUT_EOF;

    ssize_t got = take(ki, timeout_ms);
    if (got < 0) {
        int e = errno ? errno : EIO;
        log_limited(&ki->log, "consume: %s", strerror(e));
        return -e;
    }
    size_t n = 0;
    int32_t run = -1;    /* the partition of the current run of messages */
    int64_t expect = -1; /* its next offset; stored to next[run] when the run ends */
    for (ssize_t i = 0; i < got; i++) {
        rd_kafka_message_t *m = ki->raw[i];
        int32_t p = m->partition;
        if (m->err || p < 0 || p >= OP_SOURCE_MAX_PARTITIONS || p != run) {
            /* Once per run, not per message: next[] of neighbouring
             * partitions belongs to other workers (shared cache lines). */
            if (run >= 0 && expect >= 0)
                atomic_store_explicit(&ks->next[run], expect, memory_order_relaxed);
            run = -1;
            if (m->err || p < 0 || p >= OP_SOURCE_MAX_PARTITIONS) {
                if (m->err)
                    input_event(ki, m);
                rd_kafka_message_destroy(m);
                continue;
            }
            run = p;
            expect = atomic_load_explicit(&ks->next[p], memory_order_relaxed);
        }
        if (atomic_load_explicit(&ks->held[p], memory_order_relaxed) ||
            m->offset < atomic_load_explicit(&ks->start[p], memory_order_relaxed)) {
            rd_kafka_message_destroy(m); /* not claimed yet, or fetched before the seek */
            continue;
        }
        /* Within an assignment offsets only grow; one below the next
         * expected is a delivery of a record already handed out (or an
         * assignment this batch overtook). Not expected to happen: said,
         * so that a double count has its cause in the log. */
        if (expect >= 0 && m->offset < expect)
            log_limited(&ki->log, "%s [%d]: offset %lld delivered after %lld", ks->topic, (int)p,
                        (long long)m->offset, (long long)expect - 1);
        int64_t to;
        if (ks->stopped[p] || (ks->once && ks->done[p]) ||
            (expect >= 0 && m->offset > expect && gap_is_loss(ki, p, expect, m->offset, &to) &&
             note_loss(ki, p, expect, to) < 0)) {
            rd_kafka_message_destroy(m);
            continue;
        }
        expect = m->offset + 1;
        if (ks->once) {
            if (m->offset >= ks->end[p]) { /* after the end seen at start */
                finish_partition(ki, p);
                rd_kafka_message_destroy(m);
                continue;
            }
            if (m->offset + 1 >= ks->end[p])
                finish_partition(ki, p);
        }
        op_record_t *r = &ki->recs[n];
        r->buf = m->payload;
        r->len = m->len;
        r->partition = p;
        r->offset = m->offset;
        ki->held[n++] = m;
    }
    if (run >= 0 && expect >= 0)
        atomic_store_explicit(&ks->next[run], expect, memory_order_relaxed);
    ki->nheld = n;
    ki->handed = n || ki->nlosses;
    batch->n = n;
    batch->nlosses = ki->nlosses;
    if (!ki->handed && ks->once && ki->remaining == 0)
        return OP_INPUT_EOF;
    return (int)n;
}

static op_input_t *kafka_input(op_source_t *src, int i)
{
    kafka_source_t *ks = (kafka_source_t *)src;
    if (i < 0 || i >= ks->nworkers)
        return NULL;
    return &ks->inputs[i].base;
}

/* Any thread, no allocation. High watermarks are librdkafka's cached ones
 * (updated on every fetch); before the first fetch of a --once run, the end
 * seen at start. A partition whose position is not known yet (group start
 * from a committed offset, before the first message or EOF) has no lag. */
static int kafka_partitions(op_source_t *src, op_source_part_t *out, int max)
{
    kafka_source_t *ks = (kafka_source_t *)src;
    int n = 0;
    for (int32_t p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++) {
        if (!atomic_load_explicit(&ks->owned[p], memory_order_relaxed))
            continue;
        int64_t pos = atomic_load_explicit(&ks->next[p], memory_order_relaxed);
        int64_t lo = RD_KAFKA_OFFSET_INVALID, hi = RD_KAFKA_OFFSET_INVALID;
        rd_kafka_get_watermark_offsets(ks->rk, ks->topic, p, &lo, &hi);
        if (hi < 0 && ks->once && p < ks->npartitions)
            hi = ks->end[p];
        if (n < max)
            out[n] = (op_source_part_t){
                .partition = p,
                .next_offset = pos >= 0 ? pos : -1,
                .end_offset = hi >= 0 ? hi : -1,
                .lag = hi >= 0 && pos >= 0 && hi > pos ? hi - pos : 0,
            };
        n++;
    }
    return n < max ? n : max;
}

static int64_t kafka_lag(op_source_t *src)
{
    op_source_part_t parts[OP_SOURCE_MAX_PARTITIONS];
    int n = kafka_partitions(src, parts, OP_SOURCE_MAX_PARTITIONS);
    int64_t lag = 0;
    for (int i = 0; i < n; i++)
        lag += parts[i].lag;
    return lag;
}

static int kafka_failed(op_source_t *src)
{
    kafka_source_t *ks = (kafka_source_t *)src;
    return atomic_load_explicit(&ks->failed, memory_order_acquire) ? -EPIPE : 0;
}

static void kafka_close(op_source_t *src)
{
    kafka_source_t *ks = (kafka_source_t *)src;
    if (ks->poller_started) {
        atomic_store_explicit(&ks->stop, 1, memory_order_release);
        /* Wake it out of rd_kafka_consumer_poll now, not at its timeout. */
        rd_kafka_queue_t *cq = rd_kafka_queue_get_consumer(ks->rk);
        if (cq) {
            rd_kafka_queue_yield(cq);
            rd_kafka_queue_destroy(cq);
        }
        pthread_join(ks->poller, NULL);
    }
    if (ks->inputs)
        for (int i = 0; i < ks->nworkers; i++)
            if (ks->inputs[i].handed) /* a worker stopped without releasing */
                kafka_release(&ks->inputs[i].base, NULL);
    if (ks->rk) {
        /* Group mode: revokes through rebalance_cb, which un-forwards; then
         * commits the stored offsets and leaves the group. */
        rd_kafka_consumer_close(ks->rk);
        for (int32_t p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++)
            unforward_partition(ks, p);
        if (ks->inputs)
            for (int i = 0; i < ks->nworkers; i++)
                if (ks->inputs[i].q)
                    rd_kafka_queue_destroy(ks->inputs[i].q);
        if (ks->rkt)
            rd_kafka_topic_destroy(ks->rkt);
        rd_kafka_destroy(ks->rk);
    }
    if (ks->inputs) {
        for (int i = 0; i < ks->nworkers; i++) {
            free(ks->inputs[i].raw);
            free(ks->inputs[i].held);
            free(ks->inputs[i].recs);
            free(ks->inputs[i].losses);
        }
        free(ks->inputs);
    }
    free(ks->end);
    free(ks->done);
    free(ks->topic);
    free(ks->group);
    free(ks);
}

static const op_source_ops_t kafka_ops = {
    .input = kafka_input,
    .next = kafka_next,
    .release = kafka_release,
    .lag = kafka_lag,
    .close = kafka_close,
    .partitions = kafka_partitions,
    .failed = kafka_failed,
};

/* --- open ----------------------------------------------------------------- */

static int set_conf(rd_kafka_conf_t *kc, const char *name, const char *value, char *err,
                    size_t errlen)
{
    char errstr[256];
    if (rd_kafka_conf_set(kc, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return op_source_error(err, errlen, -EINVAL, "source: kafka %s=%s: %s", name, value,
                               errstr);
    return 0;
}

static int make_consumer(kafka_source_t *ks, const op_source_conf_t *conf, char *err, size_t errlen)
{
    /* queued.min.messages counts a worker's whole queue (forwarded queues
     * report their destination's length): ~100 batches of read-ahead per
     * worker, so that a worker never waits for a fetch round trip, while the
     * 64 MB cap bounds the memory per worker. fetch.wait.max.ms is low so
     * that a trickle of orders is not held up by the broker.
     * socket.timeout.ms: a request queued for a connection that never comes
     * up waits this long before librdkafka gives up on it and retries; at
     * its 60 s default, a group coordinator lost in a burst of errors held
     * the rejoin -- and so all consumption -- for a minute (make chaos: the
     * dev broker rolled the unread records out meanwhile). No request of
     * this consumer should need more than a few seconds. */
    const char *settings[][2] = {
        {"bootstrap.servers", conf->brokers},  {"group.id", ks->group},
        {"client.id", "orderpulse"},           {"enable.auto.commit", "true"},
        {"enable.auto.offset.store", "false"}, {"auto.offset.reset", "earliest"},
        {"enable.partition.eof", "true"}, /* --once's end, and op_source_lag */
        {"queued.min.messages", "100000"},     {"queued.max.messages.kbytes", "65536"},
        {"fetch.wait.max.ms", "10"},           {"fetch.message.max.bytes", "4194304"},
        {"socket.timeout.ms", "10000"},
    };
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    if (!kc)
        return op_source_error(err, errlen, -ENOMEM, "source: out of memory");
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
        int rc = set_conf(kc, settings[i][0], settings[i][1], err, errlen);
        if (rc < 0) {
            rd_kafka_conf_destroy(kc);
            return rc;
        }
    }
    int rc = op_kafkaconf_apply(kc, conf->kafka_config, err, errlen);
    if (rc < 0) {
        rd_kafka_conf_destroy(kc);
        return rc;
    }
    rd_kafka_conf_set_opaque(kc, ks);
    rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
    rd_kafka_conf_set_error_cb(kc, error_cb);

    char errstr[256];
    ks->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof(errstr));
    if (!ks->rk) {
        rd_kafka_conf_destroy(kc);
        return op_source_error(err, errlen, -EINVAL, "source: kafka consumer: %s", errstr);
    }
    rd_kafka_poll_set_consumer(ks->rk); /* one queue for the poll thread to serve */
    return 0;
}

static int make_inputs(kafka_source_t *ks, char *err, size_t errlen)
{
    size_t bytes = ((size_t)ks->nworkers * sizeof(kafka_input_t) + 63) & ~(size_t)63;
    ks->inputs = aligned_alloc(64, bytes);
    if (!ks->inputs)
        return op_source_error(err, errlen, -ENOMEM, "source: out of memory");
    memset(ks->inputs, 0, bytes);
    for (int i = 0; i < ks->nworkers; i++) {
        kafka_input_t *ki = &ks->inputs[i];
        ki->base.src = &ks->base;
        ki->ks = ks;
        ki->q = rd_kafka_queue_new(ks->rk);
        ki->raw = calloc(ks->batch_max, sizeof(*ki->raw));
        ki->held = calloc(ks->batch_max, sizeof(*ki->held));
        ki->recs = calloc(ks->batch_max, sizeof(*ki->recs));
        /* One per message of a batch, or one per partition at open. */
        ki->losses = calloc(ks->batch_max + OP_SOURCE_MAX_PARTITIONS, sizeof(*ki->losses));
        if (!ki->q || !ki->raw || !ki->held || !ki->recs || !ki->losses)
            return op_source_error(err, errlen, -ENOMEM, "source: out of memory");
    }
    return 0;
}

/* The topic's partition count, from the brokers' metadata. */
static int read_partitions(kafka_source_t *ks, const char *brokers, char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(ks->rk, 0, ks->rkt, &md, META_TIMEOUT_MS);
    if (e)
        return op_source_error(err, errlen, -EIO, "source: metadata of topic %s from %s: %s",
                               ks->topic, brokers, rd_kafka_err2str(e));
    int rc = 0;
    if (md->topic_cnt != 1 || md->topics[0].err) {
        rc = op_source_error(err, errlen, -ENOENT, "source: topic %s on %s: %s", ks->topic, brokers,
                             rd_kafka_err2str(md->topic_cnt
                                                  ? md->topics[0].err
                                                  : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART));
    } else if (md->topics[0].partition_cnt > OP_SOURCE_MAX_PARTITIONS) {
        rc = op_source_error(err, errlen, -E2BIG,
                             "source: topic %s has %d partitions, at most %d are supported",
                             ks->topic, md->topics[0].partition_cnt, OP_SOURCE_MAX_PARTITIONS);
    } else if (md->topics[0].partition_cnt == 0) {
        rc = op_source_error(err, errlen, -ENOENT, "source: topic %s has no partitions", ks->topic);
    } else {
        ks->npartitions = md->topics[0].partition_cnt;
        for (int i = 0; i < md->topics[0].partition_cnt; i++) {
            int32_t id = md->topics[0].partitions[i].id;
            if (id < 0 || id >= ks->npartitions)
                rc = op_source_error(err, errlen, -EINVAL,
                                     "source: topic %s: unexpected partition id %d", ks->topic,
                                     (int)id);
        }
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

/* The log start (what = RD_KAFKA_OFFSET_BEGINNING) or end (OFFSET_END) of
 * every partition, in one ListOffsets request (the timestamps -2 and -1 of
 * rd_kafka_offsets_for_times are Kafka's earliest and latest). */
static int list_offsets(kafka_source_t *ks, int64_t what, int64_t *out, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(ks->npartitions);
    if (!l)
        return op_source_error(err, errlen, -ENOMEM, "source: out of memory");
    for (int32_t p = 0; p < ks->npartitions; p++)
        rd_kafka_topic_partition_list_add(l, ks->topic, p)->offset = what;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(ks->rk, l, META_TIMEOUT_MS);
    int rc = 0;
    for (int i = 0; i < l->cnt && rc == 0; i++) {
        const rd_kafka_topic_partition_t *t = &l->elems[i];
        if (e || t->err || t->offset < 0)
            rc = op_source_error(err, errlen, -EIO, "source: %s offset of %s [%d]: %s",
                                 what == RD_KAFKA_OFFSET_END ? "end" : "start", ks->topic,
                                 (int)t->partition, rd_kafka_err2str(e ? e : t->err));
        else
            out[t->partition] = t->offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* --once: the end of every partition, and a direct assignment of those that
 * have something to read, each at a concrete offset: the start_offset
 * hook's, else the group's committed offset, else the log start. A start
 * below the log start is a loss noticed here: it is handed to the worker of
 * the partition with its first batch. */
static int assign_once(kafka_source_t *ks, char *err, size_t errlen)
{
    int np = ks->npartitions, rc;
    ks->end = calloc((size_t)np, sizeof(*ks->end));
    ks->done = calloc((size_t)np, sizeof(*ks->done));
    int64_t *lo = calloc((size_t)np, sizeof(*lo));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    if (!ks->end || !ks->done || !lo || !l) {
        rc = op_source_error(err, errlen, -ENOMEM, "source: out of memory");
        goto out;
    }
    if ((rc = list_offsets(ks, RD_KAFKA_OFFSET_END, ks->end, err, errlen)) < 0 ||
        (rc = list_offsets(ks, RD_KAFKA_OFFSET_BEGINNING, lo, err, errlen)) < 0)
        goto out;
    for (int32_t p = 0; p < np; p++) {
        int64_t off = RD_KAFKA_OFFSET_INVALID; /* the committed offset, else the earliest */
        if (ks->start_offset && ks->start_offset(ks->start_opaque, p, &off) < 0) {
            rc = op_source_error(err, errlen, -EIO,
                                 "source: %s [%d]: cannot claim the partition in Redis", ks->topic,
                                 (int)p);
            goto out;
        }
        rd_kafka_topic_partition_list_add(l, ks->topic, p)->offset = off;
    }
    rd_kafka_resp_err_t ce = resolve_committed(ks, l);
    if (ce) {
        rc = op_source_error(err, errlen, -EIO, "source: committed offsets of group %s: %s",
                             ks->group, rd_kafka_err2str(ce));
        goto out;
    }
    rd_kafka_topic_partition_list_t *todo = l;
    l = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; l && i < todo->cnt; i++) {
        int32_t p = todo->elems[i].partition;
        int64_t off = todo->elems[i].offset >= 0 ? todo->elems[i].offset : lo[p];
        int lost = off < lo[p];
        if (lost) { /* the broker deleted [off, lo) before we read it */
            if (note_loss(&ks->inputs[p % ks->nworkers], p, off, lo[p]) < 0) {
                ks->done[p] = 1; /* --on-loss stop */
                continue;
            }
            off = lo[p];
        }
        /* Nothing to read; after a loss it is read to its end all the same,
         * so that the group's committed offset moves past the gap. */
        if (!lost && off >= ks->end[p]) {
            ks->done[p] = 1;
            continue;
        }
        ks->inputs[p % ks->nworkers].remaining++;
        if (forward_partition(ks, p) < 0) {
            rc = op_source_error(err, errlen, -ENOENT, "source: no queue for %s [%d]", ks->topic,
                                 (int)p);
            break;
        }
        rd_kafka_topic_partition_list_add(l, ks->topic, p)->offset = off;
        atomic_store_explicit(&ks->start[p], off, memory_order_relaxed);
        set_owned(ks, p, off);
    }
    rd_kafka_topic_partition_list_destroy(todo);
    if (!l)
        rc = op_source_error(err, errlen, -ENOMEM, "source: out of memory");
    if (rc < 0)
        goto out;
    rd_kafka_resp_err_t e = rd_kafka_assign(ks->rk, l);
    if (e)
        rc = op_source_error(err, errlen, -EIO, "source: assign %s: %s", ks->topic,
                             rd_kafka_err2str(e));
out:
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    free(lo);
    return rc;
}

static int subscribe(kafka_source_t *ks, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    if (!l)
        return op_source_error(err, errlen, -ENOMEM, "source: out of memory");
    rd_kafka_topic_partition_list_add(l, ks->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(ks->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return op_source_error(err, errlen, -EIO, "source: subscribe %s: %s", ks->topic,
                               rd_kafka_err2str(e));
    return 0;
}

int op_source_kafka_open(op_source_t **out, const op_source_conf_t *conf, char *err, size_t errlen)
{
    int rc;
    if (!conf->brokers || !*conf->brokers)
        return op_source_error(err, errlen, -EINVAL, "source: no Kafka brokers given");
    if (!conf->topic || !*conf->topic)
        return op_source_error(err, errlen, -EINVAL, "source: no Kafka topic given");

    kafka_source_t *ks = calloc(1, sizeof(*ks));
    if (!ks)
        return op_source_error(err, errlen, -ENOMEM, "source: out of memory");
    ks->base.ops = &kafka_ops;
    atomic_init(&ks->stop, 0);
    for (int p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++) {
        atomic_init(&ks->owned[p], 0);
        atomic_init(&ks->next[p], -1);
        atomic_init(&ks->held[p], 0);
        atomic_init(&ks->start[p], 0);
    }
    atomic_init(&ks->failed, 0);
    ks->nworkers = conf->nworkers;
    ks->once = conf->once;
    ks->on_loss_stop = conf->on_loss_stop;
    ks->batch_max = conf->batch_max;
    ks->start_offset = conf->start_offset;
    ks->on_revoke = conf->on_revoke;
    ks->on_assigned = conf->on_assigned;
    ks->start_opaque = conf->start_opaque;
    ks->topic = strdup(conf->topic);
    ks->group = strdup(conf->group && *conf->group ? conf->group : "orderpulse");
    if (!ks->topic || !ks->group) {
        rc = op_source_error(err, errlen, -ENOMEM, "source: out of memory");
        goto fail;
    }
    if ((rc = make_consumer(ks, conf, err, errlen)) < 0)
        goto fail;
    if ((rc = make_inputs(ks, err, errlen)) < 0)
        goto fail;
    if (!(ks->rkt = rd_kafka_topic_new(ks->rk, ks->topic, NULL))) {
        rc = op_source_error(err, errlen, -EINVAL, "source: topic %s: %s", ks->topic,
                             rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    if ((rc = read_partitions(ks, conf->brokers, err, errlen)) < 0)
        goto fail;
    if ((rc = ks->once ? assign_once(ks, err, errlen) : subscribe(ks, err, errlen)) < 0)
        goto fail;
    if ((rc = pthread_create(&ks->poller, NULL, poll_main, ks)) != 0) {
        rc = op_source_error(err, errlen, -rc, "source: poll thread: %s", strerror(rc));
        goto fail;
    }
    pthread_setname_np(ks->poller, "op-kafka-poll");
    ks->poller_started = 1;
    *out = &ks->base;
    return 0;

fail:
    kafka_close(&ks->base);
    return rc;
}
