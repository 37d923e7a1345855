/* stress_redis.c — the merger's Redis paths, under TSan and ASan, against a
 * real redis-server.
 *
 * Two engines in one process share one Redis: each has its own file (a
 * source of its own), two workers, a merger ticking every 5 ms and a sink.
 * Meanwhile a chaos thread pauses Redis's writes for longer than the
 * engines' 100 ms command timeout, again and again (every commit may lose
 * its reply, deltas pile up pending), and two "rebalance" threads ask their
 * merger for a sync the whole time (the path a revocation takes). Each
 * engine's commits make the other's BEHIND, so both fold the other's log
 * entries. The chaos thread also drops the readers' marks each time, so
 * one engine's compaction may overtake the other, which then rewinds as
 * main.c does. Checks at the end: Redis's log holds exactly the sum of both
 * files, and each engine's state holds its own file (plus what it folded of
 * the other's before it ended).
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
#include "engine/io/redis_sink.h"
#include "engine/merger.h"
#include "engine/snapshot.h"
#include "engine/source.h"
#include "engine/worker.h"
#include "tests/unit/redisserver.h"

#define ORDERS 250000
#define USERS  3000
#define CHUNKS 4
#define ROUNDS 3

static int64_t total_cents, total_qty; /* over every file of every round */

static char *write_orders(int seed)
{
    char *path = strdup("/tmp/op-test-redis-XXXXXX");
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    uint64_t x = 777 + (uint64_t)seed;
    for (int i = 0; i < ORDERS; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int u = (int)((x >> 33) % USERS);
        int num = 1 + (int)((x >> 20) % 5);
        int64_t cents = 100 + (int64_t)((x >> 40) % 100000);
        total_cents += cents;
        total_qty += num;
        fprintf(f,
                "{\"userName\":\"user%d\",\"gender\":\"%s\",\"goodsType\":\"cat%d\","
                "\"brand\":\"brand%d\",\"num\":%d,\"totalPrice\":%lld.%02lld,"
                "\"orderTimeSeries\":%lld}\n",
                u, u % 2 ? "F" : "M", i % 7, i % 31, num, (long long)(cents / 100),
                (long long)(cents % 100), 1700000000000LL + i * 10LL);
    }
    fclose(f);
    return path;
}

/* One engine: what main.c's run does, minus Kafka and HTTP. */
typedef struct engine {
    const char *name;
    char *path;
    char source[64], writer[32];
    op_claims_t claims;
    op_redis_sink_t *sink;
    op_redis_t *claimer;
    op_merger_t *merger, *live;
    op_source_t *src;
    op_worker_t *w[2];
    pthread_t syncer;
    int stop, syncing, syncs_ok, syncs_failed, rewinds;
} engine_t;

static int port;
static op_intern_t *dict;

static int claim(void *opaque, int32_t p, int64_t *offset)
{
    engine_t *e = opaque;
    char field[128], err[512];
    op_redis_sink_field(e->source, p, field, sizeof(field));
    const char *fields[] = {field};
    op_redis_part_t part;
    for (int i = 0; i < 100; i++) { /* Redis may be paused: try again */
        if (op_redis_claim(e->claimer, e->writer, 1, fields, &part, err, sizeof(err)) == 0) {
            op_claims_set(&e->claims.epoch[p], part.epoch);
            op_claims_set(&e->claims.committed[p], part.next_offset);
            op_claims_reset_lateness(&e->claims, p, part.max_event_ms);
            *offset = part.next_offset;
            return 0;
        }
        usleep(50000);
    }
    fprintf(stderr, "%s: claim: %s\n", e->name, err);
    return -EIO;
}

static void wake(void *arg)
{
    op_merger_t *m = __atomic_load_n((op_merger_t **)arg, __ATOMIC_ACQUIRE);
    if (m)
        op_merger_wake(m);
}

static void *syncer_main(void *arg)
{
    engine_t *e = arg;
    while (!__atomic_load_n(&e->stop, __ATOMIC_ACQUIRE) && op_merger_running(e->merger)) {
        if (op_merger_sync(e->merger, 500) == 0)
            e->syncs_ok++;
        else
            e->syncs_failed++;
        usleep(2000);
    }
    return NULL;
}

/* Builds and starts the engine from what Redis holds: at the start and
 * again after each rewind. */
