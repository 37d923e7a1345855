/* stress_merger.c — workers, merger and RCU readers running together.
 *
 * Two workers read a generated JSONL file, the merger ticks every 5 ms, and
 * four reader threads take snapshots under rcu_read_lock the whole time.
 * Checks: readers never see the totals go back, the final snapshot holds
 * exactly the generated sums and the exact top-10. Run under TSan and ASan
 * by `make test` (races, use-after-free of retired snapshots, leaks).
 *
 * A plain program rather than a Criterion test: Criterion cannot start under
 * ThreadSanitizer (Snaipe/Criterion#274). Exit status 0 = pass.
 */
#include "tests/stress/check.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu.h>

#include "engine/intern.h"
#include "engine/merger.h"
#include "engine/snapshot.h"
#include "engine/source.h"
#include "engine/worker.h"

#define ORDERS 200000
#define USERS  5000

static int64_t user_cents[USERS];
static int64_t total_cents, total_qty;

/* Orders with amounts that make ties among users unlikely but possible. */
static char *write_orders(void)
{
    static char path[] = "/tmp/op-test-merger-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    uint64_t x = 12345;
    for (int i = 0; i < ORDERS; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int u = (int)((x >> 33) % USERS);
        int num = 1 + (int)((x >> 20) % 5);
        int64_t cents = 100 + (int64_t)((x >> 40) % 100000);
        user_cents[u] += cents;
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

typedef struct reader {
    pthread_t thread;
    op_snapshot_pub_t *pub;
    int *stop;
    long seen, regressions;
} reader_t;

static long long member(const char *doc, const char *key)
{
    const char *p = strstr(doc, key);
    return p ? atoll(p + strlen(key)) : -1;
}

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    rcu_register_thread();
    long long last_orders = 0, last_tick = 0;
    while (!__atomic_load_n(r->stop, __ATOMIC_ACQUIRE)) {
        const op_snapshot_t *s = op_snapshot_acquire(r->pub);
        if (s) {
            /* Reads the whole body, as an HTTP thread would. */
            const op_jarray_t *doc = &s->res[OP_RES_SNAPSHOT];
            char *copy = malloc(doc->len + 1);
            memcpy(copy, doc->buf, doc->len);
            copy[doc->len] = 0;
            long long orders = member(copy, "\"totals\":{\"orders\":");
            long long tick = (long long)s->tick;
            if (orders < last_orders || tick < last_tick)
                r->regressions++;
            last_orders = orders;
            last_tick = tick;
            r->seen++;
            free(copy);
        }
        op_snapshot_release(s);
    }
    rcu_unregister_thread();
    return NULL;
}

int main(void)
{
    char *path = write_orders();
    char err[256];
    rcu_register_thread();
    op_intern_t *dict;
    REQUIRE(op_intern_create(&dict) == 0);
    op_source_t *src;
    op_source_conf_t sc = {.file = path, .nworkers = 2, .batch_max = 256, .once = 1};
    REQUIRE(op_source_open(&src, &sc, err, sizeof(err)) == 0, "%s", err);
    op_merger_t *m;
    op_merger_conf_t mc = {.nworkers = 2,
                           .tick_ms = 5,
                           .lateness_ms = 5000,
                           .retention_ms = 86400000,
                           .idle_ms = 10000,
                           .once = 1,
                           .src = src,
                           .dict = dict};
    REQUIRE(op_merger_create(&m, &mc) == 0);

    int stop = 0;
    reader_t readers[4];
    for (int i = 0; i < 4; i++) {
        readers[i] = (reader_t){.pub = op_merger_pub(m), .stop = &stop};
        pthread_create(&readers[i].thread, NULL, reader_main, &readers[i]);
    }
    op_worker_t *w[2];
    for (int i = 0; i < 2; i++) {
        op_worker_conf_t wc = {.id = i,
                               .cpu = -1,
                               .input = op_source_input(src, i),
                               .merger = m,
                               .dict = dict,
                               .lateness_ms = 5000};
        REQUIRE(op_worker_create(&w[i], &wc) == 0);
        REQUIRE(op_worker_start(w[i]) == 0);
    }
    REQUIRE(op_merger_start(m) == 0);
    op_merger_join(m);
    for (int i = 0; i < 2; i++) {
        op_worker_join(w[i]);
        op_worker_destroy(w[i]);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    long seen = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(readers[i].thread, NULL);
        CHECK_EQ(readers[i].regressions, 0, "reader %d saw totals go back", i);
        seen += readers[i].seen;
    }
    CHECK_GT(seen, 0);

    const op_snapshot_t *s = op_snapshot_acquire(op_merger_pub(m));
    REQUIRE(s != NULL);
    char *doc = strndup(s->res[OP_RES_SNAPSHOT].buf, s->res[OP_RES_SNAPSHOT].len);
    op_snapshot_release(s);
    CHECK_EQ(member(doc, "\"totals\":{\"orders\":"), ORDERS);
    CHECK_EQ(member(doc, "\"quantity\":"), total_qty);
    char want[64];
    snprintf(want, sizeof(want), "\"amount\":%lld.%02lld}", (long long)(total_cents / 100),
             (long long)(total_cents % 100));
    CHECK_NOT_NULL(strstr(doc, want), "total amount %s missing", want);

    /* The exact top-10, by brute force: amount desc, then name bytewise. */
    const char *top = strstr(doc, "\"top_users\":[");
    REQUIRE(top != NULL);
    int used[USERS] = {0};
    for (int k = 0; k < 10; k++) {
        int best = -1;
        char bname[32], name[32];
        for (int u = 0; u < USERS; u++) {
            if (used[u])
                continue;
            snprintf(name, sizeof(name), "user%d", u);
            if (best < 0 || user_cents[u] > user_cents[best] ||
                (user_cents[u] == user_cents[best] && strcmp(name, bname) < 0)) {
                best = u;
                strcpy(bname, name);
            }
        }
        used[best] = 1;
        char entry[96];
        snprintf(entry, sizeof(entry), "{\"name\":\"%s\",\"amount\":%lld.%02lld,", bname,
                 (long long)(user_cents[best] / 100), (long long)(user_cents[best] % 100));
        const char *at = strstr(top, entry);
        CHECK_NOT_NULL(at, "rank %d: %s", k, entry);
        if (at)
            top = at + 1;
    }
    free(doc);
    op_merger_destroy(m);
    op_source_close(src);
    op_intern_destroy(dict);
    rcu_unregister_thread();
    unlink(path);
    return check_report("stress_merger");
}
