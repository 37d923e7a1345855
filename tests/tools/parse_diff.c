/* parse_diff.c — differential test of the order parser against jansson.
 *
 * Generates random order documents (valid ones in every legal spelling, and
 * byte-level mutations of them), parses each with op_parse_order and with
 * jansson plus a reference implementation of the schema rules written
 * independently here, and requires both to agree on accept/reject and on
 * every extracted value.
 *
 * jansson is the oracle for JSON itself. It keeps numbers as long long or
 * double, so the generator avoids the spellings a double cannot judge
 * exactly (amounts whose dropped digits are an exact tie, fractions below
 * double precision); the exact decimal rules have their own unit tests.
 * Documents that jansson rejects only for a numeric overflow (valid JSON to
 * RFC 8259) cannot be judged and are counted as skipped.
 *
 * Every document is also parsed by the general path alone, and the two
 * answers (op_parse_order's fast path, where it applies, and the general
 * path) must be identical. With LEVEL the fast path uses at most that vector
 * kernel (op_utf8_set_level: 1 AVX2, 2 AVX-512).
 *
 * usage: parse_diff [COUNT [SEED [LEVEL]]]    exit 0 = no disagreement
 */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/parse.h"
#include "engine/utf8.h"

#define TZ_OFFSET_S (8 * 3600)

/* ---- a small deterministic PRNG (splitmix64) ---------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static unsigned below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static int chance(unsigned percent)
{
    return below(100) < percent;
}

/* ---- document builder ------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void putf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    put(b, tmp, (size_t)n);
}

/* Half the documents are "plain", the way producers write them: no
 * whitespace but the odd space, no escapes that are not needed. Those are
 * what the parser's fast path takes; the rest exercise its general path. */
static int plain;

static void ws(struct buf *b)
{
    static const char *const spaces[] = {" ", "\n", "\t", "\r\n", "  "};
    while (chance(plain ? 3 : 12))
        puts_(b, spaces[plain ? 0 : below(5)]);
}

/* A code point written raw as UTF-8 or as an escape. */
static void put_char(struct buf *b, unsigned u)
{
    int must_escape = u == '"' || u == '\\' || u < 0x20;
    if (must_escape || (!plain && chance(10))) {
        if (u == '"' || u == '\\' || (u == '/' && chance(50))) {
            char e[2] = {'\\', (char)u};
            put(b, e, 2);
            return;
        }
        if (u == '\n' && chance(50))
            return puts_(b, "\\n");
        if (u == '\t' && chance(50))
            return puts_(b, "\\t");
        if (u >= 0x10000) {
            unsigned v = u - 0x10000;
            putf(b, chance(50) ? "\\u%04x\\u%04x" : "\\u%04X\\u%04X", 0xD800 + (v >> 10),
                 0xDC00 + (v & 0x3FF));
        } else {
            putf(b, chance(50) ? "\\u%04x" : "\\u%04X", u);
        }
        return;
    }
    char o[4];
    size_t n;
    if (u < 0x80)
        o[0] = (char)u, n = 1;
    else if (u < 0x800)
        o[0] = (char)(0xC0 | u >> 6), o[1] = (char)(0x80 | (u & 0x3F)), n = 2;
    else if (u < 0x10000)
        o[0] = (char)(0xE0 | u >> 12), o[1] = (char)(0x80 | (u >> 6 & 0x3F)),
        o[2] = (char)(0x80 | (u & 0x3F)), n = 3;
    else
        o[0] = (char)(0xF0 | u >> 18), o[1] = (char)(0x80 | (u >> 12 & 0x3F)),
        o[2] = (char)(0x80 | (u >> 6 & 0x3F)), o[3] = (char)(0x80 | (u & 0x3F)), n = 4;
    put(b, o, n);
}

static unsigned random_char(void)
{
    switch (below(10)) {
    case 0:
        return 0x4E00 + below(0x5000); /* CJK */
    case 1:
        return 0x4E00 + below(0x5000);
    case 2:
        return 0x80 + below(0x780); /* 2-byte */
    case 3:
        return 0x1F300 + below(0x300); /* emoji */
    case 4:
        return below(plain ? 100 : 10) ? 0x20 + below(0x5F) : below(0x20); /* incl. controls */
    case 5:
        if (plain && chance(95))
            return 'a' + below(26);
        return "\"\\/"[below(3)];
    default:
        return 'a' + below(26);
    }
}

