/* test_redis.c — the fenced flush, offsets and state loading against a real
 * redis-server: what one tick writes, that a moved offset rejects the whole
 * tick, and that loading gives back exactly what was flushed. */
#include <criterion/criterion.h>
#include <hiredis.h>
#include <string.h>
#include <urcu.h>

#include "engine/hash.h"
#include "engine/intern.h"
#include "engine/io/redis.h"
#include "engine/shard.h"
#include "engine/state.h"
#include "tests/unit/redisserver.h"

static redisserver_t server;
static op_intern_t *dict;
static op_intern_cache_t cache;

static void setup(void)
{
    rcu_register_thread();
    cr_assert_eq(redisserver_start(&server), 0, "redis-server did not start");
    cr_assert_eq(op_intern_create(&dict), 0);
    op_intern_cache_init(&cache, dict);
}

static void teardown(void)
{
    op_intern_cache_dispose(&cache);
    op_intern_destroy(dict);
    redisserver_stop(&server);
    rcu_unregister_thread();
}

static op_redis_t *connect_or_fail(void)
{
    op_redis_conf_t conf = {.host = "127.0.0.1",
                            .port = server.port,
                            .topic = "orders",
                            .retention_ms = 3600000,
                            .timeout_ms = 2000};
    char err[256];
    op_redis_t *r = NULL;
    cr_assert_eq(op_redis_connect(&r, &conf, err, sizeof(err)), 0, "%s", err);
    return r;
}

/* One order into a shard, as a worker would add it. */
static void add(op_shard_t *s, const char *user, const char *gender, const char *cat,
                const char *brand, int64_t num, int64_t cents, int64_t ms, int32_t part,
                int64_t offset)
{
    int32_t g = op_intern_cache_id(&cache, OP_DIM_GENDER, gender, strlen(gender));
    int32_t c = op_intern_cache_id(&cache, OP_DIM_CATEGORY, cat, strlen(cat));
    int32_t b = op_intern_cache_id(&cache, OP_DIM_BRAND, brand, strlen(brand));
    op_tally_t *ts[] = {
        &s->totals,
        op_ktable_upsert(&s->brands, (uint32_t)b),
        op_ktable_upsert(&s->genders, (uint32_t)g),
        op_ktable_upsert(&s->minutes, (uint64_t)(ms / OP_MINUTE_MS)),
        op_ktable_upsert(&s->catmin, op_ktable_pair((uint64_t)(ms / OP_MINUTE_MS), (uint32_t)c)),
        op_ktable_upsert(&s->gslots, op_ktable_pair((uint64_t)(ms / OP_SLOT_MS), (uint32_t)g))};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        ts[i]->orders++;
        ts[i]->quantity += num;
        ts[i]->amount += cents;
    }
    uint32_t e = op_users_upsert(&s->users, user, strlen(user), op_users_hash(user, strlen(user)));
    op_users_add(&s->users, e, cents, 1);
    s->touched[part >> 6] |= 1ULL << (part & 63);
    s->parts[part].next_offset = offset + 1;
    s->parts[part].records++;
}

static int64_t hget(int port, const char *key, const char *field)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *rep = redisCommand(c, "HGET %s %s", key, field);
    int64_t v = rep && rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : -1;
    freeReplyObject(rep);
    redisFree(c);
    return v;
}

TestSuite(redis, .init = setup, .fini = teardown);

