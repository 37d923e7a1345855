/* stress_pmerge.c — the users' merge on a team of threads against the same
 * merge on one thread.
 *
 * state.c cuts a big users' merge by hash into parts, one per thread of a
 * fanout team, numbers the new users per part and closes the gaps after;
 * what a part cannot settle alone is merged afterwards. Here two states get
 * the same shards, one merging alone, the other on a team of 2, 4 or 8 with
 * every merge big enough for the team, over tables small enough that the
 * parts' edges, the quota and the index growth are hit all the time (and a
 * few long names, which a part leaves to the merger), and the team's offer
 * of a first table to the empty top-K. Checks after every
 * merge: the same users with the same amounts and orders, every entry where
 * a lookup finds it, the same top-K, and the same per-day user figures
 * (which go through the shard-to-state entry map). Run under TSan and ASan
 * by `make test`: the parts' disjoint writes are checked there. Exit
 * status 0 = pass.
 */
#include "tests/stress/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/fanout.h"
#include "engine/hash.h"
#include "engine/shard.h"
#include "engine/state.h"
#include "tests/unit/xorshift.h"

#define ROUNDS 300
#define TZ_MS  0
#define DAY0   (20000LL * 86400000LL) /* some day in 2024 */

static uint64_t rng = 88172645463325252ULL;

static uint64_t next(void)
{
    return xorshift64(&rng);
}

static size_t name_of(uint32_t id, char *buf, size_t cap)
{
    /* One in 40 names is too long for an entry (the arena). */
    if (id % 40 == 7)
        return (size_t)snprintf(buf, cap, "a-rather-long-user-name-%u", id);
    return (size_t)snprintf(buf, cap, "u%u", id);
}

/* What a worker does with a user's orders: the user's entry and day. */
static void add_user(op_shard_t *s, uint32_t id, int64_t amount, int days)
{
    char name[64];
    size_t len = name_of(id, name, sizeof(name));
    uint32_t e = op_users_upsert(&s->users, name, len, op_users_hash(name, len));
    op_users_add(&s->users, e, amount, 1);
    op_tally_t one = {1, 1, amount};
    op_tally_add(&s->totals, &one);
    if (days)
        op_shard_add_day(s, DAY0 + (int64_t)(next() % 3) * 86400000LL + 1000, TZ_MS, e, 0, 0, 1,
                         amount);
}

/* A shard of n users drawn from ids below universe (or, with universe 0,
 * the n ids from `from` on); amounts with ties. */
static op_shard_t *make_shard(uint32_t n, uint32_t universe, uint32_t from, int days)
{
    op_shard_t *s = op_shard_create(0);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = universe ? (uint32_t)(next() % universe) : from + i;
        int64_t amount = next() % 8 ? 1 + (int64_t)(next() % 5000) : 100000 + (int64_t)(next() % 4);
        add_user(s, id, amount, days);
    }
    return s;
}

static void compare(const op_state_t *a, const op_state_t *b, int round, int merge)
{
    CHECK_EQ(a->users.count, b->users.count, "round %d merge %d: users %u vs %u", round, merge,
             a->users.count, b->users.count);
    for (uint32_t e = 0; e < b->users.count; e++) {
        size_t len;
        const char *name = op_users_name(&b->users, e, &len);
        uint64_t h = op_users_hash(name, len);
        CHECK_EQ(op_users_find(&b->users, name, len, h), e, "round %d merge %d: entry %u lost",
                 round, merge, e);
        uint32_t x = op_users_find(&a->users, name, len, h);
        if (x == UINT32_MAX) {
            CHECK(0, "round %d merge %d: %.*s only on the team", round, merge, (int)len, name);
            continue;
        }
        CHECK_EQ(op_users_amount(&a->users, x), op_users_amount(&b->users, e),
                 "round %d merge %d: %.*s amount", round, merge, (int)len, name);
        CHECK_EQ(op_users_orders(&a->users, x), op_users_orders(&b->users, e),
                 "round %d merge %d: %.*s orders", round, merge, (int)len, name);
    }
    uint32_t ta[OP_STATE_TOPK], tb[OP_STATE_TOPK];
    uint32_t na = op_state_top_users(a, ta, OP_STATE_TOPK),
             nb = op_state_top_users(b, tb, OP_STATE_TOPK);
    CHECK_EQ(na, nb, "round %d merge %d: top-K sizes", round, merge);
    for (uint32_t i = 0; i < na && i < nb; i++) {
        size_t la, lb;
        const char *xa = op_users_name(&a->users, ta[i], &la);
        const char *xb = op_users_name(&b->users, tb[i], &lb);
        CHECK(la == lb && !memcmp(xa, xb, la) &&
                  op_users_amount(&a->users, ta[i]) == op_users_amount(&b->users, tb[i]),
              "round %d merge %d: top-K rank %u: %.*s vs %.*s", round, merge, i, (int)la, xa,
              (int)lb, xb);
    }
}