static void put_string_value(struct buf *b, unsigned maxlen)
{
    puts_(b, "\"");
    unsigned n = below(maxlen + 1);
    for (unsigned i = 0; i < n; i++)
        put_char(b, random_char());
    puts_(b, "\"");
}

/* A key spelled with optional escapes, e.g. "n\u0075m". */
static void put_key(struct buf *b, const char *key)
{
    puts_(b, "\"");
    for (const char *k = key; *k; k++)
        if (!plain && chance(4))
            putf(b, "\\u%04x", (unsigned)*k);
        else
            put(b, k, 1);
    puts_(b, "\"");
    ws(b);
    puts_(b, ":");
    ws(b);
}

static void put_any_value(struct buf *b, int depth);

static void put_number_any(struct buf *b)
{
    switch (below(6)) {
    case 0:
        putf(b, "%d", (int)below(1000) - 500);
        break;
    case 1:
        putf(b, "%u.%u", below(100000), below(1000));
        break;
    case 2:
        putf(b, "%ue%d", below(100), (int)below(40) - 20);
        break;
    case 3:
        putf(b, "-%u.%uE+%u", below(10), below(100), below(10));
        break;
    case 4:
        puts_(b, "0");
        break;
    default:
        putf(b, "%lld", (long long)(rnd() >> 2));
        break;
    }
}

static void put_any_value(struct buf *b, int depth)
{
    unsigned kind = depth >= 70 || plain ? 2 + below(4) : below(depth < 4 ? 6 : 8);
    switch (kind) {
    case 0: /* object */
    case 6: {
        puts_(b, "{");
        ws(b);
        unsigned n = below(4);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                puts_(b, ","), ws(b);
            put_string_value(b, 6);
            ws(b);
            puts_(b, ":");
            ws(b);
            put_any_value(b, depth + 1);
            ws(b);
        }
        puts_(b, "}");
        break;
    }
    case 1: /* array */
    case 7: {
        puts_(b, "[");
        ws(b);
        unsigned n = below(4);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                puts_(b, ","), ws(b);
            put_any_value(b, depth + 1);
            ws(b);
        }
        puts_(b, "]");
        break;
    }
    case 2:
        put_string_value(b, 12);
        break;
    case 3:
        put_number_any(b);
        break;
    default:
        puts_(b, (const char *[]){"true", "false", "null"}[below(3)]);
        break;
    }
}

/* A deeply nested unknown value, to probe the depth limit from both sides. */
static void put_deep_value(struct buf *b, int levels)
{
    for (int i = 0; i < levels; i++)
        puts_(b, i % 3 == 2 ? "{\"k\":" : "[");
    puts_(b, "1");
    for (int i = levels - 1; i >= 0; i--)
        puts_(b, i % 3 == 2 ? "}" : "]");
}

static void put_amount(struct buf *b)
{
    long long cents =
        chance(80) ? (long long)below(10000000) : (long long)(rnd() % 200000000000ULL);
    switch (plain && chance(50) ? 11 : below(12)) {
    case 0:
        putf(b, "%lld", cents / 100);
        break;
    case 1:
        putf(b, "%lld.%lld", cents / 100, (cents % 100) / 10);
        break;
    case 2: /* 4 decimals, never an exact tie at the cent */
    {
        unsigned r = below(100);
        if (r == 50)
            r = 51;
        putf(b, "%lld.%02lld%02u", cents / 100, cents % 100, r);
        break;
    }
    case 3:
        putf(b, "%llde-2", cents);
        break;
    case 4:
        putf(b, "%lld0E-3", cents);
        break;
    case 5:
        putf(b, "-%lld.%02lld", cents / 100, cents % 100);
        break;
    case 6:
        puts_(b, (const char *[]){"\"12.50\"", "null", "[]", "-0", "0.0", "1e40"}[below(6)]);
        break;
    case 7:
        putf(b, "%lld.%02lld", 1000000000LL + (long long)below(3), (long long)below(100));
        break;
    default:
        putf(b, "%lld.%02lld", cents / 100, cents % 100);
        break;
    }
}

