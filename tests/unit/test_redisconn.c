/* test_redisconn.c — the --redis forms, hash slots, and a standalone Redis
 * found as such (Sentinel and Cluster behaviour is tested end to end, with
 * real Sentinels and clusters, in tests/e2e/test_redis_ha.py). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "engine/io/redisconn.h"
#include "tests/unit/redisserver.h"

static char err[512];

Test(redisconn, parses_every_form)
{
    char buf[512];
    op_redis_conf_t c = {0};
    cr_assert_eq(op_redisconn_parse("10.0.0.1:7000", buf, sizeof(buf), &c, err, sizeof(err)), 0);
    cr_assert_str_eq(c.host, "10.0.0.1");
    cr_assert_eq(c.port, 7000);
    cr_assert_null(c.sentinels);
    cr_assert_eq(op_redisconn_parse("redis.local", buf, sizeof(buf), &c, err, sizeof(err)), 0);
    cr_assert_str_eq(c.host, "redis.local");
    cr_assert_eq(c.port, 6379);
    cr_assert_eq(op_redisconn_parse("sentinel://a:26379,b:26380,c/orders", buf, sizeof(buf), &c,
                                    err, sizeof(err)),
                 0, "%s", err);
    cr_assert_null(c.host);
    cr_assert_str_eq(c.sentinels, "a:26379,b:26380,c");
    cr_assert_str_eq(c.master, "orders");
    static const char *const bad[] = {
        ":6379",
        "h:0",
        "h:65536",
        "h:12x",
        "sentinel://",
        "sentinel://h:1",
        "sentinel:///m",
        "sentinel://h:1/",
        "sentinel://h:1,/m",
        "sentinel://h:1/m/x",
        "sentinel://h:99999/m",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        cr_assert_eq(op_redisconn_parse(bad[i], buf, sizeof(buf), &c, err, sizeof(err)), -EINVAL,
                     "accepted '%s'", bad[i]);
        cr_assert(strstr(err, "--redis") && strstr(err, bad[i]), "%s", err);
    }
}

Test(redisconn, slots_follow_the_hash_tag)
{
    /* CLUSTER KEYSLOT, checked on this machine's redis-server 7.0.15 */
    cr_assert_eq(op_redisconn_slot("{op}", 4), 9603);
    cr_assert_eq(op_redisconn_slot("{op}:meta", 9), 9603);
    cr_assert_eq(op_redisconn_slot("{op}:b:ab12:7", 13), 9603);
    cr_assert_eq(op_redisconn_slot("foo", 3), 12182);
    cr_assert_eq(op_redisconn_slot("{}:meta", 7), op_redisconn_slot("{}:meta", 7));
    cr_assert_neq(op_redisconn_slot("{}:meta", 7), op_redisconn_slot("{}:log", 6),
                  "an empty tag is no tag");
}

static int hooked;

static int hook(void *arg, redisContext *c, const char *where, char *e, size_t elen)
{
    (void)arg, (void)c, (void)where, (void)e, (void)elen;
    hooked++;
    return 0;
}

Test(redisconn, a_standalone_redis_is_used_as_it_is)
{
    redisserver_t server;
    cr_assert_eq(redisserver_start(&server), 0);
    op_redis_conf_t conf = {.host = "127.0.0.1", .port = server.port, .timeout_ms = 2000};
    op_redisconn_t *c = NULL;
    cr_assert_eq(op_redisconn_create(&c, &conf, "{op}:meta", hook, NULL), 0);
    const char *argv[] = {"SET", "{op}:x", "1"};
    size_t lens[] = {3, 6, 1};
    int rc;
    redisReply *rep = op_redisconn_call(c, 3, argv, lens, &rc, err, sizeof(err), "SET");
    cr_assert_not_null(rep, "%s", err);
    freeReplyObject(rep);
    cr_assert_eq(op_redisconn_cluster(c), 0);
    cr_assert_eq(hooked, 1);
    cr_assert_eq(op_redisconn_serial(c), 1);
    /* The server goes: an error naming it; it comes back: a new connection. */
    redisserver_stop(&server);
    rep = op_redisconn_call(c, 3, argv, lens, &rc, err, sizeof(err), "SET");
    cr_assert_null(rep);
    cr_assert_eq(rc, -ECONNRESET);
    cr_assert(strstr(err, "127.0.0.1:"), "%s", err);
    op_redisconn_destroy(c);
}
