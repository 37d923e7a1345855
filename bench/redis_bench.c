/* redis_bench.c — one tick's flush of many touched users into Redis.
 *
 * usage: redis_bench PORT [USERS]
 * Builds a shard in which USERS distinct users (default 1 000 000) each
 * bought once, spread over 60 minutes, 10 categories, 50 brands and two
 * genders, flushes it with op_redis_flush (the engine's own fenced,
 * pipelined transaction) and prints one SUMMARY line with the wall time
 * and the commands per second. run.sh puts it next to redis-benchmark.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu.h>

#include "bench/lines.h"
#include "engine/hash.h"
#include "engine/intern.h"
#include "engine/io/redis.h"
#include "engine/shard.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: redis_bench PORT [USERS]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    long users = argc > 2 ? atol(argv[2]) : 1000000;
    rcu_register_thread();
    op_intern_t *dict;
    op_intern_create(&dict);
    op_intern_cache_t cache;
    op_intern_cache_init(&cache, dict);
    op_shard_t *s = op_shard_create(0);
    const int64_t t0 = 1731283200000LL;
    char name[64];
    for (long i = 0; i < users; i++) {
        int n = snprintf(name, sizeof(name), "user-%ld", i);
        int64_t ms = t0 + (i % 3600) * 1000;
        snprintf(name + 40, 24, "cat%ld", i % 10);
        int32_t c = op_intern_cache_id(&cache, OP_DIM_CATEGORY, name + 40, strlen(name + 40));
        snprintf(name + 40, 24, "brand%ld", i % 50);
        int32_t b = op_intern_cache_id(&cache, OP_DIM_BRAND, name + 40, strlen(name + 40));
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
        uint32_t e = op_users_upsert(&s->users, name, (size_t)n, op_users_hash(name, (size_t)n));
        op_users_add(&s->users, e, 1999, 1);
    }
    for (int p = 0; p < 8; p++) {
        s->touched[0] |= 1ULL << p;
        s->parts[p].next_offset = users / 8;
    }
    /* What op_redis_flush sends: MULTI/EXEC, 2 per user, 3 per brand and
     * gender, 4 per minute, 4 per category-minute, 2 per slot-gender, the
     * counters, the offsets, and the WATCH+GET pairs. */
    long cmds = 2 + 2L * s->users.count + 3L * (s->brands.count + s->genders.count) +
                4L * (s->minutes.count + s->catmin.count) + 2L * s->gslots.count + 4 + 8 + 16;
    op_redis_conf_t conf = {.host = "127.0.0.1",
                            .port = port,
                            .topic = "bench",
                            .retention_ms = 86400000,
                            .timeout_ms = 60000};
    char err[512];
    op_redis_t *r;
    if (op_redis_connect(&r, &conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "redis_bench: %s\n", err);
        return 1;
    }
    int64_t expected[OP_SOURCE_MAX_PARTITIONS];
    for (int p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++)
        expected[p] = -1;
    double start = op_bench_now();
    int rc = op_redis_flush(r, s, dict, expected, err, sizeof(err));
    double secs = op_bench_now() - start;
    if (rc != 0) {
        fprintf(stderr, "redis_bench: flush failed: %s\n", err);
        return 1;
    }
    printf("SUMMARY bench=redis_flush users=%u commands=%ld seconds=%.3f commands_per_s=%.0f\n",
           s->users.count, cmds, secs, cmds / secs);
    op_redis_close(r);
    op_shard_destroy(s);
    op_intern_cache_dispose(&cache);
    op_intern_destroy(dict);
    rcu_unregister_thread();
    return 0;
}