static void put_num(struct buf *b)
{
    static const char *const odd[] = {"0",       "-1",    "1.0",  "2e0",   "1.5",      "1000000",
                                      "1000001", "\"2\"", "true", "20E-1", "3.000000", "1e6"};
    if (chance(80))
        putf(b, "%u", 1 + below(5));
    else
        puts_(b, odd[below(sizeof(odd) / sizeof(odd[0]))]);
}

static void put_time_ms(struct buf *b)
{
    long long t = 1700000000000LL + (long long)(rnd() % 100000000000ULL);
    static const char *const odd[] = {"0",
                                      "-5",
                                      "\"1731233400000\"",
                                      "1731233400000.5",
                                      "1.7312334e12",
                                      "17312334000000e-1",
                                      "253402300799999",
                                      "253402300800000",
                                      "1731233400000.000"};
    if (chance(85))
        putf(b, "%lld", t);
    else
        puts_(b, odd[below(sizeof(odd) / sizeof(odd[0]))]);
}

static void put_time_str(struct buf *b)
{
    if (chance(85)) {
        putf(b, "\"%04u-%02u-%02u %02u:%02u:%02u\"", 1990 + below(50), 1 + below(12), 1 + below(31),
             below(24), below(60), below(60));
    } else {
        static const char *const odd[] = {"\"2024-02-30 10:00:00\"",
                                          "\"2024-11-10T18:10:00\"",
                                          "\"0001-01-01 00:00:00\"",
                                          "\"9999-12-31 23:59:59\"",
                                          "\"2024-1-10 18:10:00\"",
                                          "12",
                                          "\"\"",
                                          "\"1970-01-01 08:00:00\"",
                                          "\"1970-01-01 08:00:01\""};
        puts_(b, odd[below(sizeof(odd) / sizeof(odd[0]))]);
    }
}

static void put_name(struct buf *b)
{
    if (chance(3)) {
        puts_(b, (const char *[]){"\"\"", "42", "null", "{}", "\"\\ud800\""}[below(5)]);
        return;
    }
    if (chance(2)) { /* around the 255-byte limit */
        puts_(b, "\"");
        unsigned n = 250 + below(10);
        for (unsigned i = 0; i < n; i++)
            puts_(b, "a");
        puts_(b, "\"");
        return;
    }
    puts_(b, "\"");
    unsigned n = 1 + below(8);
    for (unsigned i = 0; i < n; i++)
        put_char(b, random_char());
    puts_(b, "\"");
}

static const char *const KEYS[] = {"userName", "gender",     "goodsType",       "brand",
                                   "num",      "totalPrice", "orderTimeSeries", "orderTime"};

