/* test_state.c — the merger's state: the exact top-K against brute force
 * under random growing amounts (ties included), the users table across
 * rehashes, the ktable, the watermark and retention. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <urcu.h>

#include "engine/hash.h"
#include "engine/intern.h"
#include "engine/ktable.h"
#include "engine/shard.h"
#include "engine/state.h"
#include "engine/users.h"
#include "tests/unit/xorshift.h"

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint64_t next(void)
{
    return xorshift64(&rng);
}

#define NUSERS 3000

/* Brute force: rank of user i among all, by (amount desc, name asc). */
static int better(const int64_t *amount, const char names[][16], int a, int b)
{
    if (amount[a] != amount[b])
        return amount[a] > amount[b];
    return strcmp(names[a], names[b]) < 0;
}

Test(state, top_k_is_exact_under_random_growth)
{
    op_state_t st;
    op_state_init(&st, NULL);
    static int64_t amount[NUSERS];
    static char names[NUSERS][16];
    for (int i = 0; i < NUSERS; i++)
        snprintf(names[i], sizeof(names[i]), "u%04d", i);
    for (int round = 0; round < 200000; round++) {
        int u = (int)(next() % NUSERS);
        /* Small amounts from a few values: many ties to break by name. */
        int64_t add = (int64_t)(next() % 4) * 50;
        amount[u] += add;
        op_state_add_user(&st, names[u], strlen(names[u]), add, 1);
        if (round % 20000 != 19999)
            continue;
        uint32_t top[OP_STATE_TOPK];
        uint32_t n = op_state_top_users(&st, top, OP_STATE_TOPK);
        cr_assert_eq(n, OP_STATE_TOPK);
        int used[NUSERS] = {0};
        for (uint32_t k = 0; k < n; k++) {
            int best = -1;
            for (int i = 0; i < NUSERS; i++)
                if (!used[i] && (best < 0 || better(amount, names, i, best)))
                    best = i;
            used[best] = 1;
            size_t len;
            const char *got = op_users_name(&st.users, top[k], &len);
            cr_assert(len == strlen(names[best]) && !memcmp(got, names[best], len),
                      "round %d rank %u: got %.*s, want %s", round, k, (int)len, got, names[best]);
            cr_assert_eq(op_users_amount(&st.users, top[k]), amount[best]);
        }
    }
    op_state_dispose(&st);
}

/* Names of every length 1..OP_USERS_MAX_NAME (inline and arena-held),
 * distinct, from i. */
static size_t user_name(int i, char *buf)
{
    size_t len = 1 + (size_t)(i * 7919) % OP_USERS_MAX_NAME;
    int n = snprintf(buf, 32, "u%d-", i);
    for (size_t k = (size_t)n; k < len; k++)
        buf[k] = (char)('a' + (k * 31 + (size_t)i) % 26);
    return len < (size_t)n ? (size_t)n : len;
}

Test(state, users_table_survives_rehashes_and_clear)
{
    op_users_t u;
    op_users_init(&u);
    char name[OP_USERS_MAX_NAME + 32];
    for (int i = 0; i < 100000; i++) {
        size_t n = user_name(i, name);
        uint32_t e = op_users_upsert(&u, name, n, op_users_hash(name, n));
        cr_assert_eq(e, (uint32_t)i, "entries are numbered in insertion order");
        op_users_add(&u, e, i, 2);
    }
    cr_assert_eq(u.count, 100000);
    for (int i = 0; i < 100000; i++) {
        size_t n = user_name(i, name), len;
        uint32_t e = op_users_upsert(&u, name, n, op_users_hash(name, n));
        cr_assert_eq(e, (uint32_t)i);
        const char *got = op_users_name(&u, e, &len);
        cr_assert(len == n && memcmp(got, name, n) == 0, "name of %d", i);
        cr_assert_eq(op_users_find(&u, name, n, op_users_hash(name, n)), e);
        cr_assert_eq(op_users_amount(&u, e), i);
        cr_assert_eq(op_users_orders(&u, e), 2);
        /* One byte different, same length: not found. */
        name[n - 1] ^= 1;
        cr_assert_eq(op_users_find(&u, name, n, op_users_hash(name, n)), UINT32_MAX);
    }
    cr_assert_eq(u.count, 100000);
    cr_assert_eq(op_users_find(&u, "nobody", 6, op_users_hash("nobody", 6)), UINT32_MAX);

    /* Moving users to another table by their stored hash finds the same names. */
    op_users_t v;
    op_users_init(&v);
    for (uint32_t e = 0; e < u.count; e += 3) {
        size_t len;
        const char *n = op_users_name(&u, e, &len);
        op_users_add(&v, op_users_upsert(&v, n, len, op_users_hash_of(&u, e)), 1, 1);
    }
    for (int i = 0; i < 100000; i += 3) {
        size_t n = user_name(i, name);
        cr_assert_neq(op_users_find(&v, name, n, op_users_hash(name, n)), UINT32_MAX);
    }
    op_users_dispose(&v);

    op_users_clear(&u); /* big: released */
    cr_assert_eq(u.count, 0);
    cr_assert_eq(op_users_find(&u, "u1-", 3, op_users_hash("u1-", 3)), UINT32_MAX);
    uint32_t e = op_users_upsert(&u, "a", 1, op_users_hash("a", 1));
    cr_assert_eq(op_users_amount(&u, e), 0);
    op_users_clear(&u); /* small: kept, emptied */
    cr_assert_eq(u.count, 0);
    cr_assert_eq(op_users_find(&u, "a", 1, op_users_hash("a", 1)), UINT32_MAX);
    op_users_dispose(&u);
}

