/* redis_bench.c — one commit of many touched users into Redis, the way the
 * engine does it, and the probes the Redis rows of `make bench` need.
 *
 * usage: redis_bench commit PORT [USERS] [RESP_FILE]
 *   Builds a shard in which USERS distinct users (default 1 000 000) each
 *   bought once, spread over 60 minutes, 10 categories, 50 brands and two
 *   genders, merges it into a state and hands it to the Redis sink
 *   (engine/io/redis_sink.c: encoding, the readable view, staging, the
 *   atomic commit), and times it until the commit is booked; three times
 *   (the partitions moving on), for the first commit of a cold process
 *   and the best of three, as the ceiling is the best of three runs. With
 *   RESP_FILE,
 *   also writes the same blob bytes as SET commands in the Redis protocol,
 *   for `redis-cli --pipe` (the same command shape, pushed by Redis's own
 *   client: the ceiling). One SUMMARY line.
 * usage: redis_bench ping PORT SECONDS
 *   PINGs Redis back to back on its own connection for SECONDS and prints
 *   the longest round trip: how long another client waited.
 * usage: redis_bench commits PORT N USERS MIN_REPLICAS
 *   N commits of USERS users each, one after the other, through the sink
 *   with --redis-min-replicas MIN_REPLICAS (WAIT after each): the time a
 *   commit takes, with and without WAIT.
 */
#include <hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu.h>

#include "bench/lines.h"
#include "engine/claims.h"
#include "engine/hash.h"
#include "engine/intern.h"
#include "engine/io/delta.h"
#include "engine/io/redis_sink.h"
#include "engine/shard.h"
#include "engine/state.h"

static op_shard_t *touched_users(op_intern_t *dict, long users)
{
    op_intern_cache_t cache;
    op_intern_cache_init(&cache, dict);
    op_shard_t *s = op_shard_create(0);
    const int64_t t0 = 1731283200000LL;
    char name[64], dim[24];
    for (long i = 0; i < users; i++) {
        int n = snprintf(name, sizeof(name), "user-%ld", i);
        int64_t ms = t0 + (i % 3600) * 1000;
        snprintf(dim, sizeof(dim), "cat%ld", i % 10);
        int32_t c = op_intern_cache_id(&cache, OP_DIM_CATEGORY, dim, strlen(dim));
        snprintf(dim, sizeof(dim), "brand%ld", i % 50);
        int32_t b = op_intern_cache_id(&cache, OP_DIM_BRAND, dim, strlen(dim));
        int32_t g = op_intern_cache_id(&cache, OP_DIM_GENDER, i % 2 ? "F" : "M", 1);
        op_tally_t *ts[] = {
            &s->totals,
            op_ktable_upsert(&s->brands, (uint32_t)b),
            op_ktable_upsert(&s->genders, (uint32_t)g),
            op_ktable_upsert(&s->minutes, (uint64_t)(ms / OP_MINUTE_MS)),
            op_ktable_upsert(&s->catmin,
                             op_ktable_pair((uint64_t)(ms / OP_MINUTE_MS), (uint32_t)c)),
            op_ktable_upsert(&s->gslots, op_ktable_pair((uint64_t)(ms / OP_SLOT_MS), (uint32_t)g))};
        for (size_t k = 0; k < sizeof(ts) / sizeof(ts[0]); k++) {
            ts[k]->orders++;
            ts[k]->quantity++;
            ts[k]->amount += 1999;
        }
        uint32_t e = op_users_upsert(&s->users, name, (size_t)n, op_hash_bytes(name, (size_t)n));
        s->users.ent[e].amount += 1999;
        s->users.ent[e].orders++;
        int32_t p = (int32_t)(i % 8);
        s->touched[0] |= 1ULL << p;
        s->parts[p].next_offset = i / 8 + 1;
        s->parts[p].max_event_ms = ms;
        s->parts[p].records++;
    }
    op_intern_cache_dispose(&cache);
    return s;
}

