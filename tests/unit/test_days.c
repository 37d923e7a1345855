/* test_days.c — calendar days (--archive): brands, genders and users per
 * day in the merger's state equal a brute-force count, whether the shards
 * are merged one by one or first summed into a pending shard (as with
 * Redis), with orders around midnight, out of order, and shards whose base
 * days differ. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/hash.h"
#include "engine/shard.h"
#include "engine/state.h"
#include "tests/unit/xorshift.h"

#define NUSERS  300
#define NGEND   3
#define NBRANDS 12
#define NDAYS   4
#define TZ_MS   (8 * 3600 * 1000LL)

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next(void)
{
    return xorshift64(&rng);
}

typedef struct order {
    int user, gender, brand;
    int64_t event_ms, num, amount;
} order_t;

/* Brute force, by local day index 0..NDAYS-1 from day0. */
static op_tally_t want_brand[NDAYS][NBRANDS], want_gender[NDAYS][NGEND], want_user[NDAYS][NUSERS];
static uint32_t day0;

static void name_of(int u, char *buf, size_t len)
{
    snprintf(buf, len, "用户%03d", u);
}

/* What the worker does with an order (worker.c add_record). */
static void add(op_shard_t *s, const order_t *o)
{
    char name[32];
    name_of(o->user, name, sizeof(name));
    size_t len = strlen(name);
    op_tally_t one = {1, o->num, o->amount};
    op_tally_add(&s->totals, &one);
    op_tally_add(op_ktable_upsert(&s->brands, (uint32_t)o->brand), &one);
    op_tally_add(op_ktable_upsert(&s->genders, (uint32_t)o->gender), &one);
    uint32_t e = op_users_upsert(&s->users, name, len, op_hash_bytes(name, len));
    s->users.ent[e].amount += o->amount;
    s->users.ent[e].orders++;
    op_shard_add_day(s, o->event_ms, TZ_MS, e, (uint32_t)o->gender, (uint32_t)o->brand, o->num,
                     o->amount);
}

static void check(op_state_t *st)
{
    int64_t seen = 0;
    for (uint32_t i = 0; i < st->brand_days.cap; i++) {
        if (!op_ktable_used(&st->brand_days, i))
            continue;
        uint64_t k = op_ktable_key(&st->brand_days, i);
        const op_tally_t *t = &st->brand_days.vals[i];
        uint32_t d = (uint32_t)op_ktable_pair_bucket(k) - day0, b = op_ktable_pair_dim(k);
        cr_assert(d < NDAYS && b < NBRANDS, "brand day key out of range");
        cr_assert_eq(t->orders, want_brand[d][b].orders, "brand %u day %u orders", b, d);
        cr_assert_eq(t->quantity, want_brand[d][b].quantity, "brand %u day %u quantity", b, d);
        cr_assert_eq(t->amount, want_brand[d][b].amount, "brand %u day %u amount", b, d);
        seen += t->orders;
    }
    for (uint32_t i = 0; i < st->gender_days.cap; i++) {
        if (!op_ktable_used(&st->gender_days, i))
            continue;
        uint64_t k = op_ktable_key(&st->gender_days, i);
        const op_tally_t *t = &st->gender_days.vals[i];
        uint32_t d = (uint32_t)op_ktable_pair_bucket(k) - day0, g = op_ktable_pair_dim(k);
        cr_assert(d < NDAYS && g < NGEND);
        cr_assert_eq(t->orders, want_gender[d][g].orders);
        cr_assert_eq(t->quantity, want_gender[d][g].quantity);
        cr_assert_eq(t->amount, want_gender[d][g].amount);
    }
    int64_t user_orders = 0;
    op_state_settle_days(st);
    for (uint32_t i = 0; i < st->user_days.cap; i++) {
        if (!op_ktable_used(&st->user_days, i))
            continue;
        uint64_t k = op_ktable_key(&st->user_days, i);
        const op_tally_t *t = &st->user_days.vals[i];
        size_t len;
        const char *name = op_users_name(&st->users, (uint32_t)k, &len);
        int u = -1;
        cr_assert_eq(sscanf(name + strlen("用户"), "%d", &u), 1);
        uint32_t d = (uint32_t)(k >> 32) - day0;
        cr_assert(d < NDAYS && u >= 0 && u < NUSERS);
        cr_assert_eq(t->orders, want_user[d][u].orders, "user %d day %u orders", u, d);
        cr_assert_eq(t->amount, want_user[d][u].amount, "user %d day %u amount", u, d);
        cr_assert_eq(t->quantity, 0);
        user_orders += t->orders;
    }
    /* And nothing is missing: every order is in some day. */
    cr_assert_eq(seen, st->totals.orders);
    cr_assert_eq(user_orders, st->totals.orders);
}