/* Merging shards (prefetching, stored hashes) gives what adding the same
 * users one by one gives. */
Test(state, merge_of_shards_equals_adding_users)
{
    op_state_t a, b;
    op_state_init(&a, NULL);
    op_state_init(&b, NULL);
    op_shard_t *s = op_shard_create(0);
    char name[OP_USERS_MAX_NAME + 32];
    for (int tick = 0; tick < 5; tick++) {
        for (int k = 0; k < 20000; k++) {
            int i = (int)(next() % 30000);
            int64_t cents = (int64_t)(next() % 1000);
            size_t n = user_name(i, name);
            op_users_add(&s->users, op_users_upsert(&s->users, name, n, op_users_hash(name, n)),
                         cents, 1);
            op_state_add_user(&b, name, n, cents, 1);
        }
        /* The first tick's table is taken, not copied; later ones merge. */
        uint32_t had = a.users.count;
        op_state_merge_taking(&a, s, 0);
        if (!had)
            cr_assert_eq(s->users.count, 0, "the empty state took the table");
        op_shard_clear(s);
    }
    cr_assert_eq(a.users.count, b.users.count);
    for (uint32_t e = 0; e < b.users.count; e++) {
        size_t len;
        const char *n = op_users_name(&b.users, e, &len);
        uint32_t f = op_users_find(&a.users, n, len, op_users_hash(n, len));
        cr_assert_neq(f, UINT32_MAX);
        cr_assert_eq(op_users_amount(&a.users, f), op_users_amount(&b.users, e));
        cr_assert_eq(op_users_orders(&a.users, f), op_users_orders(&b.users, e));
    }
    uint32_t ta[OP_STATE_TOPK], tb[OP_STATE_TOPK];
    uint32_t na = op_state_top_users(&a, ta, OP_STATE_TOPK),
             nb = op_state_top_users(&b, tb, OP_STATE_TOPK);
    cr_assert_eq(na, nb);
    for (uint32_t k = 0; k < na; k++) {
        size_t la, lb;
        const char *x = op_users_name(&a.users, ta[k], &la),
                   *y = op_users_name(&b.users, tb[k], &lb);
        cr_assert(la == lb && memcmp(x, y, la) == 0, "rank %u", k);
    }
    op_shard_destroy(s);
    op_state_dispose(&a);
    op_state_dispose(&b);
}

Test(state, ktable_add_find_drop)
{
    op_ktable_t a, b;
    op_ktable_init(&a);
    op_ktable_init(&b);
    for (uint64_t k = 0; k < 5000; k++) {
        op_ktable_upsert(&a, k)->orders += 1;
        op_ktable_upsert(&b, k * 2)->amount += 7;
    }
    op_ktable_add(&a, &b);
    cr_assert_eq(a.count, 7500);
    cr_assert_eq(op_ktable_find(&a, 4)->orders, 1);
    cr_assert_eq(op_ktable_find(&a, 4)->amount, 7);
    cr_assert_eq(op_ktable_find(&a, 9998)->orders, 0);
    cr_assert_null(op_ktable_find(&a, 9999));
    op_ktable_drop_below(&a, 5000);
    cr_assert_eq(a.count, 2500);
    cr_assert_null(op_ktable_find(&a, 4));
    cr_assert_not_null(op_ktable_find(&a, 5000));
    op_ktable_dispose(&a);
    op_ktable_dispose(&b);
}

