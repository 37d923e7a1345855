/* test_sim.c — the simulator's modules: RNG and Zipf, formatting, catalogue,
 * the generator (checked against the engine's own parser), the truth
 * document and the option checks.
 *
 * The generator test is the contract between the two halves of the project:
 * every good record must parse to exactly the values the generator says it
 * wrote, and every malformed kind must be rejected for the reason it was
 * made for.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conf.h"
#include "engine/parse.h"
#include "sim/catalog.h"
#include "sim/fmt.h"
#include "sim/gen.h"
#include "sim/options.h"
#include "sim/rng.h"
#include "sim/truth.h"
#include "sim/zipf.h"

#define START_MS 1731233400000LL /* 2024-11-10 10:10:00 UTC */

static void default_opts(op_gen_opts_t *o)
{
    char err[256];
    memset(o, 0, sizeof(*o));
    o->seed = 1;
    o->users = 100000;
    o->zipf_s = 1.1;
    cr_assert_eq(op_gen_parse_genders(o, "男:0.5,女:0.5", err, sizeof(err)), 0, "%s", err);
    o->rate = 1000;
    o->start_ms = START_MS;
    o->speed = 1;
    o->tz_offset_s = 8 * 3600;
    o->time_field = OP_GEN_TIME_BOTH;
}

static void gen_init(op_gen_t *g, const op_gen_opts_t *o)
{
    char err[256];
    cr_assert_eq(op_gen_init(g, o, err, sizeof(err)), 0, "%s", err);
}

/* ---- rng and zipf ---------------------------------------------------------------- */

Test(rng, same_seed_same_sequence_other_seed_other_sequence)
{
    op_rng_t a, b, c;
    op_rng_init(&a, 42);
    op_rng_init(&b, 42);
    op_rng_init(&c, 43);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = op_rng_next(&a), y = op_rng_next(&b), z = op_rng_next(&c);
        cr_assert_eq(x, y);
        differ += x != z;
    }
    cr_expect_gt(differ, 990);
}

Test(rng, below_and_double_stay_in_range)
{
    op_rng_t r;
    op_rng_init(&r, 7);
    uint64_t hist[6] = {0};
    for (int i = 0; i < 600000; i++) {
        uint64_t v = op_rng_below(&r, 6);
        cr_assert_lt(v, 6);
        hist[v]++;
        double d = op_rng_double(&r);
        cr_assert(d >= 0.0 && d < 1.0);
    }
    for (int i = 0; i < 6; i++)
        cr_expect(hist[i] > 99000 && hist[i] < 101000, "bucket %d: %llu", i,
                  (unsigned long long)hist[i]);
}

static double harmonic(uint64_t n, double s)
{
    double h = 0;
    for (uint64_t k = n; k >= 1; k--) /* small terms first */
        h += pow((double)k, -s);
    return h;
}

static void check_zipf(uint64_t n, double s)
{
    op_zipf_t z;
    op_rng_t r;
    cr_assert_eq(op_zipf_init(&z, n, s), 0);
    op_rng_init(&r, 99);
    const int draws = 1000000;
    uint64_t c1 = 0, c2 = 0, c10 = 0;
    for (int i = 0; i < draws; i++) {
        uint64_t k = op_zipf_draw(&z, &r);
        cr_assert(k >= 1 && k <= n, "rank %llu outside 1..%llu", (unsigned long long)k,
                  (unsigned long long)n);
        c1 += k == 1;
        c2 += k == 2;
        c10 += k == 10;
    }
    double h = harmonic(n, s);
    const uint64_t got[] = {c1, c2, c10};
    const double rank[] = {1, 2, 10};
    for (int i = 0; i < 3; i++) {
        double p = rank[i] <= (double)n ? pow(rank[i], -s) / h : 0.0;
        double expect = p * draws, sd = sqrt(draws * p * (1 - p));
        cr_expect(fabs((double)got[i] - expect) <= 5 * sd,
                  "n=%llu s=%g rank %g: %llu draws, theory %.0f +- %.0f", (unsigned long long)n, s,
                  rank[i], (unsigned long long)got[i], expect, sd);
    }
}

Test(zipf, rank_frequencies_match_theory)
{
    check_zipf(100000, 1.1); /* the defaults */
    check_zipf(1000000, 1.1);
    check_zipf(1000, 1.0); /* the exponent where H has its pole */
    check_zipf(1000, 0.5);
    check_zipf(50, 0.0); /* uniform */
    check_zipf(1, 1.1);
}

Test(zipf, rejects_bad_parameters)
{
    op_zipf_t z;
    cr_expect_lt(op_zipf_init(&z, 0, 1.1), 0);
    cr_expect_lt(op_zipf_init(&z, 10, -1), 0);
    cr_expect_lt(op_zipf_init(&z, 10, NAN), 0);
    cr_expect_lt(op_zipf_init(&z, 10, INFINITY), 0);
}

/* ---- formatting ------------------------------------------------------------------ */

static void expect_fmt(char *end, char *buf, const char *want)
{
    *end = '\0';
    cr_expect_str_eq(buf, want);
}