static void make_document(struct buf *b)
{
    int order[16], n = 0;
    for (int i = 0; i < 8; i++) {
        if (i == 7 && chance(70))
            continue; /* orderTime is usually absent or beside the series */
        if (i == 6 && chance(20))
            continue; /* series absent: orderTime decides */
        if (chance(2))
            continue; /* a missing field */
        order[n++] = i;
    }
    int unknown = (int)below(5);
    for (int i = 0; i < unknown; i++)
        order[n++] = 100 + i;
    if (chance(5))
        order[n++] = (int)below(8); /* a duplicate */
    /* Half the documents keep the canonical key order, as one producer's
     * records do: that is what the parser's learned keys recognise, and
     * the mutations then hit the learned-key path too. */
    for (int i = chance(50) ? 0 : n - 1; i > 0; i--) {
        int j = (int)below((unsigned)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    ws(b);
    puts_(b, "{");
    ws(b);
    for (int i = 0; i < n; i++) {
        if (i)
            puts_(b, ","), ws(b);
        int k = order[i];
        if (k >= 100) {
            static const char *const unknown_keys[] = {"orderId", "goods", "price", "status",
                                                       "address", "phone", "x",     "nested"};
            put_key(b, unknown_keys[below(8)]);
            if (chance(3))
                put_deep_value(b, 60 + (int)below(8));
            else
                put_any_value(b, 1);
        } else {
            put_key(b, KEYS[k]);
            switch (k) {
            case 4:
                put_num(b);
                break;
            case 5:
                put_amount(b);
                break;
            case 6:
                put_time_ms(b);
                break;
            case 7:
                put_time_str(b);
                break;
            default:
                put_name(b);
                break;
            }
        }
        ws(b);
    }
    puts_(b, "}");
    ws(b);
}

static void mutate(struct buf *b)
{
    static const char interesting[] = "{}[]\",:\\0123456789eE-+. \xFF\xC3\x80\xE5tfn";
    int times = 1 + (int)below(3);
    for (int t = 0; t < times && b->len; t++) {
        size_t at = below((unsigned)b->len);
        char c = chance(80) ? interesting[below(sizeof(interesting) - 1)] : (char)below(256);
        switch (below(6)) {
        case 5: { /* insert a sequence at a UTF-8 or escape boundary */
            static const char *const tricky[] = {"\xC0\xAF",
                                                 "\xC1\xBF",
                                                 "\xC2\x80",
                                                 "\xDF\xBF",
                                                 "\xE0\x9F\xBF",
                                                 "\xE0\xA0\x80",
                                                 "\xED\x9F\xBF",
                                                 "\xED\xA0\x80",
                                                 "\xEE\x80\x80",
                                                 "\xF0\x8F\xBF\xBF",
                                                 "\xF0\x90\x80\x80",
                                                 "\xF4\x8F\xBF\xBF",
                                                 "\xF4\x90\x80\x80",
                                                 "\xF5\x80\x80\x80",
                                                 "\xE5\xBC",
                                                 "\x7F",
                                                 "\\u0000",
                                                 "\\ud800",
                                                 "\\udc00",
                                                 "\\ud800\\udc00",
                                                 "\\uDBFF\\uDFFF",
                                                 "\\ud800\\ud800",
                                                 "\\u00",
                                                 "\\"};
            const char *seq = tricky[below(sizeof(tricky) / sizeof(tricky[0]))];
            size_t tn = strlen(seq);
            put(b, seq, tn); /* grow, then shift the tail */
            memmove(b->p + at + tn, b->p + at, b->len - tn - at);
            memcpy(b->p + at, seq, tn);
            break;
        }
        case 0: /* delete */
            memmove(b->p + at, b->p + at + 1, b->len - at - 1);
            b->len--;
            break;
        case 1: /* insert */
            put(b, "", 1);
            memmove(b->p + at + 1, b->p + at, b->len - at - 1);
            b->p[at] = c;
            break;
        case 2: /* truncate */
            b->len = at;
            break;
        default: /* replace */
            b->p[at] = c;
            break;
        }
    }
}

/* ---- the reference: jansson + the schema rules, written independently ------------ */

struct ref_order {
    const char *str[4];
    size_t len[4];
    long long num, cents, event_ms;
};

/* Maximum nesting depth of a document jansson has already validated. It is
 * measured on the text, not on jansson's tree: with duplicate keys the tree
 * keeps only the last value, while the limit guards the text. */
static int text_depth(const char *doc, size_t len)
{
    int depth = 0, max = 0, in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = doc[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            max = ++depth > max ? depth : max;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return max;
}

/* Integral value of a JSON number, or -1 if it has a fraction. */
static int integral(json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    double d = json_real_value(v);
    if (d != floor(d))
        return -1;
    *out = fabs(d) < 9e18 ? (long long)d : (d < 0 ? -LLONG_MAX : LLONG_MAX);
    return 0;
}

static int ref_time_string(const char *s, size_t len, long long *ms)
{
    int y, mo, d, h, mi, sec, n = -1;
    if (len != 19)
        return -1;
    for (int i = 0; i < 19; i++) {
        int want_sep = i == 4 || i == 7 || i == 10 || i == 13 || i == 16;
        if (want_sep != !(s[i] >= '0' && s[i] <= '9'))
            return -1;
    }
    if (sscanf(s, "%4d-%2d-%2d %2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
        return -1;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59)
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (tm.tm_mday != d || tm.tm_mon != mo - 1) /* timegm normalised an invalid date */
        return -1;
    *ms = ((long long)t - TZ_OFFSET_S) * 1000;
    return 0;
}

/* Returns 1 accept, 0 reject, -1 cannot judge (a number or a key jansson
 * cannot represent). */
static int reference(const char *doc, size_t len, struct ref_order *o, json_t **rootp)
{
    static const char *const names[] = {"userName", "gender", "goodsType", "brand"};
    json_error_t err;
    json_t *root = json_loadb(doc, len, JSON_ALLOW_NUL, &err);
    *rootp = root;
    if (!root) {
        enum json_error_code code = json_error_code(&err);
        /* Valid JSON that jansson cannot represent: no verdict either way. */
        return code == json_error_numeric_overflow || code == json_error_null_byte_in_key ? -1 : 0;
    }
    if (!json_is_object(root) || text_depth(doc, len) > OP_PARSE_MAX_DEPTH)
        return 0;
    for (int i = 0; i < 4; i++) {
        json_t *v = json_object_get(root, names[i]);
        if (!json_is_string(v))
            return 0;
        o->str[i] = json_string_value(v);
        o->len[i] = json_string_length(v);
        if (o->len[i] < 1 || o->len[i] > OP_PARSE_MAX_NAME)
            return 0;
    }
    json_t *num = json_object_get(root, "num");
    if (!json_is_number(num) || integral(num, &o->num) < 0 || o->num < 1 || o->num > 1000000)
        return 0;
    json_t *price = json_object_get(root, "totalPrice");
    if (!json_is_number(price))
        return 0;
    double p = json_number_value(price);
    if (p < 0 || p > 1e9 + 0.01)
        return 0;
    o->cents = (long long)floor(p * 100 + 0.5);
    if (o->cents > OP_PARSE_MAX_CENTS)
        return 0;
    json_t *ts = json_object_get(root, "orderTimeSeries");
    if (ts) {
        if (!json_is_number(ts) || integral(ts, &o->event_ms) < 0 || o->event_ms < 1 ||
            o->event_ms > OP_PARSE_MAX_EVENT_MS)
            return 0;
    } else {
        json_t *tstr = json_object_get(root, "orderTime");
        if (!json_is_string(tstr) ||
            ref_time_string(json_string_value(tstr), json_string_length(tstr), &o->event_ms) < 0)
            return 0;
        if (o->event_ms < 1 || o->event_ms > OP_PARSE_MAX_EVENT_MS)
            return 0;
    }
    return 1;
}

/* ---- comparison ------------------------------------------------------------------ */

static void dump(const char *what, const char *doc, size_t len)
{
    fprintf(stderr, "  %s (%zu bytes): ", what, len);
    for (size_t i = 0; i < len && i < 600; i++) {
        unsigned char c = (unsigned char)doc[i];
        if (c >= 0x20 && c < 0x7F)
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02X", c);
    }
    fputc('\n', stderr);
}

static int same_str(op_str_t a, const char *b, size_t blen)
{
    return a.len == blen && memcmp(a.ptr, b, blen) == 0;
}

int main(int argc, char **argv)
{
    long count = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
    rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) : 20261124;
    int level = op_utf8_set_level(argc > 3 ? atoi(argv[3]) : -1);
    printf("parse_diff: vector level %d\n", level);
    op_parser_t ps, general;
    op_parse_init(&ps, TZ_OFFSET_S);
    op_parse_init(&general, TZ_OFFSET_S);
    general.general_only = 1;
    long path_disagreements = 0;
    long accepted = 0, rejected = 0, skipped = 0, disagreements = 0, mutated = 0;
    long reasons[OP_PARSE_REASON_COUNT] = {0};
    struct buf b = {0};

    for (long i = 0; i < count; i++) {
        b.len = 0;
        put(&b, "", 0);
        plain = chance(50);
        make_document(&b);
        if (chance(40)) {
            mutate(&b);
            mutated++;
        }
        /* Parse from an exact-size copy so that a sanitizer sees any overread. */
        char *doc = malloc(b.len ? b.len : 1);
        memcpy(doc, b.p, b.len);

        op_order_t o;
        struct ref_order r;
        json_t *root;
        int rc = op_parse_order(&ps, doc, b.len, &o);
        int want = reference(doc, b.len, &r, &root);
        /* The fast path must answer exactly as the general one does. */
        op_order_t g;
        int grc = op_parse_order_general(&general, doc, b.len, &g);
        if (grc != rc ||
            (rc == 0 && (!same_str(o.user, g.user.ptr, g.user.len) ||
                         !same_str(o.gender, g.gender.ptr, g.gender.len) ||
                         !same_str(o.category, g.category.ptr, g.category.len) ||
                         !same_str(o.brand, g.brand.ptr, g.brand.len) || o.num != g.num ||
                         o.amount != g.amount || o.event_ms != g.event_ms))) {
            if (path_disagreements++ < 10) {
                fprintf(stderr, "PATHS DISAGREE (document %ld): op_parse_order %s, general %s\n", i,
                        rc ? op_parse_reason_name(rc) : "ok",
                        grc ? op_parse_reason_name(grc) : "ok");
                dump("document", doc, b.len);
            }
        }
        const char *why = NULL;
        if (want < 0) {
            skipped++;
        } else if ((rc == 0) != (want == 1)) {
            why = rc == 0 ? "accepted by op_parse, rejected by reference"
                          : "rejected by op_parse, accepted by reference";
        } else if (rc == 0) {
            if (!same_str(o.user, r.str[0], r.len[0]) || !same_str(o.gender, r.str[1], r.len[1]) ||
                !same_str(o.category, r.str[2], r.len[2]) || !same_str(o.brand, r.str[3], r.len[3]))
                why = "a string field differs";
            else if (o.num != r.num)
                why = "num differs";
            else if (o.amount != r.cents)
                why = "amount differs";
            else if (o.event_ms != r.event_ms)
                why = "event time differs";
        }
        if (want >= 0) {
            if (rc == 0)
                accepted++;
            else
                rejected++, reasons[-rc]++;
        }
        if (why) {
            if (disagreements++ < 10) {
                fprintf(stderr, "DISAGREEMENT #%ld (document %ld): %s; op_parse: %s\n",
                        disagreements, i, why, rc ? op_parse_reason_name(rc) : "ok");
                if (rc == 0 && want == 1)
                    fprintf(stderr,
                            "  op_parse num=%lld cents=%lld ms=%lld; reference num=%lld "
                            "cents=%lld ms=%lld\n",
                            (long long)o.num, (long long)o.amount, (long long)o.event_ms, r.num,
                            r.cents, r.event_ms);
                dump("document", doc, b.len);
            }
        }
        json_decref(root);
        free(doc);
    }
    free(b.p);

    printf("parse_diff: %ld documents (%ld mutated), %ld accepted, %ld rejected, %ld skipped "
           "(beyond jansson), %ld disagreements\n",
           count, mutated, accepted, rejected, skipped, disagreements);
    printf("parse_diff: %llu accepted by the fast path, %ld fast/general disagreements\n",
           (unsigned long long)ps.fast_accepted, path_disagreements);
    printf("parse_diff: rejections by reason:");
    for (int i = 1; i < OP_PARSE_REASON_COUNT; i++)
        printf(" %s=%ld", op_parse_reason_name(i), reasons[i]);
    printf("\n");
    if (accepted < count / 10 || rejected < count / 10) {
        fprintf(stderr, "parse_diff: the generator is unbalanced (too few accepted or rejected)\n");
        return 1;
    }
    if (skipped > count / 100) {
        fprintf(stderr, "parse_diff: too many documents could not be judged\n");
        return 1;
    }
    if (ps.fast_accepted < (uint64_t)accepted / 5) {
        fprintf(stderr, "parse_diff: the fast path took too few documents to be tested\n");
        return 1;
    }
    return disagreements || path_disagreements ? 1 : 0;
}