static void engine_run(engine_t *e)
{
    char err[512];
    e->stop = 0;
    op_claims_init(&e->claims);
    op_redis_conf_t rc = {.host = "127.0.0.1", .port = port, .timeout_ms = 100};
    op_redis_sink_conf_t sc = {.redis = rc,
                               .writer = e->writer,
                               .source = e->source,
                               .dict = dict,
                               .claims = &e->claims,
                               .retention_ms = 86400000,
                               .tail_ms = 20,
                               .view_budget = 50,
                               .min_compact_bytes = 64 << 10,
                               .wake = wake,
                               .wake_arg = &e->live};
    int ret = -1;
    for (int i = 0; i < 100 && ret < 0; i++) /* writes may be paused right now */
        if ((ret = op_redis_sink_create(&e->sink, &sc, err, sizeof(err))) < 0)
            usleep(50000);
    REQUIRE(ret == 0, "%s", err);
    op_merger_conf_t mc = {.nworkers = 2,
                           .tick_ms = 5,
                           .lateness_ms = 5000,
                           .retention_ms = 86400000,
                           .idle_ms = 10000,
                           .once = 1,
                           .dict = dict,
                           .sink = e->sink,
                           .pending_max_users = 1000000};
    REQUIRE(op_merger_create(&e->merger, &mc) == 0);
    ret = -1;
    for (int i = 0; i < 100 && ret < 0; i++)
        if ((ret = op_redis_sink_load(e->sink, op_merger_state(e->merger), err, sizeof(err))) < 0)
            usleep(50000);
    REQUIRE(ret == 0, "%s", err);
    REQUIRE(op_redis_create(&e->claimer, &rc) == 0);
    op_redis_set_generation(e->claimer, op_redis_sink_generation(e->sink));
    op_source_conf_t src = {.file = e->path,
                            .nworkers = 2,
                            .batch_max = 256,
                            .once = 1,
                            .chunks = CHUNKS,
                            .start_offset = claim,
                            .start_opaque = e};
    REQUIRE(op_source_open(&e->src, &src, err, sizeof(err)) == 0, "%s", err);
    op_merger_set_source(e->merger, e->src);
    for (int i = 0; i < 2; i++) {
        op_worker_conf_t wc = {.id = i,
                               .cpu = -1,
                               .input = op_source_input(e->src, i),
                               .merger = e->merger,
                               .claims = &e->claims,
                               .dict = dict,
                               .lateness_ms = 5000};
        REQUIRE(op_worker_create(&e->w[i], &wc) == 0);
        REQUIRE(op_worker_start(e->w[i]) == 0);
    }
    __atomic_store_n(&e->live, e->merger, __ATOMIC_RELEASE);
    REQUIRE(op_merger_start(e->merger) == 0);
    REQUIRE(op_redis_sink_start(e->sink) == 0);
    pthread_create(&e->syncer, NULL, syncer_main, e);
    e->syncing = 1;
}

static void syncer_stop(engine_t *e)
{
    if (!e->syncing)
        return;
    __atomic_store_n(&e->stop, 1, __ATOMIC_RELEASE);
    pthread_join(e->syncer, NULL);
    e->syncing = 0;
}

static void engine_start(engine_t *e, int seed)
{
    e->path = write_orders(seed);
    snprintf(e->source, sizeof(e->source), "file:stress-%d", seed);
    snprintf(e->writer, sizeof(e->writer), "w%d", seed);
    engine_run(e);
}

/* What main.c's teardown does, in its order. */
static void engine_teardown(engine_t *e)
{
    syncer_stop(e);
    op_merger_stop(e->merger);
    for (int i = 0; i < 2; i++)
        op_worker_stop(e->w[i]);
    for (int i = 0; i < 2; i++)
        op_worker_join(e->w[i]);
    op_merger_join(e->merger);
    op_redis_sink_stop(e->sink);
    __atomic_store_n(&e->live, NULL, __ATOMIC_RELEASE);
    op_source_close(e->src);
    for (int i = 0; i < 2; i++)
        op_worker_destroy(e->w[i]);
    op_merger_destroy(e->merger);
    op_redis_sink_destroy(e->sink);
    op_redis_destroy(e->claimer);
}

/* Runs to the end of the file. A rewind is a legitimate answer when the
 * machine is slow enough for the other engine's compaction to overtake
 * this one's reading (its reader mark ages past READER_TTL_MS while its
 * commits retry): main.c then starts again from what Redis holds, and so
 * does this. A stop is a failure. The state stays up for check_engine. */
static void engine_finish(engine_t *e)
{
    for (;;) {
        op_merger_join(e->merger);
        int verdict = op_merger_verdict(e->merger);
        if (verdict != OP_MERGER_REWIND)
            break;
        e->rewinds++;
        REQUIRE(e->rewinds <= 20, "%s: %d rewinds", e->name, e->rewinds);
        engine_teardown(e);
        engine_run(e);
    }
    CHECK_EQ(op_merger_verdict(e->merger), 0, "%s asked for a stop", e->name);
    syncer_stop(e);
}