Test(fmt, cents_print_exactly_with_two_decimals)
{
    char buf[64];
    expect_fmt(op_fmt_cents(buf, 0), buf, "0.00");
    expect_fmt(op_fmt_cents(buf, 5), buf, "0.05");
    expect_fmt(op_fmt_cents(buf, 10), buf, "0.10");
    expect_fmt(op_fmt_cents(buf, 100), buf, "1.00");
    expect_fmt(op_fmt_cents(buf, 599900), buf, "5999.00");
    expect_fmt(op_fmt_cents(buf, 1234567), buf, "12345.67");
    expect_fmt(op_fmt_cents(buf, -150), buf, "-1.50");
    expect_fmt(op_fmt_cents(buf, -7), buf, "-0.07");
    expect_fmt(op_fmt_cents(buf, INT64_MAX), buf, "92233720368547758.07");
    expect_fmt(op_fmt_cents(buf, INT64_MIN), buf, "-92233720368547758.08");
}

Test(fmt, integers)
{
    char buf[64];
    expect_fmt(op_fmt_u64(buf, 0), buf, "0");
    expect_fmt(op_fmt_u64(buf, 9), buf, "9");
    expect_fmt(op_fmt_u64(buf, 10), buf, "10");
    expect_fmt(op_fmt_u64(buf, 99), buf, "99");
    expect_fmt(op_fmt_u64(buf, 100), buf, "100");
    expect_fmt(op_fmt_u64(buf, 1731233400000ULL), buf, "1731233400000");
    expect_fmt(op_fmt_u64(buf, UINT64_MAX), buf, "18446744073709551615");
    expect_fmt(op_fmt_i64(buf, -42), buf, "-42");
    expect_fmt(op_fmt_i64(buf, INT64_MIN), buf, "-9223372036854775808");
    expect_fmt(op_fmt_u64_pad(buf, 42, 6), buf, "000042");
    /* Every value up to 10^6 against snprintf. */
    char want[32];
    for (uint64_t v = 0; v < 1000000; v += 7) {
        snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
        *op_fmt_u64(buf, v) = '\0';
        cr_assert_str_eq(buf, want);
    }
}

Test(fmt, local_time_matches_the_parser_both_ways)
{
    char buf[32];
    expect_fmt(op_fmt_local_time(buf, 1731233400, 8 * 3600), buf, "2024-11-10 18:10:00");
    expect_fmt(op_fmt_local_time(buf, 0, 0), buf, "1970-01-01 00:00:00");
    expect_fmt(op_fmt_local_time(buf, 951782400, 0), buf, "2000-02-29 00:00:00");
    expect_fmt(op_fmt_local_time(buf, 1704067199, -5 * 3600), buf, "2023-12-31 18:59:59");
    /* civil_from_days inverts the parser's days_from_civil for 1900..2400. */
    for (int64_t d = -25567; d < 157000; d++) {
        int64_t y;
        unsigned m, day;
        op_fmt_civil_from_days(d, &y, &m, &day);
        cr_assert_eq(op_parse_days_from_civil(y, m, day), d, "day %lld", (long long)d);
    }
}

/* ---- catalogue ------------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The names of users 0..n-1 are all different. */
static void expect_distinct_names(size_t n, size_t (*name_of)(uint64_t idx, char *buf))
{
    const size_t w = OP_CATALOG_USER_MAX + 1;
    char *names = malloc(n * w);
    cr_assert(names);
    for (size_t i = 0; i < n; i++) {
        size_t len = name_of(i, names + i * w);
        cr_assert(len > 0 && len <= OP_CATALOG_USER_MAX);
        names[i * w + len] = '\0';
    }
    qsort(names, n, w, cmp_names);
    for (size_t i = 1; i < n; i++)
        cr_assert_str_neq(names + (i - 1) * w, names + i * w, "duplicate user name");
    free(names);
}

Test(catalog, a_million_user_names_are_distinct)
{
    expect_distinct_names(1000000, op_catalog_user_name);
}

/* Users of the three sexes, mixed: their names never meet. */
static size_t name_of_mixed_sexes(uint64_t idx, char *buf)
{
    return op_catalog_user_name_as(idx, (op_catalog_sex_t)(idx % 3), buf);
}

Test(catalog, names_need_no_json_escaping)
{
    for (size_t i = 0; i < op_catalog_nbrands(); i++) {
        op_catalog_str_t b = op_catalog_brand(i);
        cr_expect(b.len > 0 && b.len == strlen(b.s));
        cr_expect(!strpbrk(b.s, "\"\\\n"));
    }
    for (size_t i = 0; i < op_catalog_ncategories(); i++) {
        const op_catalog_category_t *c = op_catalog_category(i);
        cr_expect(c->ngoods > 0 && c->median_cents > 0 && c->sigma > 0);
        for (uint32_t g = 0; g < c->ngoods; g++) {
            cr_expect(c->goods[g].brand < op_catalog_nbrands());
            cr_expect(c->goods[g].name.len == strlen(c->goods[g].name.s));
        }
    }
    cr_expect_eq(op_catalog_ncategories(), 10);
    for (uint64_t h = 1; h < 100000; h += 977) {
        uint64_t p = op_catalog_phone(op_rng_mix(h));
        cr_expect(p >= 13000000000ULL && p <= 19999999999ULL, "phone %llu", (unsigned long long)p);
    }
}

/* ---- the generator against the engine's parser ------------------------------------------- */