/* The blobs of s as `SET key value` commands in RESP, for redis-cli --pipe. */
static int write_resp(const char *path, const op_shard_t *s, op_intern_t *dict, size_t *bytes)
{
    op_delta_buf_t b;
    op_delta_buf_init(&b, 'D');
    op_delta_encode_shard(&b, s, dict);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    for (uint32_t i = 0; i < b.n; i++) {
        char key[64];
        int kl = snprintf(key, sizeof(key), "{op}:pipe:%u", i);
        fprintf(f, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%zu\r\n", kl, key, b.chunks[i].len);
        fwrite(b.chunks[i].buf, 1, b.chunks[i].len, f);
        fputs("\r\n", f);
    }
    *bytes = b.bytes;
    op_delta_buf_dispose(&b);
    return fclose(f);
}

static void wake_nobody(void *arg)
{
    (void)arg;
}

/* A sink on Redis at port that owns partitions 0-7 (claimed). */
static op_redis_sink_t *open_sink(int port, int min_replicas, int timeout_ms, op_intern_t *dict,
                                  op_claims_t *claims)
{
    op_claims_init(claims);
    op_redis_sink_conf_t sc = {
        .redis = {.host = "127.0.0.1",
                  .port = port,
                  .timeout_ms = timeout_ms,
                  .min_replicas = min_replicas},
        .writer = "bench",
        .source = "kafka:bench",
        .dict = dict,
        .claims = claims,
        .retention_ms = 86400000,
        .wake = wake_nobody,
    };
    char err[512];
    op_redis_sink_t *sink;
    if (op_redis_sink_create(&sink, &sc, err, sizeof(err)) < 0) {
        fprintf(stderr, "redis_bench: %s\n", err);
        return NULL;
    }
    op_redis_t *claimer;
    op_redis_create(&claimer, &sc.redis);
    op_redis_set_generation(claimer, op_redis_sink_generation(sink));
    for (int32_t p = 0; p < 8; p++) {
        char field[64];
        op_redis_sink_field(sc.source, p, field, sizeof(field));
        const char *fields[] = {field};
        op_redis_part_t part;
        if (op_redis_claim(claimer, "bench", 1, fields, &part, err, sizeof(err)) < 0) {
            fprintf(stderr, "redis_bench: %s\n", err);
            op_redis_destroy(claimer);
            op_redis_sink_destroy(sink);
            return NULL;
        }
        op_claims_set(&claims->epoch[p], part.epoch);
        op_claims_set(&claims->committed[p], part.next_offset);
    }
    op_redis_destroy(claimer);
    return sink;
}

/* Ticks the sink until everything added is committed. */
static int drain(op_redis_sink_t *sink, op_state_t *st, uint64_t tick)
{
    while (!op_redis_sink_drained(sink)) {
        if (op_redis_sink_tick(sink, st, tick, 0) != OP_REDIS_SINK_RUN) {
            char err[512];
            op_redis_sink_reason(sink, err, sizeof(err));
            fprintf(stderr, "redis_bench: %s\n", err);
            return -1;
        }
        usleep(50);
    }
    return 0;
}

typedef struct run {
    unsigned users;
    unsigned long long commits;
    double seconds;
    double first, best; /* one commit, from handing the shard over to booked */
    size_t resp_bytes;
} run_t;

/* n ticks of the same USERS users (the partitions moving on), each committed
 * before the next (with --redis-min-replicas min_replicas); with resp, the
 * blob bytes also as SET commands for redis-cli --pipe. */
static int run_commits(int port, int n, long users, int min_replicas, int timeout_ms,
                       const char *resp, run_t *out)
{
    op_intern_t *dict;
    op_intern_create(&dict);
    op_shard_t *s = touched_users(dict, users);
    out->resp_bytes = 0;
    if (resp && write_resp(resp, s, dict, &out->resp_bytes) != 0) {
        fprintf(stderr, "redis_bench: cannot write %s\n", resp);
        return 1;
    }
    op_claims_t *claims = malloc(sizeof(*claims));
    op_redis_sink_t *sink = open_sink(port, min_replicas, timeout_ms, dict, claims);
    if (!sink)
        return 1;
    op_state_t st;
    op_state_init(&st, dict);
    op_state_merge(&st, s, 0); /* the first tick's merge is the merger's, not timed */
    op_redis_sink_start(sink);
    double start = op_bench_now();
    out->best = 1e9;
    for (int i = 1; i <= n; i++) {
        if (i > 1) {
            for (int32_t p = 0; p < 8; p++)
                s->parts[p].next_offset += users / 8 + 1;
            op_state_merge(&st, s, 0);
        }
        double t0 = op_bench_now();
        op_redis_sink_add_shard(sink, s, (uint64_t)i);
        if (drain(sink, &st, (uint64_t)i) < 0)
            return 1;
        double one = op_bench_now() - t0;
        if (i == 1)
            out->first = one;
        if (one < out->best)
            out->best = one;
    }
    out->seconds = op_bench_now() - start;
    op_redis_sink_lag_t lag;
    op_redis_sink_lag(sink, 0, &lag);
    out->commits = lag.commits;
    out->users = s->users.count;
    op_redis_sink_destroy(sink);
    op_state_dispose(&st);
    op_shard_destroy(s);
    free(claims);
    op_intern_destroy(dict);
    return 0;
}

static int commit(int port, long users, const char *resp)
{
    run_t r;
    if (run_commits(port, 3, users, 0, 60000, resp, &r))
        return 1;
    printf("SUMMARY bench=redis_commit users=%u commits=%llu seconds=%.4f first_seconds=%.4f "
           "users_per_s=%.0f resp_bytes=%zu\n",
           r.users, r.commits, r.best, r.first, r.users / r.best, r.resp_bytes);
    return 0;
}

/* What a commit costs with WAIT and without. */
static int commits(int port, int n, long users, int min_replicas)
{
    run_t r;
    if (run_commits(port, n, users, min_replicas, 2000, NULL, &r))
        return 1;
    printf("SUMMARY bench=redis_commits users=%u commits=%llu min_replicas=%d seconds=%.3f "
           "ms_per_commit=%.3f\n",
           r.users, r.commits, min_replicas, r.seconds,
           r.commits ? r.seconds * 1e3 / (double)r.commits : 0.0);
    return 0;
}

static int ping(int port, double seconds)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        fprintf(stderr, "redis_bench: ping: cannot connect\n");
        return 1;
    }
    double end = op_bench_now() + seconds, worst = 0, sum = 0;
    long n = 0;
    while (op_bench_now() < end) {
        double t = op_bench_now();
        redisReply *rep = redisCommand(c, "PING");
        if (!rep)
            break;
        freeReplyObject(rep);
        double rtt = op_bench_now() - t;
        worst = rtt > worst ? rtt : worst;
        sum += rtt;
        n++;
        usleep(500);
    }
    redisFree(c);
    printf("SUMMARY bench=redis_ping pings=%ld max_ms=%.2f avg_ms=%.3f\n", n, worst * 1e3,
           n ? sum / n * 1e3 : 0.0);
    return 0;
}

int main(int argc, char **argv)
{
    rcu_register_thread();
    int rc = 2;
    if (argc >= 3 && !strcmp(argv[1], "commit"))
        rc = commit(atoi(argv[2]), argc > 3 ? atol(argv[3]) : 1000000, argc > 4 ? argv[4] : NULL);
    else if (argc >= 4 && !strcmp(argv[1], "ping"))
        rc = ping(atoi(argv[2]), atof(argv[3]));
    else if (argc >= 6 && !strcmp(argv[1], "commits"))
        rc = commits(atoi(argv[2]), atoi(argv[3]), atol(argv[4]), atoi(argv[5]));
    else
        fprintf(stderr, "usage: redis_bench commit PORT [USERS] [RESP_FILE]\n"
                        "       redis_bench ping PORT SECONDS\n"
                        "       redis_bench commits PORT N USERS MIN_REPLICAS\n");
    rcu_unregister_thread();
    return rc;
}