Test(state, watermark_is_min_over_active_partitions_and_never_goes_back)
{
    op_state_t st;
    op_state_init(&st, NULL);
    st.nparts_seen = 3;
    st.parts[0] = (op_state_part_t){.max_event_ms = 100000, .last_active_ms = 1000};
    st.parts[1] = (op_state_part_t){.max_event_ms = 70000, .last_active_ms = 1000};
    st.parts[2] = (op_state_part_t){.max_event_ms = 10000, .last_active_ms = 0}; /* idle */
    st.max_event_ms = 100000;
    op_state_advance_watermark(&st, 5000, 500, 1200, 0);
    cr_assert_eq(st.watermark_ms, 65000);
    st.parts[1].max_event_ms = 60000; /* cannot happen, but must not move it back */
    op_state_advance_watermark(&st, 5000, 500, 1200, 0);
    cr_assert_eq(st.watermark_ms, 65000);
    op_state_advance_watermark(&st, 5000, 500, 1200, 1); /* end of input */
    cr_assert_eq(st.watermark_ms, 95000);
    op_state_dispose(&st);
}

/* A shard of worker w with one order at event_ms read from partition p. */
static op_shard_t *one_order(int w, int32_t p, int64_t event_ms, int64_t amount)
{
    op_shard_t *s = op_shard_create(w);
    op_tally_t t = {.orders = 1, .quantity = 1, .amount = amount};
    uint64_t minute = (uint64_t)(event_ms / OP_MINUTE_MS);
    op_tally_add(&s->totals, &t);
    op_tally_add(op_ktable_upsert(&s->minutes, minute), &t);
    op_tally_add(op_ktable_upsert(&s->catmin, op_ktable_pair(minute, 0)), &t);
    op_tally_add(op_ktable_upsert(&s->gslots, op_ktable_pair((uint64_t)(event_ms / OP_SLOT_MS), 0)),
                 &t);
    s->touched[p >> 6] |= 1ULL << (p & 63);
    s->parts[p] = (op_shard_part_t){.max_event_ms = event_ms, .next_offset = 1, .records = 1};
    return s;
}

static void merge_and_free(op_state_t *st, op_shard_t *s, int64_t now_ms)
{
    op_state_merge(st, s, now_ms);
    op_shard_destroy(s);
}

Test(state, watermark_not_held_back_by_idle_or_finished_partitions)
{
    op_state_t st;
    op_state_init(&st, NULL);
    /* Two chunks of a replayed file: worker 1's events are the newer. */
    merge_and_free(&st, one_order(0, 0, 100000, 100), 1000);
    merge_and_free(&st, one_order(1, 1, 400000, 100), 1000);
    op_state_advance_watermark(&st, 5000, 10000, 1000, 0);
    cr_assert_eq(st.watermark_ms, 95000, "the slower partition holds it");

    /* Worker 0's input ends (an empty final shard): its partition is done. */
    op_shard_t *last = op_shard_create(0);
    last->last = 1;
    merge_and_free(&st, last, 1100);
    op_state_advance_watermark(&st, 5000, 10000, 1100, 0);
    cr_assert_eq(st.watermark_ms, 395000, "a finished partition holds nothing back");

    /* Worker 1 reads on: the only partition left to hold it back. */
    merge_and_free(&st, one_order(1, 1, 500000, 100), 2000);
    op_state_advance_watermark(&st, 5000, 10000, 2000, 0);
    cr_assert_eq(st.watermark_ms, 495000);
    op_state_dispose(&st);

    op_state_init(&st, NULL);
    merge_and_free(&st, one_order(0, 0, 100000, 100), 1000);
    merge_and_free(&st, one_order(1, 1, 400000, 100), 1000);
    op_state_advance_watermark(&st, 5000, 10000, 5000, 0);
    cr_assert_eq(st.watermark_ms, 95000);
    op_state_advance_watermark(&st, 5000, 10000, 11001, 0); /* both idle */
    cr_assert_eq(st.watermark_ms, 395000, "every partition idle: max event time - lateness");
    op_state_dispose(&st);
}