Test(gen, same_seed_same_bytes)
{
    op_gen_opts_t o;
    default_opts(&o);
    o.jitter_ms = 2000;
    o.late_fraction = 0.1;
    o.bad_fraction = 0.1;
    op_gen_t a, b, c;
    gen_init(&a, &o);
    gen_init(&b, &o);
    o.seed = 2;
    gen_init(&c, &o);
    static char ba[OP_GEN_MAX_RECORD], bb[OP_GEN_MAX_RECORD], bc[OP_GEN_MAX_RECORD];
    int differ = 0;
    for (int i = 0; i < 300000; i++) {
        op_gen_record_t ra, rb, rc;
        size_t la = op_gen_next(&a, 0, ba, &ra), lb = op_gen_next(&b, 0, bb, &rb);
        size_t lc = op_gen_next(&c, 0, bc, &rc);
        cr_assert_eq(la, lb, "record %d", i);
        cr_assert(memcmp(ba, bb, la) == 0, "record %d differs", i);
        cr_assert(memcmp(&ra, &rb, sizeof(ra)) == 0);
        differ += la != lc || memcmp(ba, bc, la) != 0;
    }
    cr_expect_gt(differ, 290000);
}

static int expect_str(op_str_t s, const char *want, size_t wantlen)
{
    return s.len == wantlen && memcmp(s.ptr, want, wantlen) == 0;
}

/* Reads the decimal text after "key": in the record and returns cents. */
static int64_t member_cents(const char *rec, size_t len, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = memmem(rec, len, pat, strlen(pat));
    cr_assert(p, "no %s in %.*s", key, (int)len, rec);
    p += strlen(pat);
    int neg = *p == '-';
    p += neg;
    int64_t whole = 0;
    while (*p >= '0' && *p <= '9')
        whole = whole * 10 + (*p++ - '0');
    cr_assert_eq(*p, '.', "%s has no two decimals", key);
    cr_assert(p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' &&
              !(p[3] >= '0' && p[3] <= '9'));
    int64_t c = whole * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    return neg ? -c : c;
}

static void check_against_parser(int time_field, int popularity)
{
    op_gen_opts_t o;
    default_opts(&o);
    o.jitter_ms = 2000;
    o.late_fraction = 0.05;
    o.bad_fraction = 0.2;
    o.time_field = time_field;
    o.popularity = popularity;
    o.sigma = 1.1;
    op_gen_t g;
    gen_init(&g, &o);
    op_parser_t ps;
    op_parse_init(&ps, o.tz_offset_s);

    /* The reason(s) each kind must be rejected for. A truncated record may
     * be cut inside a multi-byte character, and binary junk starts with a
     * byte >= 0x80: either is a UTF-8 error if the parser checks that first. */
    static const int want[OP_GEN_BAD_COUNT][2] = {
        [OP_GEN_BAD_TRUNCATED] = {OP_PARSE_SYNTAX, OP_PARSE_UTF8},
        [OP_GEN_BAD_UTF8] = {OP_PARSE_UTF8, OP_PARSE_UTF8},
        [OP_GEN_BAD_SURROGATE] = {OP_PARSE_UTF8, OP_PARSE_UTF8},
        [OP_GEN_BAD_MISSING] = {OP_PARSE_MISSING, OP_PARSE_MISSING},
        [OP_GEN_BAD_NUM_STRING] = {OP_PARSE_TYPE, OP_PARSE_TYPE},
        [OP_GEN_BAD_NUM_ZERO] = {OP_PARSE_RANGE, OP_PARSE_RANGE},
        [OP_GEN_BAD_NEG_TOTAL] = {OP_PARSE_RANGE, OP_PARSE_RANGE},
        [OP_GEN_BAD_TRAILING] = {OP_PARSE_TRAILING, OP_PARSE_TRAILING},
        [OP_GEN_BAD_BINARY] = {OP_PARSE_SYNTAX, OP_PARSE_UTF8},
        [OP_GEN_BAD_DEEP] = {OP_PARSE_DEPTH, OP_PARSE_DEPTH},
        [OP_GEN_BAD_EMPTY] = {OP_PARSE_SYNTAX, OP_PARSE_SYNTAX},
    };
    uint64_t seen[OP_GEN_BAD_COUNT] = {0}, late = 0;
    static char buf[OP_GEN_MAX_RECORD];
    char name[OP_CATALOG_USER_MAX];
    for (int i = 0; i < 200000; i++) {
        op_gen_record_t rec;
        size_t len = op_gen_next(&g, 0, buf, &rec);
        cr_assert_leq(len, OP_GEN_MAX_RECORD);
        cr_assert(!memchr(buf, '\n', len) && !memchr(buf, '\r', len),
                  "a record would break JSONL framing");
        cr_assert_lt(rec.bad, OP_GEN_BAD_COUNT);
        seen[rec.bad]++;
        op_order_t ord;
        int rc = op_parse_order(&ps, buf, len, &ord);
        if (rec.bad) {
            cr_assert_lt(rc, 0, "bad kind %s accepted: %.*s", op_gen_bad_name(rec.bad), (int)len,
                         buf);
            cr_assert(-rc == want[rec.bad][0] || -rc == want[rec.bad][1],
                      "bad kind %s rejected as %s: %.*s", op_gen_bad_name(rec.bad),
                      op_parse_reason_name(rc), (int)len, buf);
            continue;
        }
        cr_assert_eq(rc, 0, "good record rejected (%s): %.*s", op_parse_reason_name(rc), (int)len,
                     buf);
        late += rec.late;
        size_t nl = op_gen_user_name(&g, rec.user, name);
        if (popularity == OP_GEN_POP_ZIPF) { /* the earlier generator's names */
            char old[OP_CATALOG_USER_MAX];
            cr_assert(expect_str(ord.user, old, op_catalog_user_name(rec.user, old)));
        }
        const op_catalog_category_t *c = op_catalog_category(rec.category);
        op_catalog_str_t b = op_catalog_brand(rec.brand);
        cr_assert(expect_str(ord.user, name, nl), "%.*s", (int)len, buf);
        cr_assert(
            expect_str(ord.gender, o.gender_names[rec.gender], strlen(o.gender_names[rec.gender])));
        cr_assert_eq(rec.gender, op_gen_user_gender(&g, rec.user), "a user changed gender");
        cr_assert(expect_str(ord.category, c->name.s, c->name.len));
        cr_assert(expect_str(ord.brand, b.s, b.len));
        cr_assert_eq(ord.num, rec.num);
        cr_assert(rec.num >= 1 && rec.num <= 5);
        cr_assert_eq(ord.amount, rec.amount);
        cr_assert_eq(ord.event_ms, rec.event_ms, "%.*s", (int)len, buf);
        if (time_field == OP_GEN_TIME_STRING)
            cr_assert_eq(rec.event_ms % 1000, 0);
        /* totalPrice = price x num, exactly, in the text itself. */
        int64_t price = member_cents(buf, len, "price");
        cr_assert_eq(price, rec.price);
        cr_assert_eq(member_cents(buf, len, "totalPrice"), price * rec.num);
        cr_assert(price >= 100);
    }
    for (int k = 1; k < OP_GEN_BAD_COUNT; k++)
        cr_expect_gt(seen[k], 1000, "bad kind %s generated %llu times", op_gen_bad_name(k),
                     (unsigned long long)seen[k]);
    cr_expect(seen[0] > 155000 && seen[0] < 165000);
    cr_expect_gt(late, 1000);
}

