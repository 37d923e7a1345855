/* stress_sync.c — op_merger_sync's promise, the one a Kafka revocation
 * relies on: when it returns 0, every record a worker took before the call
 * has been merged and committed to Redis.
 *
 * Two workers read endless in-memory inputs (one partition each, every
 * record counted as it is handed out), the merger ticks every 2 ms and the
 * sink commits to a real redis-server. A "rebalance" thread does what
 * main.c's on_revoke does, again and again: hold the workers, sync; then,
 * with the workers still held, each partition's merged position
 * (claims.consumed) and Redis's (claims.committed) must equal what its input
 * handed out. A sync served by a tick collected before the request came in
 * fails this: the records a worker took between that tick's hand-over and
 * the request are still in its shard, and a claim made now would resume
 * before them (they would be counted twice).
 *
 * Then Redis goes away, and the promise left is the weaker one a failed
 * sync makes: what the workers took has been merged (a claim resumes after
 * it), only not committed. One worker is slowed down right after taking a
 * batch -- it hands over 1.5 s late, past the sync's 1 s of grace while
 * Redis fails -- and the sync must still not return before that batch is
 * merged.
 *
 * A plain program (Criterion cannot start under TSan). Exit status 0 = pass.
 */
#include "tests/stress/check.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu.h>

#include "engine/claims.h"
#include "engine/intern.h"
#include "engine/io/redis.h"
#include "engine/io/redis_sink.h"
#include "engine/io/source_internal.h"
#include "engine/merger.h"
#include "engine/worker.h"
#include "tests/unit/redisserver.h"

#define WORKERS 2
#define BATCH   64
#define LINES   1024
#define SYNCS   300

static char lines[LINES][200];
static size_t line_len[LINES];

/* An endless input of one partition. next_offset belongs to the worker;
 * handed (__atomic) is what it has handed out, read by the checker. */
typedef struct mem_input {
    op_input_t base;
    int32_t partition;
    int64_t next_offset;
    int64_t handed;
    int slow_release_ms; /* __atomic: the next release sleeps this long (test thread sets) */
    op_record_t recs[BATCH];
} mem_input_t;

typedef struct mem_source {
    op_source_t base;
    mem_input_t in[WORKERS];
} mem_source_t;

static op_input_t *mem_input(op_source_t *src, int i)
{
    return &((mem_source_t *)src)->in[i].base;
}

static int mem_next(op_input_t *in, op_batch_t *batch, int timeout_ms)
{
    (void)timeout_ms;
    mem_input_t *mi = (mem_input_t *)in;
    for (int i = 0; i < BATCH; i++) {
        int64_t off = mi->next_offset++;
        mi->recs[i] = (op_record_t){.buf = lines[off % LINES],
                                    .len = line_len[off % LINES],
                                    .partition = mi->partition,
                                    .offset = off};
    }
    __atomic_store_n(&mi->handed, mi->next_offset, __ATOMIC_RELEASE);
    *batch = (op_batch_t){.recs = mi->recs, .n = BATCH};
    return BATCH;
}

static void mem_release(op_input_t *in, op_batch_t *batch)
{
    mem_input_t *mi = (mem_input_t *)in;
    int slow = __atomic_exchange_n(&mi->slow_release_ms, 0, __ATOMIC_ACQ_REL);
    if (slow)
        usleep((useconds_t)slow * 1000); /* the worker holds the batch's records meanwhile */
    batch->n = 0;
}

static int64_t mem_lag(op_source_t *src)
{
    (void)src;
    return 0;
}

static void mem_close(op_source_t *src)
{
    (void)src;
}

static const op_source_ops_t mem_ops = {
    .input = mem_input,
    .next = mem_next,
    .release = mem_release,
    .lag = mem_lag,
    .close = mem_close,
};

static op_merger_t *live; /* __atomic: the sink rings it once it is set */

static void wake(void *arg)
{
    (void)arg;
    op_merger_t *m = __atomic_load_n(&live, __ATOMIC_ACQUIRE);
    if (m)
        op_merger_wake(m);
}