Test(redis, flush_then_load_gives_back_the_same_state)
{
    op_redis_t *r = connect_or_fail();
    op_shard_t *s = op_shard_create(0);
    const int64_t t0 = 1731283200000LL;
    add(s, "张伟", "男", "手机数码", "Apple", 1, 599900, t0, 0, 10);
    add(s, "李娜", "女", "服装", "Nike", 2, 39998, t0 + 61000, 3, 7);
    add(s, "张伟", "男", "服装", "Nike", 3, 5, t0 + 700000, 0, 11);
    s->bad[OP_PARSE_UTF8] = 2;
    s->late = 1;
    int64_t expected[OP_SOURCE_MAX_PARTITIONS];
    for (int p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++)
        expected[p] = -1;
    char err[256];
    cr_assert_eq(op_redis_flush(r, s, dict, expected, err, sizeof(err)), 0, "%s", err);

    cr_expect_eq(hget(server.port, "{op}:totals", "orders"), 3);
    cr_expect_eq(hget(server.port, "{op}:totals", "amount"), 599900 + 39998 + 5);
    cr_expect_eq(hget(server.port, "{op}:brand:q", "Nike"), 5);
    cr_expect_eq(hget(server.port, "{op}:bad", "utf8"), 2);

    int64_t offs[4];
    cr_assert_eq(op_redis_offsets(r, 4, offs, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(offs[0], 12);
    cr_expect_eq(offs[1], -1);
    cr_expect_eq(offs[3], 8);

    op_state_t st;
    op_state_init(&st, dict);
    cr_assert_eq(op_redis_load(r, &st, &cache, 0, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(st.totals.orders, 3);
    cr_expect_eq(st.totals.quantity, 6);
    cr_expect_eq(st.totals.amount, 599900 + 39998 + 5);
    cr_expect_eq(st.bad[OP_PARSE_UTF8], 2);
    cr_expect_eq(st.late, 1);
    cr_expect_eq(st.minutes.count, 3);
    cr_expect_eq(st.catmin.count, 3);
    cr_expect_eq(st.gslots.count, 3); /* (slot A, 男), (slot A, 女), (slot B, 男) */
    int32_t nike = op_intern_cache_id(&cache, OP_DIM_BRAND, "Nike", 4);
    op_tally_t *t = op_ktable_find(&st.brands, (uint32_t)nike);
    cr_assert_not_null(t);
    cr_expect_eq(t->quantity, 5);
    cr_expect_eq(t->amount, 39998 + 5);
    cr_expect_eq(t->orders, 2);
    uint32_t top[OP_STATE_TOPK];
    cr_assert_eq(op_state_top_users(&st, top, 10), 2);
    size_t len;
    const char *name = op_users_name(&st.users, top[0], &len);
    cr_expect(len == strlen("张伟") && !memcmp(name, "张伟", len));
    cr_expect_eq(op_users_amount(&st.users, top[0]), 599905);
    cr_expect_eq(op_users_orders(&st.users, top[0]), 2);

    op_state_dispose(&st);
    op_shard_destroy(s);
    op_redis_close(r);
}

Test(redis, moved_offset_rejects_the_whole_tick)
{
    op_redis_t *r = connect_or_fail();
    op_shard_t *s = op_shard_create(0);
    add(s, "u", "g", "c", "b", 1, 100, 1731283200000LL, 5, 41);
    int64_t expected[OP_SOURCE_MAX_PARTITIONS];
    for (int p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++)
        expected[p] = -1;
    expected[5] = 30; /* we believe Redis holds 30 ... */
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", server.port, tv);
    freeReplyObject(
        redisCommand(c, "SET {op}:offset:orders:5 35")); /* ... another owner moved it */
    redisFree(c);
    char err[256];
    cr_expect_eq(op_redis_flush(r, s, dict, expected, err, sizeof(err)), OP_REDIS_FENCED);
    cr_expect(strstr(err, "partition 5") != NULL, "%s", err);
    cr_expect_eq(hget(server.port, "{op}:totals", "orders"), -1, "nothing may be written");
    expected[5] = 35;
    cr_expect_eq(op_redis_flush(r, s, dict, expected, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(hget(server.port, "{op}:totals", "orders"), 1);
    op_shard_destroy(s);
    op_redis_close(r);
}

Test(redis, unreachable_server_is_an_error_not_a_crash)
{
    op_redis_conf_t conf = {.host = "127.0.0.1", .port = 1, .timeout_ms = 200};
    char err[256] = "";
    op_redis_t *r = NULL;
    cr_expect_lt(op_redis_connect(&r, &conf, err, sizeof(err)), 0);
    cr_expect(strstr(err, "127.0.0.1:1") != NULL, "%s", err);
}