Test(gen, records_parse_to_what_was_generated_both)
{
    check_against_parser(OP_GEN_TIME_BOTH, OP_GEN_POP_LOGNORMAL);
    check_against_parser(OP_GEN_TIME_BOTH, OP_GEN_POP_ZIPF);
}

Test(gen, records_parse_to_what_was_generated_string)
{
    check_against_parser(OP_GEN_TIME_STRING, OP_GEN_POP_LOGNORMAL);
}

Test(gen, records_parse_to_what_was_generated_series)
{
    check_against_parser(OP_GEN_TIME_SERIES, OP_GEN_POP_ZIPF);
}

static int cmp_u32_desc(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The default popularity: nobody buys more than a fraction of a percent of
 * the orders, and the heaviest fifth of the users buy about 60 % of them. */
Test(gen, lognormal_popularity_is_realistic)
{
    op_gen_opts_t o;
    default_opts(&o);
    o.popularity = OP_GEN_POP_LOGNORMAL;
    o.sigma = 1.1;
    double top = op_gen_top_user_share(&o);
    cr_expect(top > 0.0005 && top < 0.001, "top user share %g", top);
    op_gen_opts_t z = o;
    z.popularity = OP_GEN_POP_ZIPF;
    cr_expect_gt(op_gen_top_user_share(&z), 0.09, "the earlier Zipf law: a tenth of all orders");

    op_gen_t g;
    gen_init(&g, &o);
    uint32_t *orders = calloc(o.users, sizeof(*orders));
    cr_assert(orders);
    const uint64_t n = 2000000;
    static char buf[OP_GEN_MAX_RECORD];
    for (uint64_t i = 0; i < n; i++) {
        op_gen_record_t rec;
        op_gen_next(&g, 0, buf, &rec);
        cr_assert_lt(rec.user, o.users);
        orders[rec.user]++;
    }
    cr_expect(orders[0] > 0.7 * top * n && orders[0] < 1.3 * top * n,
              "user 0 has %u orders, %g expected", orders[0], top * n);
    qsort(orders, o.users, sizeof(*orders), cmp_u32_desc);
    cr_expect_lt(orders[0], 0.002 * n, "the heaviest user has %u of %llu orders", orders[0],
                 (unsigned long long)n);
    uint64_t fifth = 0;
    for (uint64_t u = 0; u < o.users / 5; u++)
        fifth += orders[u];
    double share = (double)fifth / (double)n;
    cr_expect(share > 0.57 && share < 0.65, "the top 20 %% of users have %.3f of the orders",
              share);
    free(orders);
}

/* The given name of a name: what follows the one-character surname, up to
 * the digits of the suffix. */
static void given_name(const char *name, size_t len, char *out)
{
    size_t end = len;
    while (end > 3 && name[end - 1] >= '0' && name[end - 1] <= '9')
        end--;
    memcpy(out, name + 3, end - 3);
    out[end - 3] = '\0';
}

Test(gen, names_agree_with_the_gender)
{
    op_gen_opts_t o;
    default_opts(&o);
    o.popularity = OP_GEN_POP_LOGNORMAL;
    o.sigma = 1.1;
    op_gen_t g;
    gen_init(&g, &o);
    /* Given names seen for each gender: the two sets must not meet. */
    static char seen[2][64][OP_CATALOG_USER_MAX + 1];
    int nseen[2] = {0, 0};
    char name[OP_CATALOG_USER_MAX + 1], given[OP_CATALOG_USER_MAX + 1];
    for (uint64_t u = 0; u < 20000; u++) {
        unsigned gd = op_gen_user_gender(&g, u);
        size_t len = op_gen_user_name(&g, u, name);
        given_name(name, len, given);
        if (!strcmp(given, "芳") || !strcmp(given, "婷") || !strcmp(given, "秀英"))
            cr_assert_str_eq(o.gender_names[gd], "女", "%.*s is a woman's name", (int)len, name);
        if (!strcmp(given, "伟") || !strcmp(given, "强") || !strcmp(given, "建国"))
            cr_assert_str_eq(o.gender_names[gd], "男", "%.*s is a man's name", (int)len, name);
        int k = 0;
        while (k < nseen[gd] && strcmp(seen[gd][k], given))
            k++;
        if (k == nseen[gd]) {
            cr_assert_lt(nseen[gd], 64);
            snprintf(seen[gd][nseen[gd]++], sizeof(seen[gd][0]), "%s", given);
        }
    }
    for (int a = 0; a < nseen[0]; a++)
        for (int b = 0; b < nseen[1]; b++)
            cr_assert_str_neq(seen[0][a], seen[1][b], "a given name used for both genders");
    cr_expect_gt(nseen[0], 20);
    cr_expect_gt(nseen[1], 20);

    /* Names stay distinct across genders and for labels of no known sex. */
    cr_expect_eq(op_catalog_sex_of("女"), OP_CATALOG_FEMALE);
    cr_expect_eq(op_catalog_sex_of("M"), OP_CATALOG_MALE);
    cr_expect_eq(op_catalog_sex_of("未知"), OP_CATALOG_ANY);
    expect_distinct_names(300000, name_of_mixed_sexes);
}

Test(gen, key_order_and_time_fields)
{
    op_gen_opts_t o;
    default_opts(&o);
    op_gen_t g;
    static char buf[OP_GEN_MAX_RECORD + 1];
    op_gen_record_t rec;
    const char *keys[] = {"orderId",    "userName",  "gender",          "goods", "goodsType",
                          "brand",      "orderTime", "orderTimeSeries", "price", "num",
                          "totalPrice", "status",    "address",         "phone"};
    gen_init(&g, &o);
    size_t len = op_gen_next(&g, 0, buf, &rec);
    buf[len] = '\0';
    const char *p = buf;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char pat[32];
        snprintf(pat, sizeof(pat), "\"%s\":", keys[i]);
        const char *q = strstr(p, pat);
        cr_assert(q, "%s missing or out of order in %s", keys[i], buf);
        p = q + strlen(pat);
    }
    cr_expect(strstr(buf, "\"orderTime\":\"2024-11-10 18:10:00\""), "%s", buf);
    cr_expect(strstr(buf, "\"orderTimeSeries\":1731233400000,"), "%s", buf);

    o.time_field = OP_GEN_TIME_STRING;
    gen_init(&g, &o);
    buf[op_gen_next(&g, 0, buf, &rec)] = '\0';
    cr_expect(!strstr(buf, "orderTimeSeries") && strstr(buf, "\"orderTime\":"), "%s", buf);
    o.time_field = OP_GEN_TIME_SERIES;
    gen_init(&g, &o);
    buf[op_gen_next(&g, 0, buf, &rec)] = '\0';
    cr_expect(!strstr(buf, "\"orderTime\":") && strstr(buf, "orderTimeSeries"), "%s", buf);
}