int main(void)
{
    rcu_register_thread();
    redisserver_t server;
    REQUIRE(redisserver_start(&server) == 0, "redis-server did not start");
    for (int i = 0; i < LINES; i++)
        line_len[i] =
            (size_t)snprintf(lines[i], sizeof(lines[i]),
                             "{\"userName\":\"user%d\",\"gender\":\"%s\",\"goodsType\":\"cat%d\","
                             "\"brand\":\"brand%d\",\"num\":1,\"totalPrice\":1.00,"
                             "\"orderTimeSeries\":1700000000000}",
                             i % 300, i % 2 ? "F" : "M", i % 7, i % 31);

    char err[512];
    op_intern_t *dict;
    REQUIRE(op_intern_create(&dict) == 0);
    op_claims_t claims;
    op_claims_init(&claims);
    op_redis_conf_t rc = {.host = "127.0.0.1", .port = server.port, .timeout_ms = 2000};
    op_merger_t *merger = NULL;
    op_redis_sink_conf_t sc = {.redis = rc,
                               .writer = "w1",
                               .source = "mem",
                               .dict = dict,
                               .claims = &claims,
                               .retention_ms = 86400000,
                               .tail_ms = 20,
                               .view_budget = 50,
                               .min_compact_bytes = 64 << 10,
                               .wake = wake};
    op_redis_sink_t *sink;
    REQUIRE(op_redis_sink_create(&sink, &sc, err, sizeof(err)) == 0, "%s", err);
    op_merger_conf_t mc = {.nworkers = WORKERS,
                           .tick_ms = 2,
                           .lateness_ms = 5000,
                           .retention_ms = 86400000,
                           .idle_ms = 10000,
                           .dict = dict,
                           .sink = sink,
                           .pending_max_users = 1000000};
    REQUIRE(op_merger_create(&merger, &mc) == 0);
    __atomic_store_n(&live, merger, __ATOMIC_RELEASE);
    REQUIRE(op_redis_sink_load(sink, op_merger_state(merger), err, sizeof(err)) == 0, "%s", err);

    /* Each partition claimed, as a Kafka assignment would. */
    op_redis_t *claimer;
    REQUIRE(op_redis_create(&claimer, &rc) == 0);
    op_redis_set_generation(claimer, op_redis_sink_generation(sink));
    mem_source_t src = {.base = {.ops = &mem_ops}};
    for (int i = 0; i < WORKERS; i++) {
        char field[64];
        op_redis_sink_field("mem", i, field, sizeof(field));
        const char *fields[] = {field};
        op_redis_part_t part;
        REQUIRE(op_redis_claim(claimer, "w1", 1, fields, &part, err, sizeof(err)) == 0, "%s", err);
        op_claims_set(&claims.epoch[i], part.epoch);
        op_claims_set(&claims.committed[i], part.next_offset);
        src.in[i] = (mem_input_t){.base = {.src = &src.base}, .partition = i};
    }

    op_worker_t *w[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        op_worker_conf_t wc = {.id = i,
                               .cpu = -1,
                               .input = &src.in[i].base,
                               .merger = merger,
                               .claims = &claims,
                               .dict = dict,
                               .lateness_ms = 5000};
        REQUIRE(op_worker_create(&w[i], &wc) == 0);
        REQUIRE(op_worker_start(w[i]) == 0);
    }
    REQUIRE(op_merger_start(merger) == 0);
    REQUIRE(op_redis_sink_start(sink) == 0);

    int served = 0, short_merged = 0, short_committed = 0;
    uint64_t x = 99;
    for (int round = 0; round < SYNCS; round++) {
        op_merger_set_rebalancing(merger, 1);
        if (op_merger_sync(merger, 10000) == 0) {
            served++;
            for (int p = 0; p < WORKERS; p++) {
                int64_t handed = __atomic_load_n(&src.in[p].handed, __ATOMIC_ACQUIRE);
                int64_t consumed = op_claims_get(&claims.consumed[p]);
                int64_t committed = op_claims_get(&claims.committed[p]);
                if (!handed)
                    handed = -1; /* nothing read: nothing merged */
                if (consumed != handed && short_merged++ < 5)
                    fprintf(stderr, "sync %d: partition %d: handed out up to %lld, merged %lld\n",
                            round, p, (long long)handed, (long long)consumed);
                if (committed < handed && short_committed++ < 5)
                    fprintf(stderr, "sync %d: partition %d: handed out up to %lld, in Redis %lld\n",
                            round, p, (long long)handed, (long long)committed);
            }
        }
        op_merger_set_rebalancing(merger, 0);
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        /* Long enough for the workers to notice (they look every 20 ms while
         * held), at a random phase of the 2 ms ticks. */
        usleep(20000 + (useconds_t)((x >> 33) % 20000));
    }
    CHECK_EQ(short_merged, 0, "syncs that returned before a worker's records were merged");
    CHECK_EQ(short_committed, 0, "syncs that returned before a worker's records were in Redis");
    CHECK_GT(served, SYNCS / 2, "syncs served: %d of %d", served, SYNCS);

    /* Redis gone: a sync fails, but only once what was taken is merged. */
    redisserver_stop(&server);
    for (int i = 0; i < 500 && op_merger_redis_ok(merger); i++)
        usleep(10000);
    REQUIRE(!op_merger_redis_ok(merger), "the merger did not notice that Redis is gone");
    for (int round = 0; round < 3; round++) {
        __atomic_store_n(&src.in[0].slow_release_ms, 1500, __ATOMIC_RELEASE);
        usleep(100000); /* worker 0 takes a batch and sleeps in its release */
        op_merger_set_rebalancing(merger, 1);
        int got = op_merger_sync(merger, 10000);
        CHECK(got == -EIO, "sync with Redis gone: %d (%s)", got, strerror(-got));
        for (int p = 0; p < WORKERS; p++) {
            int64_t handed = __atomic_load_n(&src.in[p].handed, __ATOMIC_ACQUIRE);
            int64_t consumed = op_claims_get(&claims.consumed[p]);
            CHECK_EQ(consumed, handed,
                     "Redis gone, round %d: partition %d: handed out up to %lld, merged %lld",
                     round, p, (long long)handed, (long long)consumed);
        }
        op_merger_set_rebalancing(merger, 0);
    }
    op_merger_stop(merger);
    for (int i = 0; i < WORKERS; i++)
        op_worker_stop(w[i]);
    for (int i = 0; i < WORKERS; i++)
        op_worker_join(w[i]);
    op_merger_join(merger);
    op_redis_sink_stop(sink);
    fprintf(stderr, "stress_sync: %d of %d syncs served; %lld + %lld records\n", served, SYNCS,
            (long long)src.in[0].next_offset, (long long)src.in[1].next_offset);
    for (int i = 0; i < WORKERS; i++)
        op_worker_destroy(w[i]);
    op_merger_destroy(merger);
    op_redis_sink_destroy(sink);
    op_redis_destroy(claimer);
    op_intern_destroy(dict);
    redisserver_stop(&server);
    rcu_unregister_thread();
    return check_report("stress_sync");
}
