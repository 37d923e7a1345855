/* test_parse.c — the order parser against a table of valid and invalid records.
 *
 * Every rejection reason has cases here; the differential test (tests/tools/
 * parse_diff.c) covers the space between them with random documents.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/parse.h"

#define BASE_FIELDS                                                                                \
    "\"userName\":\"张伟\",\"gender\":\"男\",\"goodsType\":\"手机数码\",\"brand\":\"Apple\","

/* A complete order with the given num, totalPrice and time members spliced in. */
#define ORDER(num, price, time) "{" BASE_FIELDS "\"num\":" num ",\"totalPrice\":" price "," time "}"
#define TS                      "\"orderTimeSeries\":1731233400000"

static op_parser_t ps;

static void setup(void)
{
    op_parse_init(&ps, 8 * 3600);
}

TestSuite(parse, .init = setup);

static int parse(const char *doc, op_order_t *o)
{
    return op_parse_order(&ps, doc, strlen(doc), o);
}

static void expect_str(op_str_t s, const char *want, const char *doc)
{
    cr_expect(s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0,
              "got '%.*s', want '%s' in %s", (int)s.len, s.ptr, want, doc);
}

Test(parse, the_documented_example)
{
    const char *doc = "{\"orderId\":\"O1700000000000123\",\"userName\":\"张伟\",\"gender\":\"男\","
                      "\"goods\":\"iPhone 15\",\"goodsType\":\"手机数码\",\"brand\":\"Apple\","
                      "\"orderTime\":\"2024-11-10 18:10:00\",\"orderTimeSeries\":1731233400000,"
                      "\"price\":5999.00,\"num\":1,\"totalPrice\":5999.00,\"status\":\"paid\","
                      "\"address\":\"北京市朝阳区\",\"phone\":13800000000}";
    op_order_t o;
    cr_assert_eq(parse(doc, &o), 0);
    expect_str(o.user, "张伟", doc);
    expect_str(o.gender, "男", doc);
    expect_str(o.category, "手机数码", doc);
    expect_str(o.brand, "Apple", doc);
    cr_expect_eq(o.num, 1);
    cr_expect_eq(o.amount, 599900);
    cr_expect_eq(o.event_ms, 1731233400000LL);
}

struct amount_case {
    const char *text;
    int64_t cents;
};