Test(gen, simulated_clock_jitter_and_late)
{
    op_gen_opts_t o;
    default_opts(&o);
    o.rate = 3;
    o.speed = 2;
    o.jitter_ms = 2000;
    o.late_fraction = 0.5;
    op_gen_t g;
    gen_init(&g, &o);
    static char buf[OP_GEN_MAX_RECORD];
    uint64_t late = 0, n = 3000;
    for (uint64_t i = 0; i < n; i++) {
        op_gen_record_t rec;
        op_gen_next(&g, 0, buf, &rec);
        /* event_ms(i) = start + floor(i * 1000 * speed / R), before jitter/late */
        int64_t clock = START_MS + (int64_t)(i * 1000 * 2 / 3);
        int64_t back = clock - rec.event_ms;
        if (clock - START_MS < 130000) {
            cr_assert(!rec.late, "late before a watermark could exist");
        }
        if (rec.late) {
            late++;
            cr_assert(back >= 10000 && back <= 122000, "late by %lld", (long long)back);
        } else {
            cr_assert(back >= 0 && back <= 2000, "jitter of %lld", (long long)back);
        }
    }
    cr_expect(late > 1100 && late < 1450, "%llu late", (unsigned long long)late);
}

Test(gen, live_clock_is_used_without_start)
{
    op_gen_opts_t o;
    default_opts(&o);
    o.start_ms = -1;
    op_gen_t g;
    gen_init(&g, &o);
    static char buf[OP_GEN_MAX_RECORD];
    op_gen_record_t rec;
    op_gen_next(&g, 1800000000123LL, buf, &rec);
    cr_expect_eq(rec.event_ms, 1800000000123LL);
}