Test(days, per_day_figures_equal_brute_force)
{
    op_state_t direct, pended;
    op_state_init(&direct, NULL);
    op_state_init(&pended, NULL);
    op_shard_t *w[2] = {op_shard_create(0), op_shard_create(1)};
    op_shard_t *pending = op_shard_create(-1);
    /* Day 0 starts at 2024-11-10 00:00 +08:00. */
    int64_t start = 1731168000000LL;
    day0 = op_shard_day(start, TZ_MS);
    cr_assert_eq(op_shard_day_start(day0, TZ_MS), start);
    cr_assert_eq(op_shard_day(start - 1, TZ_MS), day0 - 1);
    memset(want_brand, 0, sizeof(want_brand));
    memset(want_gender, 0, sizeof(want_gender));
    memset(want_user, 0, sizeof(want_user));
    int64_t clock = start + 12 * 3600 * 1000LL;
    for (int tick = 0; tick < 400; tick++) {
        int n = (int)(next() % 300);
        for (int i = 0; i < n; i++) {
            /* Time moves forward ~10 min per tick; orders lag up to an hour
             * behind it, and a few are days late. */
            clock += (int64_t)(next() % 3000);
            int64_t lag = (int64_t)(next() % 3600000);
            if (next() % 50 == 0)
                lag += (int64_t)(next() % (2 * OP_DAY_MS));
            order_t o = {.user = (int)(next() % NUSERS),
                         .gender = (int)(next() % NGEND),
                         .brand = (int)(next() % NBRANDS),
                         .event_ms = clock - lag,
                         .num = 1 + (int64_t)(next() % 5),
                         .amount = (int64_t)(next() % 100000)};
            if (o.event_ms < start)
                o.event_ms = start + (int64_t)(next() % 1000);
            uint32_t d = op_shard_day(o.event_ms, TZ_MS) - day0;
            cr_assert(d < NDAYS, "the test's clock ran past its days");
            op_tally_t one = {1, o.num, o.amount};
            op_tally_add(&want_brand[d][o.brand], &one);
            op_tally_add(&want_gender[d][o.gender], &one);
            want_user[d][o.user].orders++;
            want_user[d][o.user].amount += o.amount;
            add(w[next() & 1], &o);
        }
        for (int k = 0; k < 2; k++) {
            op_state_merge(&direct, w[k], 0);
            op_shard_add(pending, w[k]);
            op_shard_clear(w[k]);
        }
        /* The pending shard spans several ticks, as while Redis is down. */
        if (next() % 7 == 0) {
            op_state_merge(&pended, pending, 0);
            op_shard_clear(pending);
        }
    }
    op_state_merge(&pended, pending, 0);
    check(&direct);
    check(&pended);
    op_shard_destroy(w[0]);
    op_shard_destroy(w[1]);
    op_shard_destroy(pending);
    op_state_dispose(&direct);
    op_state_dispose(&pended);
}

Test(days, an_empty_state_takes_a_shards_users_with_their_days)
{
    op_state_t st;
    op_state_init(&st, NULL);
    op_shard_t *s = op_shard_create(0);
    int64_t start = 1731168000000LL;
    day0 = op_shard_day(start, TZ_MS);
    memset(want_brand, 0, sizeof(want_brand));
    memset(want_gender, 0, sizeof(want_gender));
    memset(want_user, 0, sizeof(want_user));
    /* One shard, as a replay's first tick: orders of every day, so that
     * most users have off-day entries keyed by their shard entry. */
    for (int i = 0; i < 5000; i++) {
        order_t o = {.user = (int)(next() % NUSERS),
                     .gender = (int)(next() % NGEND),
                     .brand = (int)(next() % NBRANDS),
                     .event_ms = start + (int64_t)(next() % (NDAYS * OP_DAY_MS)),
                     .num = 1 + (int64_t)(next() % 5),
                     .amount = (int64_t)(next() % 100000)};
        uint32_t d = op_shard_day(o.event_ms, TZ_MS) - day0;
        op_tally_t one = {1, o.num, o.amount};
        op_tally_add(&want_brand[d][o.brand], &one);
        op_tally_add(&want_gender[d][o.gender], &one);
        want_user[d][o.user].orders++;
        want_user[d][o.user].amount += o.amount;
        add(s, &o);
    }
    cr_assert_gt(s->user_offday.count, 0);
    op_state_merge_taking(&st, s, 0);
    cr_assert_eq(s->users.count, 0, "the state took the table");
    cr_assert_eq(st.users.count, NUSERS);
    check(&st);
    op_shard_clear(s);
    op_shard_destroy(s);
    op_state_dispose(&st);
}