/* The per-day user figures, after settling: each of a's rows in b under
 * the same user (by name) and day, and as many rows. */
static void compare_days(op_state_t *a, op_state_t *b, int round)
{
    op_state_settle_days(a);
    op_state_settle_days(b);
    CHECK_EQ(a->user_days.count, b->user_days.count, "round %d: user-day rows", round);
    for (uint32_t i = 0; i < a->user_days.cap; i++) {
        if (!op_ktable_used(&a->user_days, i))
            continue;
        uint64_t k = op_ktable_key(&a->user_days, i);
        size_t len;
        const char *name = op_users_name(&a->users, (uint32_t)k, &len);
        uint32_t e = op_users_find(&b->users, name, len, op_users_hash(name, len));
        const op_tally_t *t =
            e == UINT32_MAX
                ? NULL
                : op_ktable_find(&b->user_days, op_shard_user_day((uint32_t)(k >> 32), e));
        if (!t) {
            CHECK(0, "round %d: %.*s's day missing on the team", round, (int)len, name);
            continue;
        }
        CHECK(t->orders == a->user_days.vals[i].orders && t->amount == a->user_days.vals[i].amount,
              "round %d: %.*s's day figures", round, (int)len, name);
    }
}

int main(void)
{
    op_fanout_t *teams[3];
    for (int i = 0; i < 3; i++)
        REQUIRE(op_fanout_create(&teams[i], 2 << i) == 0);
    static const uint32_t sizes[] = {120, 300, 1000, 4000, 20000};
    long parallel = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int days = round % 3 == 0;
        uint32_t universe = sizes[next() % 5] * (1 + (uint32_t)(next() % 3));
        op_state_t st[2];
        for (int t = 0; t < 2; t++)
            op_state_init(&st[t], NULL);
        /* The first merge fills the state (a copy: no team), then a few more. */
        int merges = 2 + (int)(next() % 3);
        /* One round in five: 1000 users, then 1000 new ones -- the index
         * (2048 slots) has room for them but not for a generous quota per
         * part, so the parts get about their share and some run out. */
        int tight = round % 5 == 4;
        if (tight)
            merges = 2;
        for (int m = 0; m < merges; m++) {
            uint32_t n = tight ? 1000 : sizes[next() % 5];
            op_shard_t *s = make_shard(n, tight ? 0 : universe, (uint32_t)m * 1000, days);
            op_state_merge(&st[0], s, 0);
            if (m == 0) {
                /* Every other round, the team offers the first table to
                 * the empty top-K too. */
                op_fanout_t *team = teams[next() % 3];
                if (round % 2)
                    op_state_set_fanout(&st[1], team, 1);
                op_state_merge(&st[1], s, 0);
                op_state_set_fanout(&st[1], team, 1);
            } else {
                /* Taking or not: the team's merge reads the shard only. */
                if (m % 2)
                    op_state_merge_taking(&st[1], s, 0);
                else
                    op_state_merge(&st[1], s, 0);
            }
            op_shard_destroy(s);
            compare(&st[0], &st[1], round, m);
        }
        if (days)
            compare_days(&st[0], &st[1], round);
        parallel += (long)st[1].team_merges;
        op_state_dispose(&st[0]);
        op_state_dispose(&st[1]);
    }
    for (int i = 0; i < 3; i++)
        op_fanout_destroy(teams[i]);
    CHECK_GT(parallel, ROUNDS, "the team merged too rarely (%ld merges)", parallel);
    fprintf(stderr, "stress_pmerge: %d rounds, %ld merges on a team\n", ROUNDS, parallel);
    return check_report("stress_pmerge");
}