Test(gen, gender_shares_follow_the_weights)
{
    op_gen_opts_t o;
    char err[256];
    default_opts(&o);
    cr_assert_eq(op_gen_parse_genders(&o, "男:3,女:1", err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(o.ngenders, 2);
    cr_expect(fabs(o.gender_weights[0] - 0.75) < 1e-12);
    op_gen_t g;
    gen_init(&g, &o);
    uint64_t male = 0;
    for (uint64_t u = 0; u < 100000; u++)
        male += op_gen_user_gender(&g, u) == 0;
    cr_expect(male > 74000 && male < 76000, "%llu", (unsigned long long)male);
}

Test(gen, gender_spec_errors)
{
    op_gen_opts_t o;
    char err[256];
    const char *bad[] = {"",
                         "男",
                         "男:0",
                         "男:-1",
                         "男:x",
                         ":1",
                         "男:1,",
                         "男:1,男:1",
                         "a\"b:1",
                         "a\\b:1",
                         "\xff:1",
                         "男:1,,女:1",
                         "a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1,i:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&o, 0, sizeof(o));
        err[0] = '\0';
        cr_expect_lt(op_gen_parse_genders(&o, bad[i], err, sizeof(err)), 0, "'%s' accepted",
                     bad[i]);
        cr_expect(strstr(err, "--genders") != NULL, "message for '%s': %s", bad[i], err);
    }
}

/* ---- truth ------------------------------------------------------------------------- */

static op_gen_record_t record(uint64_t user, unsigned gender, unsigned cat, unsigned brand, int num,
                              int64_t price, int64_t event_ms)
{
    op_gen_record_t r;
    memset(&r, 0, sizeof(r));
    r.user = user;
    r.gender = (uint8_t)gender;
    r.category = (uint8_t)cat;
    r.brand = (uint16_t)brand;
    r.num = num;
    r.price = price;
    r.amount = price * num;
    r.event_ms = event_ms;
    return r;
}

Test(truth, document_shape_sums_and_orders)
{
    op_gen_opts_t o;
    default_opts(&o);
    o.users = 10;
    op_truth_t *t;
    cr_assert_eq(op_truth_create(&t, &o), 0);
    /* brands 1 (华为) and 2 (小米); categories 0 (手机数码) and 2 (服装) */
    op_gen_record_t r;
    r = record(0, 0, 0, 1, 2, 100050, START_MS + 1000); /* 2 x 1000.50 */
    op_truth_add(t, &r);
    r = record(1, 1, 2, 2, 1, 19900, START_MS + 61000);
    r.late = 1;
    op_truth_add(t, &r);
    r = record(1, 1, 0, 2, 1, 5, START_MS - 1); /* the minute before */
    op_truth_add(t, &r);
    r = record(2, 1, 2, 2, 2, 1, START_MS + 700000); /* the next 10-minute slot */
    op_truth_add(t, &r);
    r = record(3, 0, 0, 0, 1, 1, START_MS);
    r.bad = OP_GEN_BAD_EMPTY; /* counted as bad only */
    op_truth_add(t, &r);
    cr_expect_eq(op_truth_good(t), 4);
    cr_expect_eq(op_truth_bad(t), 1);
    cr_expect_eq(op_truth_late(t), 1);

    char *doc = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&doc, &len);
    cr_assert(f);
    cr_assert_eq(op_truth_write(t, f, 1731233461000LL), 0);
    fclose(f);
    char names[3][OP_CATALOG_USER_MAX + 1];
    for (int u = 0; u < 3; u++)
        names[u][op_catalog_user_name((uint64_t)u, names[u])] = '\0';
    char want[4096];
    snprintf(
        want, sizeof(want),
        "{\"as_of\":1731233461000,\"watermark\":1731234095000,\"tick\":0,\"tick_ms\":0,\"display_"
        "timezone\":\"+08:00\","
        "\"totals\":{\"orders\":4,\"quantity\":6,\"amount\":2200.07},"
        "\"minutes\":[{\"minute\":1731233340000,\"orders\":1,\"quantity\":1,\"amount\":0.05,"
        "\"state\":\"final\",\"final\":true},"
        "{\"minute\":1731233400000,\"orders\":1,\"quantity\":2,\"amount\":2001.00,\"state\":"
        "\"final\",\"final\":true},"
        "{\"minute\":1731233460000,\"orders\":1,\"quantity\":1,\"amount\":199.00,\"state\":"
        "\"final\",\"final\":true},"
        "{\"minute\":1731234060000,\"orders\":1,\"quantity\":2,\"amount\":0.02,\"state\":\"final\","
        "\"final\":true}],"
        "\"categories\":["
        "{\"minute\":1731233340000,\"state\":\"final\",\"ranking\":[{\"name\":\"手机数码\","
        "\"quantity\":1,"
        "\"amount\":0.05}]},"
        "{\"minute\":1731233400000,\"state\":\"final\",\"ranking\":[{\"name\":\"手机数码\","
        "\"quantity\":2,"
        "\"amount\":2001.00}]},"
        "{\"minute\":1731233460000,\"state\":\"final\",\"ranking\":[{\"name\":\"服装\","
        "\"quantity\":1,"
        "\"amount\":199.00}]},"
        "{\"minute\":1731234060000,\"state\":\"final\",\"ranking\":[{\"name\":\"服装\","
        "\"quantity\":2,"
        "\"amount\":0.02}]}],"
        "\"brands\":[{\"name\":\"小米\",\"quantity\":4,\"amount\":199.07},"
        "{\"name\":\"华为\",\"quantity\":2,\"amount\":2001.00}],"
        "\"top_users\":[{\"name\":\"%s\",\"amount\":2001.00,\"orders\":1},"
        "{\"name\":\"%s\",\"amount\":199.05,\"orders\":2},"
        "{\"name\":\"%s\",\"amount\":0.02,\"orders\":1}],"
        "\"gender\":[{\"name\":\"男\",\"quantity\":2,\"amount\":2001.00,"
        "\"quantity_share\":0.333333,\"amount_share\":0.909517},"
        "{\"name\":\"女\",\"quantity\":4,\"amount\":199.07,"
        "\"quantity_share\":0.666667,\"amount_share\":0.090483}],"
        "\"gender_slots\":[{\"slot\":1731232800000,\"state\":\"final\",\"quantity\":{\"女\":1}},"
        "{\"slot\":1731233400000,\"state\":\"final\",\"quantity\":{\"男\":2,\"女\":1}},"
        "{\"slot\":1731234000000,\"state\":\"final\",\"quantity\":{\"女\":2}}],"
        "\"stats\":{\"bad_records\":1,\"late_records\":1,\"lag\":0}}\n",
        names[0], names[1], names[2]);
    cr_expect_str_eq(doc, want);
    free(doc);
    op_truth_destroy(t);
}

Test(truth, top_users_break_ties_by_name_and_keep_ten)
{
    op_gen_opts_t o;
    default_opts(&o);
    o.users = 1000;
    op_truth_t *t;
    cr_assert_eq(op_truth_create(&t, &o), 0);
    for (uint64_t u = 0; u < 1000; u++) {
        op_gen_record_t r = record(u, 0, 0, 0, 1, u < 500 ? 700 : 100, START_MS);
        op_truth_add(t, &r);
    }
    char *doc = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&doc, &len);
    cr_assert_eq(op_truth_write(t, f, 0), 0);
    fclose(f);
    /* The ten names bytewise smallest among the 500 users with 7.00. */
    char(*names)[OP_CATALOG_USER_MAX + 1] = calloc(500, sizeof(*names));
    for (uint64_t u = 0; u < 500; u++)
        names[u][op_catalog_user_name(u, names[u])] = '\0';
    qsort(names, 500, sizeof(*names), cmp_names);
    const char *p = strstr(doc, "\"top_users\":[");
    cr_assert(p);
    for (int i = 0; i < 10; i++) {
        char want[96];
        snprintf(want, sizeof(want), "{\"name\":\"%s\",\"amount\":7.00,\"orders\":1}", names[i]);
        const char *q = strstr(p, want);
        cr_assert(q, "top user %d should be %s: %s", i, names[i], p);
        p = q + strlen(want);
        cr_assert(*p == (i == 9 ? ']' : ','), "after %d: %.20s", i, p);
    }
    free(names);
    free(doc);
    op_truth_destroy(t);
}