Test(days, without_days_nothing_is_kept)
{
    op_state_t st;
    op_state_init(&st, NULL);
    op_shard_t *s = op_shard_create(0);
    op_tally_t one = {1, 2, 300};
    op_tally_add(op_ktable_upsert(&s->brands, 1), &one);
    uint32_t e = op_users_upsert(&s->users, "u", 1, op_hash_bytes("u", 1));
    s->users.ent[e].orders = 1;
    op_state_merge(&st, s, 0);
    cr_assert_eq(st.brand_days.count + st.gender_days.count + st.user_days.count, 0);
    op_shard_destroy(s);
    op_state_dispose(&st);
}

Test(days, eviction_keeps_the_days_within_the_retention)
{
    op_state_t st;
    op_state_init(&st, NULL);
    st.tz_ms = TZ_MS;
    int64_t start = 1731168000000LL; /* a day's start at +08:00 */
    uint32_t d = op_shard_day(start, TZ_MS);
    for (uint32_t i = 0; i < 3; i++) {
        op_ktable_upsert(&st.brand_days, op_ktable_pair(d + i, 5))->orders = 1;
        op_ktable_upsert(&st.user_days, op_shard_user_day(d + i, 7))->orders = 1;
    }
    /* The cutoff falls into day d + 1: day d goes, d + 1 stays. */
    st.watermark_ms = start + OP_DAY_MS + 3600000 + 86400000;
    op_state_evict(&st, 86400000);
    cr_assert_null(op_ktable_find(&st.brand_days, op_ktable_pair(d, 5)));
    cr_assert_not_null(op_ktable_find(&st.brand_days, op_ktable_pair(d + 1, 5)));
    cr_assert_not_null(op_ktable_find(&st.user_days, op_shard_user_day(d, 7)),
                       "the users' days go after the archive took the tick's rows");
    op_state_evict_user_days(&st, 86400000);
    cr_assert_null(op_ktable_find(&st.user_days, op_shard_user_day(d, 7)));
    cr_assert_not_null(op_ktable_find(&st.user_days, op_shard_user_day(d + 2, 7)));
    op_state_dispose(&st);
}

Test(days, merges_note_the_final_windows_they_change)
{
    op_state_t st;
    op_state_init(&st, NULL);
    st.tz_ms = TZ_MS;
    int64_t start = 1731168000000LL; /* a day's start at +08:00 */
    uint32_t d = op_shard_day(start, TZ_MS);
    op_shard_t *s = op_shard_create(0);
    /* Orders of day d - 1 (over) and d (open); minutes either side of the
     * watermark. */
    order_t old = {
        .user = 1, .gender = 0, .brand = 2, .event_ms = start - 1000, .num = 1, .amount = 100};
    order_t now = {
        .user = 1, .gender = 1, .brand = 3, .event_ms = start + 600000, .num = 2, .amount = 250};
    add(s, &now);
    add(s, &old);
    op_tally_t one = {1, 1, 100};
    op_tally_add(op_ktable_upsert(&s->minutes, (uint64_t)(start - 1000) / OP_MINUTE_MS), &one);
    op_tally_add(op_ktable_upsert(&s->minutes, (uint64_t)(start + 600000) / OP_MINUTE_MS), &one);
    st.watermark_ms = start + 60000;
    op_state_merge(&st, s, 0); /* not tracking: nothing noted */
    op_state_settle_days(&st);
    cr_assert_eq(st.rewrite.minutes.count + st.rewrite.user_days.count, 0);
    st.track_rewrites = 1;
    op_state_merge(&st, s, 0);
    op_state_settle_days(&st);
    cr_assert_eq(st.rewrite.minutes.count, 1);
    cr_assert_not_null(
        op_ktable_find(&st.rewrite.minutes, (uint64_t)(start - 1000) / OP_MINUTE_MS));
    cr_assert_eq(st.rewrite.brand_days.count, 1);
    cr_assert_not_null(op_ktable_find(&st.rewrite.brand_days, op_ktable_pair(d - 1, 2)));
    cr_assert_eq(st.rewrite.gender_days.count, 1);
    cr_assert_eq(st.rewrite.user_days.count, 1);
    uint64_t k = UINT64_MAX;
    for (uint32_t i = 0; i < st.rewrite.user_days.cap; i++)
        if (op_ktable_used(&st.rewrite.user_days, i))
            k = op_ktable_key(&st.rewrite.user_days, i);
    cr_assert_eq((uint32_t)(k >> 32), d - 1);
    cr_assert_eq(op_ktable_find(&st.user_days, k)->amount, 200, "two merges of one order");
    op_shard_destroy(s);
    op_state_dispose(&st);
}