Test(parse, amounts_are_exact_cents_rounded_half_up)
{
    static const struct amount_case cases[] = {
        {"0", 0},
        {"-0", 0},
        {"0.0", 0},
        {"5999", 599900},
        {"5999.00", 599900},
        {"0.05", 5},
        {"0.1", 10},
        {"12.345", 1235}, /* half-up, where binary floating point gives 1234 */
        {"12.3449999", 1234},
        {"1.005", 101},
        {"2.675", 268},
        {"0.004", 0},
        {"0.005", 1},
        {"0.00499999999999999999999", 0},
        {"1e2", 10000},
        {"1E+2", 10000},
        {"1.5e1", 1500},
        {"12345e-2", 12345},
        {"123456e-5", 123},
        {"123455e-5", 123},
        {"123456789e-3", 12345679},
        {"0.000000000000000000000000000001e30", 100},
        {"1000000000", 100000000000LL},
        {"999999999.995", 100000000000LL}, /* rounds up onto the limit: allowed */
        {"999999999.994", 99999999999LL},
        {"0e999999999999", 0},
        {"0.00000e-999999999999", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char doc[512];
        snprintf(doc, sizeof(doc), "{" BASE_FIELDS "\"num\":1,\"totalPrice\":%s," TS "}",
                 cases[i].text);
        op_order_t o;
        int rc = parse(doc, &o);
        cr_expect_eq(rc, 0, "%s rejected: %s", cases[i].text, op_parse_reason_name(rc));
        if (rc == 0)
            cr_expect_eq(o.amount, cases[i].cents, "%s -> %lld cents, want %lld", cases[i].text,
                         (long long)o.amount, (long long)cases[i].cents);
    }
}

Test(parse, integral_fields_accept_integral_decimal_and_exponent_forms)
{
    static const struct amount_case cases[] = {
        {"1", 1},     {"5", 5},     {"2.0", 2},           {"2e0", 2},
        {"0.2e1", 2}, {"20e-1", 2}, {"1000000", 1000000}, {"1e6", 1000000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char doc[512];
        snprintf(doc, sizeof(doc), "{" BASE_FIELDS "\"num\":%s,\"totalPrice\":1," TS "}",
                 cases[i].text);
        op_order_t o;
        int rc = parse(doc, &o);
        cr_expect_eq(rc, 0, "num %s rejected: %s", cases[i].text, op_parse_reason_name(rc));
        if (rc == 0)
            cr_expect_eq(o.num, cases[i].cents, "num %s -> %lld", cases[i].text, (long long)o.num);
    }
    op_order_t o;
    cr_expect_eq(parse(ORDER("1", "1", "\"orderTimeSeries\":1.7312334e12"), &o), 0);
    cr_expect_eq(o.event_ms, 1731233400000LL);
}

Test(parse, keys_in_any_order_with_whitespace_escapes_and_unknown_members)
{
    const char *doc = " \t\r\n{ \"totalPrice\" : 10.50 ,\n\"unknown\": {\"a\": [1, 2.5e-3, true, "
                      "false, null, {\"b\": []}, \"x\"]}, \"n\\u0075m\":\t3, \"orderTimeSeries\": "
                      "1000, \"brand\": \"A\\/B \\\"quoted\\\"\", \"gender\": \"\\u5973\", "
                      "\"goodsType\": \"\\ud83d\\ude00 emoji\", \"userName\": \"tab\\tnew\\nline\""
                      ", \"extra\": [] } \n ";
    op_order_t o;
    int rc = parse(doc, &o);
    cr_assert_eq(rc, 0, "rejected: %s at %zu", op_parse_reason_name(rc), ps.err_offset);
    cr_expect_eq(o.num, 3);
    cr_expect_eq(o.amount, 1050);
    cr_expect_eq(o.event_ms, 1000);
    expect_str(o.brand, "A/B \"quoted\"", doc);
    expect_str(o.gender, "女", doc);
    expect_str(o.category, "\xF0\x9F\x98\x80 emoji", doc);
    expect_str(o.user, "tab\tnew\nline", doc);
}

Test(parse, the_last_duplicate_key_wins)
{
    op_order_t o;
    const char *doc = "{" BASE_FIELDS "\"num\":0,\"totalPrice\":-1," TS
                      ",\"num\":2,\"totalPrice\":3,\"brand\":\"B\"}";
    cr_assert_eq(parse(doc, &o), 0);
    cr_expect_eq(o.num, 2);
    cr_expect_eq(o.amount, 300);
    expect_str(o.brand, "B", doc);
    cr_expect_eq(parse("{" BASE_FIELDS "\"num\":2,\"totalPrice\":3," TS ",\"num\":\"2\"}", &o),
                 -OP_PARSE_TYPE);
}

Test(parse, order_time_string_is_used_when_the_series_is_absent)
{
    op_order_t o;
    /* 2024-11-10 18:10:00 at +08:00 = 2024-11-10T10:10:00Z */
    cr_assert_eq(parse(ORDER("1", "1", "\"orderTime\":\"2024-11-10 18:10:00\""), &o), 0);
    cr_expect_eq(o.event_ms, 1731233400000LL);
    cr_assert_eq(parse(ORDER("1", "1", "\"orderTime\":\"2024-02-29 00:00:00\""), &o), 0);
    cr_expect_eq(o.event_ms, 1709164800000LL - 8 * 3600 * 1000);
    /* The series wins, and makes a broken orderTime irrelevant. */
    cr_assert_eq(parse(ORDER("1", "1", "\"orderTime\":\"garbage\"," TS), &o), 0);
    cr_expect_eq(o.event_ms, 1731233400000LL);
    op_parse_init(&ps, 0);
    cr_assert_eq(parse(ORDER("1", "1", "\"orderTime\":\"1970-01-01 00:00:01\""), &o), 0);
    cr_expect_eq(o.event_ms, 1000);
}

struct bad_case {
    const char *doc;
    int reason;
};

Test(parse, every_rejection_reason)
{
    static const struct bad_case cases[] = {
        /* syntax */
        {"", OP_PARSE_SYNTAX},
        {"   ", OP_PARSE_SYNTAX},
        {"{", OP_PARSE_SYNTAX},
        {"{\"userName\":\"a\"", OP_PARSE_SYNTAX},
        {"{\"userName\" \"a\"}", OP_PARSE_SYNTAX},
        {"{\"userName\":\"a\",}", OP_PARSE_SYNTAX},
        {"{userName:\"a\"}", OP_PARSE_SYNTAX},
        {"{'userName':'a'}", OP_PARSE_SYNTAX},
        {ORDER("01", "1", TS), OP_PARSE_SYNTAX},
        {ORDER("1.", "1", TS), OP_PARSE_SYNTAX},
        {ORDER(".5", "1", TS), OP_PARSE_SYNTAX},
        {ORDER("+1", "1", TS), OP_PARSE_SYNTAX},
        {ORDER("1e", "1", TS), OP_PARSE_SYNTAX},
        {ORDER("1", "NaN", TS), OP_PARSE_SYNTAX},
        {ORDER("1", "Infinity", TS), OP_PARSE_SYNTAX},
        {ORDER("1", "1", "\"x\":tru"), OP_PARSE_SYNTAX},
        {ORDER("1", "1", "\"x\":[1,]"), OP_PARSE_SYNTAX},
        {ORDER("1", "1", "\"x\":\"bad \\x escape\""), OP_PARSE_SYNTAX},
        {ORDER("1", "1", "\"x\":\"\\u12G4\""), OP_PARSE_SYNTAX},
        {ORDER("1", "1", "\"x\":\"raw\ttab\""), OP_PARSE_SYNTAX},
        {"\xEF\xBB\xBF{}", OP_PARSE_SYNTAX}, /* a BOM is not JSON */
        {"garbage", OP_PARSE_SYNTAX},
        /* utf8 */
        {ORDER("1", "1", "\"address\":\"\xFF\""), OP_PARSE_UTF8},
        {ORDER("1", "1", "\"address\":\"\xC0\xAF\""), OP_PARSE_UTF8},         /* overlong '/' */
        {ORDER("1", "1", "\"address\":\"\xED\xA0\x80\""), OP_PARSE_UTF8},     /* raw surrogate */
        {ORDER("1", "1", "\"address\":\"\xF4\x90\x80\x80\""), OP_PARSE_UTF8}, /* > U+10FFFF */
        {ORDER("1", "1", "\"address\":\"\xE6\x89\""), OP_PARSE_UTF8},         /* truncated */
        {ORDER("1", "1", "\"address\":\"\\ud800\""), OP_PARSE_UTF8},
        {ORDER("1", "1", "\"address\":\"\\udc00\""), OP_PARSE_UTF8},
        {ORDER("1", "1", "\"address\":\"\\ud800\\u0041\""), OP_PARSE_UTF8},
        {"{\"userName\":\"\\ud83d\",\"gender\":\"m\"}", OP_PARSE_UTF8},
        {"{\"\xFF\":1}", OP_PARSE_UTF8},
        /* not an object, trailing data */
        {"[]", OP_PARSE_NOT_OBJECT},
        {"\"order\"", OP_PARSE_NOT_OBJECT},
        {"42", OP_PARSE_NOT_OBJECT},
        {"null", OP_PARSE_NOT_OBJECT},
        {ORDER("1", "1", TS) "x", OP_PARSE_TRAILING},
        {ORDER("1", "1", TS) ORDER("1", "1", TS), OP_PARSE_TRAILING},
        {"{}}", OP_PARSE_TRAILING},
        /* missing fields */
        {"{}", OP_PARSE_MISSING},
        {ORDER("1", "1", "\"x\":1"), OP_PARSE_MISSING}, /* no event time */
        {"{\"gender\":\"男\",\"goodsType\":\"c\",\"brand\":\"b\",\"num\":1,\"totalPrice\":1," TS
         "}",
         OP_PARSE_MISSING},
        {"{\"userName\":\"u\",\"gender\":\"男\",\"goodsType\":\"c\",\"brand\":\"b\","
         "\"totalPrice\":1," TS "}",
         OP_PARSE_MISSING},
        {"{\"username\":\"u\",\"gender\":\"男\",\"goodsType\":\"c\",\"brand\":\"b\",\"num\":1,"
         "\"totalPrice\":1," TS "}",
         OP_PARSE_MISSING}, /* keys are case-sensitive */
        /* wrong types */
        {ORDER("\"2\"", "1", TS), OP_PARSE_TYPE},
        {ORDER("1", "\"1.00\"", TS), OP_PARSE_TYPE},
        {ORDER("1", "null", TS), OP_PARSE_TYPE},
        {ORDER("1", "[1]", TS), OP_PARSE_TYPE},
        {ORDER("true", "1", TS), OP_PARSE_TYPE},
        {ORDER("1.5", "1", TS), OP_PARSE_TYPE},
        {ORDER("15e-1", "1", TS), OP_PARSE_TYPE},
        {ORDER("1", "1", "\"orderTimeSeries\":\"1731233400000\""), OP_PARSE_TYPE},
        {ORDER("1", "1", "\"orderTimeSeries\":1731233400000.5"), OP_PARSE_TYPE},
        {"{\"userName\":42,\"gender\":\"男\",\"goodsType\":\"c\",\"brand\":\"b\",\"num\":1,"
         "\"totalPrice\":1," TS "}",
         OP_PARSE_TYPE},
        {"{\"userName\":\"u\",\"gender\":{\"x\":1},\"goodsType\":\"c\",\"brand\":\"b\","
         "\"num\":1,\"totalPrice\":1," TS "}",
         OP_PARSE_TYPE},
        /* out of range */
        {ORDER("0", "1", TS), OP_PARSE_RANGE},
        {ORDER("-1", "1", TS), OP_PARSE_RANGE},
        {ORDER("1000001", "1", TS), OP_PARSE_RANGE},
        {ORDER("1e300", "1", TS), OP_PARSE_RANGE},
        {ORDER("99999999999999999999999999", "1", TS), OP_PARSE_RANGE},
        {ORDER("1", "-0.01", TS), OP_PARSE_RANGE},
        {ORDER("1", "-0.001", TS), OP_PARSE_RANGE}, /* rounds to zero, but is negative */
        {ORDER("1", "-5999", TS), OP_PARSE_RANGE},
        {ORDER("1", "1000000000.01", TS), OP_PARSE_RANGE},
        {ORDER("1", "1000000000.005", TS), OP_PARSE_RANGE}, /* rounds up past the limit */
        {ORDER("1", "1e10", TS), OP_PARSE_RANGE},
        {ORDER("1", "1", "\"orderTimeSeries\":0"), OP_PARSE_RANGE},
        {ORDER("1", "1", "\"orderTimeSeries\":-1731233400000"), OP_PARSE_RANGE},
        {ORDER("1", "1", "\"orderTimeSeries\":253402300800000"), OP_PARSE_RANGE},
        {"{\"userName\":\"\",\"gender\":\"男\",\"goodsType\":\"c\",\"brand\":\"b\",\"num\":1,"
         "\"totalPrice\":1," TS "}",
         OP_PARSE_RANGE},
        {ORDER("1", "1", "\"orderTime\":\"0000-01-01 00:00:00\""), OP_PARSE_TIME},
        /* bad time strings */
        {ORDER("1", "1", "\"orderTime\":\"2024-11-10T18:10:00\""), OP_PARSE_TIME},
        {ORDER("1", "1", "\"orderTime\":\"2024-13-10 18:10:00\""), OP_PARSE_TIME},
        {ORDER("1", "1", "\"orderTime\":\"2023-02-29 18:10:00\""), OP_PARSE_TIME},
        {ORDER("1", "1", "\"orderTime\":\"2024-11-10 24:00:00\""), OP_PARSE_TIME},
        {ORDER("1", "1", "\"orderTime\":\"2024-11-10 18:10\""), OP_PARSE_TIME},
        {ORDER("1", "1", "\"orderTime\":\"\""), OP_PARSE_TIME},
        {ORDER("1", "1", "\"orderTime\":1731233400000"), OP_PARSE_TYPE},
        /* JSON errors win over field errors anywhere in the record */
        {"{\"num\":0,\"x\":[}", OP_PARSE_SYNTAX},
        {"{\"num\":\"x\"} trailing", OP_PARSE_TRAILING},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        op_order_t o;
        int rc = parse(cases[i].doc, &o);
        cr_expect_eq(rc, -cases[i].reason, "case %zu %s: got %s, want %s", i, cases[i].doc,
                     op_parse_reason_name(rc), op_parse_reason_name(cases[i].reason));
    }
}

Test(parse, names_up_to_255_bytes_after_unescaping)
{
    char name[600], doc[1200];
    op_order_t o;
    memset(name, 'a', 255);
    name[255] = '\0';
    snprintf(doc, sizeof(doc),
             "{\"userName\":\"%s\",\"gender\":\"m\",\"goodsType\":\"c\",\"brand\":\"b\","
             "\"num\":1,\"totalPrice\":1," TS "}",
             name);
    cr_assert_eq(parse(doc, &o), 0);
    cr_expect_eq(o.user.len, 255);
    name[255] = 'a';
    name[256] = '\0';
    snprintf(doc, sizeof(doc),
             "{\"userName\":\"%s\",\"gender\":\"m\",\"goodsType\":\"c\",\"brand\":\"b\","
             "\"num\":1,\"totalPrice\":1," TS "}",
             name);
    cr_expect_eq(parse(doc, &o), -OP_PARSE_RANGE);
    /* 85 escaped 3-byte characters = 255 bytes: fits; 86 do not. */
    char esc[600] = "";
    for (int i = 0; i < 85; i++)
        strcat(esc, "\\u5f20");
    snprintf(doc, sizeof(doc),
             "{\"userName\":\"%s\",\"gender\":\"m\",\"goodsType\":\"c\",\"brand\":\"b\","
             "\"num\":1,\"totalPrice\":1," TS "}",
             esc);
    cr_assert_eq(parse(doc, &o), 0);
    cr_expect_eq(o.user.len, 255);
    strcat(esc, "\\u5f20");
    snprintf(doc, sizeof(doc),
             "{\"userName\":\"%s\",\"gender\":\"m\",\"goodsType\":\"c\",\"brand\":\"b\","
             "\"num\":1,\"totalPrice\":1," TS "}",
             esc);
    cr_expect_eq(parse(doc, &o), -OP_PARSE_RANGE);
}

static char *nested(int depth, char open, char close)
{
    /* An order whose unknown member "x" holds depth-1 nested containers, so
     * the whole record has the given depth (the top-level object is depth 1). */
    size_t n = (size_t)depth * 8 + 256;
    char *doc = malloc(n);
    char *p = doc + sprintf(doc, "{" BASE_FIELDS "\"num\":1,\"totalPrice\":1," TS ",\"x\":");
    for (int i = 1; i < depth; i++)
        p += open == '[' ? sprintf(p, "[") : sprintf(p, "{\"k\":");
    p += sprintf(p, "0");
    for (int i = 1; i < depth; i++)
        *p++ = close;
    strcpy(p, "}");
    return doc;
}

Test(parse, depth_limit_is_exact)
{
    op_order_t o;
    for (int obj = 0; obj < 2; obj++) {
        char open = obj ? '{' : '[', close = obj ? '}' : ']';
        char *ok = nested(OP_PARSE_MAX_DEPTH, open, close);
        char *deep = nested(OP_PARSE_MAX_DEPTH + 1, open, close);
        char *very = nested(100000, open, close);
        cr_expect_eq(parse(ok, &o), 0, "depth %d of %c rejected", OP_PARSE_MAX_DEPTH, open);
        cr_expect_eq(parse(deep, &o), -OP_PARSE_DEPTH);
        cr_expect_eq(parse(very, &o), -OP_PARSE_DEPTH);
        free(ok);
        free(deep);
        free(very);
    }
}

Test(parse, never_reads_past_the_end)
{
    /* Every prefix of a valid record is parsed from an exact-size heap copy,
     * so that ASan (make asan) reports any read past the end. */
    const char *doc = ORDER("3", "12.5", TS ",\"address\":\"北京市朝阳区建国路88号\\u0041\"");
    size_t n = strlen(doc);
    for (size_t len = 0; len < n; len++) {
        char *copy = malloc(len ? len : 1);
        memcpy(copy, doc, len);
        op_order_t o;
        cr_expect_neq(op_parse_order(&ps, copy, len, &o), 0, "prefix of %zu bytes accepted", len);
        free(copy);
    }
    char *copy = malloc(n);
    memcpy(copy, doc, n);
    op_order_t o;
    cr_expect_eq(op_parse_order(&ps, copy, n, &o), 0);
    free(copy);
}

Test(parse, huge_strings_are_validated_not_copied)
{
    size_t n = 8u << 20;
    char *doc = malloc(n + 256);
    char *p = doc + sprintf(doc, "{" BASE_FIELDS "\"num\":1,\"totalPrice\":1," TS ",\"junk\":\"");
    for (char *e = doc + n; p < e; p += 3)
        memcpy(p, "\xE5\xBC\xA0", 3);
    strcpy(p, "\"}");
    op_order_t o;
    cr_expect_eq(op_parse_order(&ps, doc, strlen(doc), &o), 0);
    p[-1] = '\xFF';
    cr_expect_eq(op_parse_order(&ps, doc, strlen(doc), &o), -OP_PARSE_UTF8);
    free(doc);
}

Test(parse, time_zone_offsets)
{
    int32_t s;
    cr_expect(op_parse_tz_offset("UTC", &s) == 0 && s == 0);
    cr_expect(op_parse_tz_offset("+08:00", &s) == 0 && s == 28800);
    cr_expect(op_parse_tz_offset("-0530", &s) == 0 && s == -19800);
    cr_expect(op_parse_tz_offset("+8", &s) == 0 && s == 28800);
    cr_expect(op_parse_tz_offset("08:00", &s) < 0);
    cr_expect(op_parse_tz_offset("+25:00", &s) < 0);
    cr_expect(op_parse_tz_offset("+08:0", &s) < 0);
    cr_expect(op_parse_tz_offset("Asia/Shanghai", &s) < 0);
}

Test(parse, days_from_civil_matches_known_dates)
{
    cr_expect_eq(op_parse_days_from_civil(1970, 1, 1), 0);
    cr_expect_eq(op_parse_days_from_civil(2000, 3, 1), 11017);
    cr_expect_eq(op_parse_days_from_civil(2024, 11, 10), 20037);
    cr_expect_eq(op_parse_days_from_civil(1969, 12, 31), -1);
    cr_expect_eq(op_parse_days_from_civil(9999, 12, 31), 2932896);
}

Test(parse, reason_names_are_stable)
{
    cr_expect_str_eq(op_parse_reason_name(-OP_PARSE_SYNTAX), "syntax");
    cr_expect_str_eq(op_parse_reason_name(OP_PARSE_MISSING), "missing_field");
    cr_expect_str_eq(op_parse_reason_name(-OP_PARSE_RANGE), "out_of_range");
    cr_expect_str_eq(op_parse_reason_name(99), "unknown");
}

/* The fast path (compact, escape-free records: what producers write) must
 * answer exactly as the general path, accept what it should, and leave
 * everything else to the general path. Each record is parsed twice by a
 * parser that keeps its learned keys (the second time on learned keys),
 * once by a fresh one, and compared with the general path alone. */
Test(parse, fast_path_agrees_with_the_general_path)
{
    static const struct {
        const char *doc;
        int fast; /* 1: the fast path must accept it */
    } cases[] = {
        {ORDER("1", "5999.00", TS), 1},
        {ORDER("2", "19304.7", TS ",\"address\":\"北京市\",\"phone\":13800000000"), 1},
        {"{\"userName\": \"张伟\", \"gender\": \"男\", \"goodsType\": \"x\", \"brand\": \"b\", "
         "\"num\": 3, \"totalPrice\": 1.005, \"orderTimeSeries\": 1731233400000}",
         1},
        {ORDER("1", "0.004", "\"orderTime\":\"2024-11-10 18:10:00\""), 1},
        {ORDER("1000000", "999999999.995", TS), 1},
        {ORDER("1", "12", TS ",\"a\":true,\"b\":false,\"c\":null,\"d\":-1.5,\"e\":0"), 1},
        {ORDER("1", "12", TS ",\"orderTime\":5"), 0}, /* accepted, by the general path */
        {ORDER("1", "12", TS ",\"num\":4"), 1},       /* last one wins */
        {ORDER("-1", "12", TS), 0},
        {ORDER("0", "12", TS), 0},
        {ORDER("01", "12", TS), 0},
        {ORDER("1000001", "12", TS), 0},
        {ORDER("1.0", "12", TS), 0},
        {ORDER("1", "-0", TS), 0},
        {ORDER("1", "-5", TS), 0},
        {ORDER("1", "1000000000.01", TS), 0},
        {ORDER("1", "10000000000", TS), 0},
        {ORDER("1", "12.", TS), 0},
        {ORDER("1", ".5", TS), 0},
        {ORDER("1", "1e2", TS), 0},
        {ORDER("1", "\"12\"", TS), 0},
        {ORDER("1", "12", "\"orderTimeSeries\":0"), 0},
        {ORDER("1", "12", "\"orderTimeSeries\":253402300800000"), 0},
        {ORDER("1", "12", "\"orderTimeSeries\":12345678901234567"), 0},
        {ORDER("1", "12", "\"orderTime\":\"2024-02-30 10:00:00\""), 0},
        {ORDER("1", "12", TS ",\"x\":{\"a\":1}"), 0},
        {ORDER("1", "12", TS ",\"x\":[1]"), 0},
        {ORDER("1", "12", TS ",\"x\":tru"), 0},
        {ORDER("1", "12", TS ",\"x\":nul}"), 0},
        {ORDER("1", "12", TS ",\"x\":\"a\\\"b\""), 0},
        {ORDER("1", "12", TS ",\"x\":\"a\tb\""), 0},
        {ORDER("1", "12", TS ",\"x\":\"\xC3\""), 0},
        {ORDER("1", "12", TS ",") "", 0},
        {"{" BASE_FIELDS "\"num\":1,\"totalPrice\":12," TS "}x", 0},
        {" {" BASE_FIELDS "\"num\":1,\"totalPrice\":12," TS "}", 1},
        {"{" BASE_FIELDS "\"num\":1,\"totalPrice\":12," TS "} ", 0},
        {"{" BASE_FIELDS "\"num\":1,\"totalPrice\":12," TS "\n}", 0},
        {"{\"userName\":\"\",\"gender\":\"男\",\"goodsType\":\"x\",\"brand\":\"b\",\"num\":1,"
         "\"totalPrice\":1," TS "}",
         0},
        {"{\"userName\":\"u\",\"gender\":\"男\",\"goodsType\":\"x\",\"brant\":\"b\",\"num\":1,"
         "\"totalPrice\":1," TS "}",
         0},
        {"{\"userName\":\"u\" ,\"gender\" :\"男\", \"goodsType\":\"x\",\"brand\":\"b\",\"num\":1 ,"
         "\"totalPrice\":1 ," TS " }",
         1},
        {"{\"a1\":1,\"a2\":1,\"a3\":1,\"a4\":1,\"a5\":1,\"a6\":1,\"a7\":1,\"a8\":1,\"a9\":1,"
         "\"b1\":1,\"b2\":1,\"b3\":1,\"b4\":1,\"b5\":1,\"b6\":1,\"b7\":1,\"b8\":1,\"b9\":1,"
         "\"c1\":1,\"c2\":1,\"c3\":1,\"c4\":1,\"c5\":1,\"c6\":1,\"c7\":1," BASE_FIELDS
         "\"num\":1,\"totalPrice\":1," TS "}",
         1},
        {"{}", 0},
        {"{\"a\":1}", 0},
        {"[]", 0},
        {"{\"userName\":\"u\"", 0},
    };
    op_parser_t kept, general;
    op_parse_init(&kept, 8 * 3600);
    op_parse_init(&general, 8 * 3600);
    general.general_only = 1;
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            const char *doc = cases[i].doc;
            size_t n = strlen(doc);
            char *copy = malloc(n ? n : 1); /* exact size: ASan sees any overread */
            memcpy(copy, doc, n);
            op_parser_t fresh;
            op_parse_init(&fresh, 8 * 3600);
            op_order_t g, o[2];
            int grc = op_parse_order(&general, copy, n, &g);
            uint64_t before = kept.fast_accepted;
            int rc[2] = {op_parse_order(&kept, copy, n, &o[0]),
                         op_parse_order(&fresh, copy, n, &o[1])};
            cr_expect_eq(kept.fast_accepted - before, (uint64_t)cases[i].fast,
                         "case %zu: fast path taken %llu times, want %d: %s", i,
                         (unsigned long long)(kept.fast_accepted - before), cases[i].fast, doc);
            for (int k = 0; k < 2; k++) {
                cr_expect_eq(rc[k], grc, "case %zu: %s, general %s: %s", i,
                             op_parse_reason_name(rc[k]), op_parse_reason_name(grc), doc);
                if (rc[k] || grc)
                    continue;
                cr_expect(
                    o[k].user.len == g.user.len && !memcmp(o[k].user.ptr, g.user.ptr, g.user.len) &&
                        o[k].brand.len == g.brand.len &&
                        !memcmp(o[k].brand.ptr, g.brand.ptr, g.brand.len) &&
                        o[k].gender.len == g.gender.len && o[k].category.len == g.category.len,
                    "case %zu: names differ", i);
                cr_expect(o[k].num == g.num && o[k].amount == g.amount &&
                              o[k].event_ms == g.event_ms,
                          "case %zu: %lld/%lld/%lld, general %lld/%lld/%lld", i,
                          (long long)o[k].num, (long long)o[k].amount, (long long)o[k].event_ms,
                          (long long)g.num, (long long)g.amount, (long long)g.event_ms);
            }
            free(copy);
        }
    }
}