/* ---- options --------------------------------------------------------------------- */

static int load(op_sim_options_t *o, char *err, size_t errlen, const char *const *args)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"orderpulse-sim";
    for (; *args; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    err[0] = '\0';
    return op_sim_options_load(o, argc, argv, err, errlen);
}

struct bad_case {
    const char *args[12];
    const char *needle; /* expected in the message */
};

Test(options, errors_are_negative_with_a_message_naming_the_flag)
{
    static const struct bad_case cases[] = {
        {{"--out", "x", "--count", "1", "--rate", "abc", NULL}, "--rate"},
        {{"--out", "x", "--count", "1", "--rate", "-5", NULL}, "--rate"},
        {{"--out", "x", "--count", "1", "--zipf", "-1", NULL}, "--zipf"},
        {{"--out", "x", "--count", "1", "--zipf", "1", "--popularity", "zipf", NULL}, "--zipf"},
        {{"--out", "x", "--count", "1", "--popularity", "pareto", NULL}, "--popularity"},
        {{"--out", "x", "--count", "1", "--popularity", "lognormal:-1", NULL}, "--popularity"},
        {{"--out", "x", "--count", "1", "--start", "2024-11-11T00:00:00+8", NULL}, "--start"},
        {{"--out", "x", "--count", "1", "--bogus", "1", NULL}, "--bogus"},
        {{"--out", "x", "--brokers", "h:1", "--count", "1", NULL}, "--brokers"},
        {{"--count", "1", NULL}, "--out"},
        {{"--out", "x", NULL}, "--count"},
        {{"--out", "x", "--count", "0", NULL}, "--count"},
        {{"--out", "x", "--duration", "soon", NULL}, "--duration"},
        {{"--out", "x", "--count", "1", "--users", "0", NULL}, "--users"},
        {{"--out", "x", "--count", "1", "--genders", "男", NULL}, "--genders"},
        {{"--out", "x", "--count", "1", "--start", "yesterday", NULL}, "--start"},
        {{"--out", "x", "--count", "1", "--start", "2024-02-30T00:00:00", NULL}, "--start"},
        {{"--out", "x", "--count", "1", "--start", "1000", NULL}, "--start"},
        {{"--out", "x", "--count", "1", "--speed", "0", NULL}, "--speed"},
        {{"--out", "x", "--count", "1", "--jitter", "-2s", NULL}, "--jitter"},
        {{"--out", "x", "--count", "1", "--late-fraction", "1.5", NULL}, "--late-fraction"},
        {{"--out", "x", "--count", "1", "--bad-fraction", "x", NULL}, "--bad-fraction"},
        {{"--out", "x", "--count", "1", "--timezone", "Mars", NULL}, "--timezone"},
        {{"--out", "x", "--count", "1", "--time-field", "epoch", NULL}, "--time-field"},
        {{"--brokers", "h:1", "--count", "1", "--key", "order", NULL}, "--key"},
        {{"--brokers", "h:1", "--count", "1", "--compression", "brotli", NULL}, "--compression"},
        {{"--out", "x", "--count", "1", "--seed", "1e3", NULL}, "--seed"},
        {{"--out", "x", "--count", NULL}, "--count"},
        {{"--out", "x", "--count", "1", "positional", NULL}, "positional"},
        {{"--out", "x", "--count", "1", "--config", "/nonexistent/sim.conf", NULL}, "sim.conf"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        op_sim_options_t o;
        char err[OP_CONF_ERRLEN];
        int rc = load(&o, err, sizeof(err), cases[i].args);
        cr_expect_lt(rc, 0, "case %zu (%s) accepted", i, cases[i].needle);
        cr_expect(strstr(err, cases[i].needle) != NULL, "case %zu: '%s' lacks '%s'", i, err,
                  cases[i].needle);
        cr_expect(!strchr(err, '\n'), "case %zu: message has a newline", i);
        op_sim_options_dispose(&o);
    }
}

Test(options, defaults_values_help_and_environment)
{
    op_sim_options_t o;
    char err[OP_CONF_ERRLEN];
    const char *a1[] = {"--out", "-", "--count", "10", NULL};
    cr_assert_eq(load(&o, err, sizeof(err), a1), 0, "%s", err);
    cr_expect_str_eq(o.out, "-");
    cr_expect_eq(o.count, 10);
    cr_expect_eq(o.duration_ms, -1);
    cr_expect_eq(o.rate, 1000);
    cr_expect_eq(o.gen.users, 100000);
    cr_expect_eq(o.gen.popularity, OP_GEN_POP_LOGNORMAL);
    cr_expect(fabs(o.gen.sigma - 1.1) < 1e-12);
    cr_expect_eq(o.gen.seed, 1);
    cr_expect_eq(o.gen.start_ms, -1);
    cr_expect_eq(o.gen.tz_offset_s, 8 * 3600);
    cr_expect_eq(o.gen.time_field, OP_GEN_TIME_BOTH);
    cr_expect_eq(o.gen.ngenders, 2);
    cr_expect_str_eq(o.gen.gender_names[0], "男");
    cr_expect_str_eq(o.compression, "lz4");
    cr_expect_str_eq(o.topic, "orders");
    op_sim_options_dispose(&o);

    const char *a2[] = {"--brokers",
                        "127.0.0.1:9092",
                        "--duration",
                        "1.5s",
                        "--start",
                        "2024-11-10T10:10:00Z",
                        "--time-field=string",
                        "--key",
                        "none",
                        NULL};
    cr_assert_eq(load(&o, err, sizeof(err), a2), 0, "%s", err);
    cr_expect_eq(o.duration_ms, 1500);
    cr_expect_eq(o.count, -1);
    cr_expect_eq(o.gen.start_ms, START_MS);
    cr_expect_eq(o.gen.time_field, OP_GEN_TIME_STRING);
    cr_expect_eq(o.key_mode, 2);
    op_sim_options_dispose(&o);

    const char *a3[] = {"--rate", "abc", "--help", NULL};
    cr_expect_eq(load(&o, err, sizeof(err), a3), OP_CONF_HELP);
    op_sim_options_dispose(&o);

    setenv("ORDERPULSE_SIM_RATE", "250", 1);
    setenv("ORDERPULSE_SIM_LATE_FRACTION", "0.25", 1);
    const char *a4[] = {"--out", "-", "--count", "1", NULL};
    cr_assert_eq(load(&o, err, sizeof(err), a4), 0, "%s", err);
    cr_expect_eq(o.rate, 250);
    cr_expect(fabs(o.gen.late_fraction - 0.25) < 1e-12);
    op_sim_options_dispose(&o);
    const char *a5[] = {"--out", "-", "--count", "1", "--rate", "7", NULL};
    cr_assert_eq(load(&o, err, sizeof(err), a5), 0, "%s", err);
    cr_expect_eq(o.rate, 7, "the command line wins over the environment");
    op_sim_options_dispose(&o);
}

Test(options, start_times)
{
    int64_t ms;
    cr_expect_eq(op_sim_parse_start("1731233400000", &ms), 0);
    cr_expect_eq(ms, START_MS);
    cr_expect_eq(op_sim_parse_start("2024-11-10T10:10:00", &ms), 0);
    cr_expect_eq(ms, START_MS);
    cr_expect_eq(op_sim_parse_start("2024-11-10 10:10:00", &ms), 0);
    cr_expect_eq(ms, START_MS);
    cr_expect_eq(op_sim_parse_start("2024-02-29T00:00:00Z", &ms), 0);
    cr_expect_eq(ms, 1709164800000LL);
    /* The sales-day midnight in Beijing is 16:00 UTC the day before. */
    static const char *const zoned[] = {"2024-11-11T00:00:00+08:00", "2024-11-11T00:00:00+0800",
                                        "2024-11-11 00:00:00+08", "2024-11-10T11:00:00-05:00"};
    for (size_t i = 0; i < sizeof(zoned) / sizeof(zoned[0]); i++) {
        cr_expect_eq(op_sim_parse_start(zoned[i], &ms), 0, "%s", zoned[i]);
        cr_expect_eq(ms, 1731254400000LL, "%s", zoned[i]);
    }
    cr_expect_eq(op_sim_parse_start("2024-11-10T10:10:00+00:00", &ms), 0);
    cr_expect_eq(ms, START_MS);
    const char *bad[] = {"",
                         "2023-02-29T00:00:00",
                         "2024-11-10",
                         "2024-11-10T25:00:00",
                         "2024-11-10T10:10:00+8:00",
                         "2024-11-10T10:10:00+08:0",
                         "2024-11-10T10:10:00+15:00",
                         "2024-11-10T10:10:00 +08:00",
                         "2024-11-10T10:10:00Z+08:00",
                         "1970-01-01T00:00:00+01:00",
                         "-5",
                         "99999999999999999",
                         "1e12"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_lt(op_sim_parse_start(bad[i], &ms), 0, "'%s' accepted", bad[i]);
}