static void engine_destroy(engine_t *e)
{
    engine_teardown(e);
    unlink(e->path);
    free(e->path);
}

typedef struct chaos {
    pthread_t thread;
    int stop, pauses;
} chaos_t;

static void *chaos_main(void *arg)
{
    chaos_t *c = arg;
    struct timeval tv = {2, 0};
    redisContext *r = redisConnectWithTimeout("127.0.0.1", port, tv);
    while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
        redisReply *rep = redisCommand(r, "CLIENT PAUSE 150 WRITE");
        freeReplyObject(rep);
        c->pauses++;
        /* Every reader's mark goes, as if each had been silent for
         * READER_TTL_MS: a compaction before the next mark may overtake the
         * other engine, which must rewind (what a slow machine does in
         * earnest; rare on a quick one). */
        freeReplyObject(redisCommand(r, "DEL {op}:readers"));
        usleep(200000);
    }
    redisFree(r);
    return NULL;
}

static long long member(const char *doc, const char *key)
{
    const char *p = strstr(doc, key);
    return p ? atoll(p + strlen(key)) : -1;
}

/* The figures of a freshly loaded state: what Redis's log holds. */
static void check_redis(void)
{
    char err[512];
    op_redis_conf_t rc = {.host = "127.0.0.1", .port = port, .timeout_ms = 2000};
    op_redis_sink_conf_t sc = {.redis = rc, .writer = "check", .source = "none", .dict = dict};
    op_claims_t claims;
    op_claims_init(&claims);
    sc.claims = &claims;
    op_redis_sink_t *s;
    REQUIRE(op_redis_sink_create(&s, &sc, err, sizeof(err)) == 0, "%s", err);
    op_state_t st;
    op_state_init(&st, dict);
    REQUIRE(op_redis_sink_load(s, &st, err, sizeof(err)) == 0, "%s", err);
    CHECK_EQ(st.totals.orders, 2 * ROUNDS * ORDERS, "Redis's log");
    CHECK_EQ(st.totals.quantity, total_qty, "Redis's log");
    CHECK_EQ(st.totals.amount, total_cents, "Redis's log");
    op_state_dispose(&st);
    op_redis_sink_destroy(s);
}

static void check_engine(engine_t *e, int round)
{
    const op_snapshot_t *s = op_snapshot_acquire(op_merger_pub(e->merger));
    REQUIRE(s != NULL);
    char *doc = strndup(s->res[OP_RES_SNAPSHOT].buf, s->res[OP_RES_SNAPSHOT].len);
    op_snapshot_release(s);
    long long orders = member(doc, "\"totals\":{\"orders\":");
    /* Everything before this round, its own file, and whatever of the
     * other's it folded before it ended. */
    CHECK_MSG(orders >= (2 * round + 1) * ORDERS && orders <= 2 * (round + 1) * ORDERS,
              "%s's state: %lld orders", e->name, orders);
    free(doc);
}

int main(void)
{
    rcu_register_thread();
    redisserver_t server;
    REQUIRE(redisserver_start(&server) == 0, "redis-server did not start");
    port = server.port;
    REQUIRE(op_intern_create(&dict) == 0);
    chaos_t chaos = {0};
    for (int round = 0; round < ROUNDS; round++) {
        engine_t a = {.name = "engine a"}, b = {.name = "engine b"};
        engine_start(&a, 2 * round + 1);
        engine_start(&b, 2 * round + 2);
        if (round == 0)
            pthread_create(&chaos.thread, NULL, chaos_main, &chaos);
        engine_finish(&a);
        engine_finish(&b);
        check_engine(&a, round);
        check_engine(&b, round);
        fprintf(
            stderr,
            "stress_redis: round %d: syncs a %d ok %d late, b %d ok %d late; rewinds a %d, b %d\n",
            round, a.syncs_ok, a.syncs_failed, b.syncs_ok, b.syncs_failed, a.rewinds, b.rewinds);
        engine_destroy(&a);
        engine_destroy(&b);
    }
    __atomic_store_n(&chaos.stop, 1, __ATOMIC_RELEASE);
    pthread_join(chaos.thread, NULL);
    CHECK_GT(chaos.pauses, 0);
    check_redis();
    fprintf(stderr, "stress_redis: %d write pauses\n", chaos.pauses);
    op_intern_destroy(dict);
    redisserver_stop(&server);
    rcu_unregister_thread();
    return check_report("stress_redis");
}