Test(state, window_states_open_final_revised)
{
    op_state_t st;
    op_state_init(&st, NULL);
    const int64_t m0 = 1731283200000; /* a minute and a 10-minute slot start */
    cr_assert_eq(op_state_window(&st, m0, OP_MINUTE_MS, 0), OP_WINDOW_OPEN, "no watermark yet");
    cr_assert_eq(op_state_window(&st, m0, OP_MINUTE_MS, 1), OP_WINDOW_FINAL, "end of input");

    merge_and_free(&st, one_order(0, 0, m0 + 1000, 100), 1000);
    merge_and_free(&st, one_order(0, 0, m0 + 2 * OP_MINUTE_MS + 10000, 100), 1000);
    op_state_advance_watermark(&st, 5000, 10000, 1000, 0); /* m0 + 2 min + 5 s */
    cr_assert_eq(op_state_window(&st, m0, OP_MINUTE_MS, 0), OP_WINDOW_FINAL);
    cr_assert_eq(op_state_window(&st, m0 + OP_MINUTE_MS, OP_MINUTE_MS, 0), OP_WINDOW_FINAL);
    cr_assert_eq(op_state_window(&st, m0 + 2 * OP_MINUTE_MS, OP_MINUTE_MS, 0), OP_WINDOW_OPEN);
    cr_assert_eq(op_state_window(&st, m0, OP_SLOT_MS, 0), OP_WINDOW_OPEN);

    /* An order into the open minute revises nothing; a late one into m0 does. */
    merge_and_free(&st, one_order(0, 0, m0 + 2 * OP_MINUTE_MS + 11000, 100), 1100);
    cr_assert_eq(op_state_window(&st, m0 + 2 * OP_MINUTE_MS, OP_MINUTE_MS, 0), OP_WINDOW_OPEN);
    merge_and_free(&st, one_order(0, 0, m0 + 30000, 250), 1200);
    cr_assert_eq(op_state_window(&st, m0, OP_MINUTE_MS, 0), OP_WINDOW_REVISED);
    cr_assert_eq(op_state_window(&st, m0, OP_MINUTE_MS, 1), OP_WINDOW_REVISED);
    cr_assert_eq(op_state_window(&st, m0 + OP_MINUTE_MS, OP_MINUTE_MS, 0), OP_WINDOW_FINAL);
    const op_tally_t *rev = op_ktable_find(&st.revised_minutes, (uint64_t)(m0 / OP_MINUTE_MS));
    cr_assert_not_null(rev);
    cr_assert_eq(rev->orders, 1);
    cr_assert_eq(rev->amount, 250);
    cr_assert_eq(op_ktable_find(&st.minutes, (uint64_t)(m0 / OP_MINUTE_MS))->orders, 2);

    /* A slot closes once the watermark passes its end; a later order revises it. */
    merge_and_free(&st, one_order(0, 0, m0 + OP_SLOT_MS + 10000, 100), 1300);
    op_state_advance_watermark(&st, 5000, 10000, 1300, 0);
    cr_assert_eq(op_state_window(&st, m0, OP_SLOT_MS, 0), OP_WINDOW_FINAL);
    merge_and_free(&st, one_order(0, 0, m0 + 5 * OP_MINUTE_MS, 100), 1400);
    cr_assert_eq(op_state_window(&st, m0, OP_SLOT_MS, 0), OP_WINDOW_REVISED);

    /* Retention drops the revisions with their windows. */
    op_state_evict(&st, OP_MINUTE_MS);
    cr_assert_eq(st.revised_minutes.count, 0);
    op_state_dispose(&st);
}

Test(state, rate_over_the_last_ticks)
{
    op_state_t st;
    op_state_init(&st, NULL);
    st.totals.orders = 7000; /* loaded from Redis: history, not rate */
    op_state_note_tick(&st, 10000);
    cr_assert_eq(op_state_rate_centi(&st), 0, "one sample: no rate yet");
    st.totals.orders += 1500;
    op_state_note_tick(&st, 10500);
    cr_assert_eq(op_state_rate_centi(&st), 300000, "1500 orders in 0.5 s: 3000.00/s");
    for (int i = 1; i <= 100; i++) { /* 100 ticks of 100 ms, 10 orders each */
        st.totals.orders += 10;
        op_state_note_tick(&st, 10500 + 100 * i);
    }
    cr_assert_eq(op_state_rate_centi(&st), 10000, "100.00/s over the last window");
    op_state_dispose(&st);
}
