/* parse.c — the schema-aware order scanner.
 *
 * A single forward pass with a cursor p and a hard end: every read is
 * bounds-checked. The record's UTF-8 is validated first, all at once
 * (utf8.h), so strings are scanned 16 bytes at a time with SSE2 looking only
 * for '"', '\\' and control characters; unknown values are skipped by
 * an iterative validator whose open containers live in one 64-bit stack —
 * which is why OP_PARSE_MAX_DEPTH is 64. Field errors are remembered per
 * field and judged at the end, so that "last key wins" holds and JSON errors
 * anywhere in the record take precedence.
 */
#include "engine/parse.h"

#include "engine/hash.h"
#include "engine/utf8.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#define PARSE_FAST 1 /* op_utf8_scan only ever succeeds on x86-64 with AVX2 */
#endif

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static const char *const reason_names[OP_PARSE_REASON_COUNT] = {
    [OP_PARSE_OK] = "ok",
    [OP_PARSE_SYNTAX] = "syntax",
    [OP_PARSE_UTF8] = "utf8",
    [OP_PARSE_DEPTH] = "depth",
    [OP_PARSE_NOT_OBJECT] = "not_object",
    [OP_PARSE_TRAILING] = "trailing",
    [OP_PARSE_MISSING] = "missing_field",
    [OP_PARSE_TYPE] = "wrong_type",
    [OP_PARSE_RANGE] = "out_of_range",
    [OP_PARSE_TIME] = "bad_time",
};

const char *op_parse_reason_name(int reason)
{
    if (reason < 0)
        reason = -reason;
    return reason < OP_PARSE_REASON_COUNT ? reason_names[reason] : "unknown";
}

void op_parse_init(op_parser_t *ps, int32_t tz_offset_s)
{
    memset(ps, 0, sizeof(*ps));
    ps->tz_offset_s = tz_offset_s;
}

/* ---- the known fields ------------------------------------------------------ */

enum field {
    F_USER, /* the string fields first: their index is their scratch slot */
    F_GENDER,
    F_CATEGORY,
    F_BRAND,
    F_TIME_STR,
    F_NUM,
    F_AMOUNT,
    F_TIME_MS,
    F_COUNT,
    F_UNKNOWN = F_COUNT
};

/* The outcome of the last occurrence of each field in the record. */
struct fields {
    int8_t state[F_COUNT]; /* 0 absent, 1 present and valid, -reason otherwise */
    op_str_t str[F_TIME_STR + 1];
    int64_t num[F_COUNT];
};

static enum field field_of(const char *k, size_t n)
{
    switch (n) {
    case 3:
        return memcmp(k, "num", 3) == 0 ? F_NUM : F_UNKNOWN;
    case 5:
        return memcmp(k, "brand", 5) == 0 ? F_BRAND : F_UNKNOWN;
    case 6:
        return memcmp(k, "gender", 6) == 0 ? F_GENDER : F_UNKNOWN;
    case 8:
        return memcmp(k, "userName", 8) == 0 ? F_USER : F_UNKNOWN;
    case 9:
        if (memcmp(k, "goodsType", 9) == 0)
            return F_CATEGORY;
        return memcmp(k, "orderTime", 9) == 0 ? F_TIME_STR : F_UNKNOWN;
    case 10:
        return memcmp(k, "totalPrice", 10) == 0 ? F_AMOUNT : F_UNKNOWN;
    case 15:
        return memcmp(k, "orderTimeSeries", 15) == 0 ? F_TIME_MS : F_UNKNOWN;
    default:
        return F_UNKNOWN;
    }
}

/* ---- learned keys ----------------------------------------------------------------- */

/* 1 if the bytes at p (end - p of them readable) are exactly the learned
 * key literal k, quotes included. A literal holds no backslash, so equal
 * bytes mean an equal, unescaped key. */
static inline int key_matches(const op_parse_key_t *k, const char *p, const char *end)
{
    size_t n = k->len;
    if (!n || (size_t)(end - p) < n)
        return 0;
#if defined(__SSE2__)
    if ((size_t)(end - p) >= 32) {
        __m128i a0 = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i b0 = _mm_loadu_si128((const __m128i *)(const void *)k->lit);
        __m128i a1 = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
        __m128i b1 = _mm_loadu_si128((const __m128i *)(const void *)(k->lit + 16));
        uint32_t eq = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a0, b0)) |
                      (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a1, b1)) << 16;
        uint32_t want = n >= 32 ? 0xFFFFFFFFu : (1u << n) - 1;
        return (eq & want) == want;
    }
#endif
    return memcmp(p, k->lit, n) == 0;
}

static inline void key_learn(op_parse_key_t *k, const char *quote, size_t keylen, enum field id)
{
    if (keylen + 2 > OP_PARSE_KEY_LIT) {
        k->len = 0;
        return;
    }
    memset(k->lit, 0, sizeof(k->lit));
    memcpy(k->lit, quote, keylen + 2);
    k->len = (uint8_t)(keylen + 2);
    k->field = (uint8_t)id;
}

/* ---- scanning primitives ----------------------------------------------------- */

/* Scanner state for one record. err is the first JSON-level error. */
struct scan {
    const char *begin, *end;
    int err;
    const char *err_at;
};

static const char *fail(struct scan *s, const char *at, int reason)
{
    if (!s->err) {
        s->err = reason;
        s->err_at = at;
    }
    return NULL;
}

static inline const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static inline int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Validates one UTF-8 sequence starting with a byte >= 0x80 at p (RFC 3629:
 * no overlongs, no surrogates, nothing above U+10FFFF). Returns its length
 * or 0 if invalid. */
static inline size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t avail = (size_t)(end - p);
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (avail < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))
            return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (avail < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

/* Validates an escape sequence at p (p[0] == '\\'). Returns the pointer after
 * it, or NULL with the error recorded. */
static const char *escape_scan(struct scan *s, const char *p)
{
    const char *end = s->end;
    if (end - p < 2)
        return fail(s, p, OP_PARSE_SYNTAX);
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        return p + 2;
    case 'u':
        break;
    default:
        return fail(s, p, OP_PARSE_SYNTAX);
    }
    if (end - p < 6)
        return fail(s, p, OP_PARSE_SYNTAX);
    int u = hex4(p + 2);
    if (u < 0)
        return fail(s, p, OP_PARSE_SYNTAX);
    if (u >= 0xDC00 && u <= 0xDFFF)
        return fail(s, p, OP_PARSE_UTF8);
    if (u < 0xD800 || u > 0xDBFF)
        return p + 6;
    /* A high surrogate must be followed by an escaped low surrogate. */
    if (end - p < 12 || p[6] != '\\' || p[7] != 'u')
        return fail(s, p, OP_PARSE_UTF8);
    int lo = hex4(p + 8);
    if (lo < 0)
        return fail(s, p + 6, OP_PARSE_SYNTAX);
    if (lo < 0xDC00 || lo > 0xDFFF)
        return fail(s, p, OP_PARSE_UTF8);
    return p + 12;
}

/* Scans a string whose opening quote is at p[-1]. Returns the pointer after
 * the closing quote, or NULL. *escaped tells whether the raw bytes contain
 * escapes (and so differ from the value). */
static const char *string_scan(struct scan *s, const char *p, int *escaped)
{
    const char *end = s->end;
    for (;;) {
#if defined(__SSE2__)
        const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
        const __m128i high3 = _mm_set1_epi8((char)0xE0), zero = _mm_setzero_si128();
        while (likely(end - p >= 16)) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
            /* Controls are the bytes whose top three bits are all zero. */
            __m128i m =
                _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                             _mm_cmpeq_epi8(_mm_and_si128(v, high3), zero));
            unsigned bits = (unsigned)_mm_movemask_epi8(m);
            if (bits) {
                p += __builtin_ctz(bits);
                goto special;
            }
            p += 16;
        }
#endif
        while (p < end && (unsigned char)*p >= 0x20 && *p != '"' && *p != '\\')
            p++;
        if (p >= end)
            return fail(s, p, OP_PARSE_SYNTAX);
#if defined(__SSE2__)
    special:
#endif
        if (*p == '"')
            return p + 1;
        if (*p != '\\')
            return fail(s, p, OP_PARSE_SYNTAX);
        *escaped = 1;
        if (!(p = escape_scan(s, p)))
            return NULL;
    }
}

/* Writes the code point u as UTF-8 into out; returns the byte count. */
static size_t utf8_put(char *out, unsigned u)
{
    if (u < 0x80) {
        out[0] = (char)u;
        return 1;
    }
    if (u < 0x800) {
        out[0] = (char)(0xC0 | u >> 6);
        out[1] = (char)(0x80 | (u & 0x3F));
        return 2;
    }
    if (u < 0x10000) {
        out[0] = (char)(0xE0 | u >> 12);
        out[1] = (char)(0x80 | (u >> 6 & 0x3F));
        out[2] = (char)(0x80 | (u & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | u >> 18);
    out[1] = (char)(0x80 | (u >> 12 & 0x3F));
    out[2] = (char)(0x80 | (u >> 6 & 0x3F));
    out[3] = (char)(0x80 | (u & 0x3F));
    return 4;
}

/* Unescapes an already validated raw string into out (capacity cap). Returns
 * the decoded length, or cap + 1 if it does not fit. */
static size_t string_decode(const char *raw, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        char tmp[4];
        const char *src = raw + i;
        size_t len = 1;
        if (raw[i] != '\\') {
            i++;
        } else {
            src = tmp;
            switch (raw[i + 1]) {
            case 'b':
                tmp[0] = '\b';
                break;
            case 'f':
                tmp[0] = '\f';
                break;
            case 'n':
                tmp[0] = '\n';
                break;
            case 'r':
                tmp[0] = '\r';
                break;
            case 't':
                tmp[0] = '\t';
                break;
            case 'u': {
                unsigned u = (unsigned)hex4(raw + i + 2);
                if (u >= 0xD800 && u <= 0xDBFF) {
                    u = 0x10000 + ((u - 0xD800) << 10) + ((unsigned)hex4(raw + i + 8) - 0xDC00);
                    i += 6;
                }
                len = utf8_put(tmp, u);
                i += 4;
                break;
            }
            default:
                tmp[0] = raw[i + 1];
                break;
            }
            i += 2;
        }
        if (o + len > cap)
            return cap + 1;
        memcpy(out + o, src, len);
        o += len;
    }
    return o;
}

/* A JSON number as written: sign, integer digits, fraction digits, exponent.
 * Nothing is converted until a field asks for a value. */
struct number {
    const char *idig, *fdig;
    size_t ilen, flen;
    int neg;
    int64_t exp; /* saturated at +-EXP_LIMIT */
};

#define EXP_LIMIT 1000000

static inline int is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

static const char *number_scan(struct scan *s, const char *p, struct number *n)
{
    const char *end = s->end;
    n->neg = 0;
    n->flen = 0;
    n->fdig = NULL;
    n->exp = 0;
    if (*p == '-') {
        n->neg = 1;
        p++;
    }
    n->idig = p;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && is_digit(*p)) {
        while (p < end && is_digit(*p))
            p++;
    } else {
        return fail(s, p, OP_PARSE_SYNTAX);
    }
    n->ilen = (size_t)(p - n->idig);
    if (p < end && *p == '.') {
        n->fdig = ++p;
        while (p < end && is_digit(*p))
            p++;
        n->flen = (size_t)(p - n->fdig);
        if (!n->flen)
            return fail(s, p, OP_PARSE_SYNTAX);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        int eneg = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p >= end || !is_digit(*p))
            return fail(s, p, OP_PARSE_SYNTAX);
        int64_t e = 0;
        while (p < end && is_digit(*p)) {
            if (e < EXP_LIMIT)
                e = e * 10 + (*p - '0');
            p++;
        }
        n->exp = eneg ? -e : e;
    }
    return p;
}

static inline int number_digit(const struct number *n, size_t k)
{
    return (k < n->ilen ? n->idig[k] : n->fdig[k - n->ilen]) - '0';
}

/* The value of n times 10^scale as a non-negative integer no greater than
 * max, rounded half-up when exact is 0. Returns 0, -OP_PARSE_TYPE (a fraction
 * where exact is asked) or -OP_PARSE_RANGE (negative or too large). */
static int number_value(const struct number *n, int scale, int exact, uint64_t max, int64_t *out)
{
    size_t len = n->ilen + n->flen;
    /* Digits [0, point) form the integer part of the scaled value. */
    int64_t point = (int64_t)n->ilen + n->exp + scale;
    size_t ipart = point <= 0 ? 0 : (uint64_t)point < len ? (size_t)point : len;
    uint64_t v = 0;

    if (exact)
        for (size_t k = ipart; k < len; k++)
            if (number_digit(n, k))
                return -OP_PARSE_TYPE;
    /* Negative values are out of range even when they would round to zero;
     * only an exact "-0" is zero. */
    if (n->neg)
        for (size_t k = 0; k < len; k++)
            if (number_digit(n, k))
                return -OP_PARSE_RANGE;
    for (size_t k = 0; k < ipart; k++) {
        v = v * 10 + (uint64_t)number_digit(n, k);
        if (v > max)
            return -OP_PARSE_RANGE;
    }
    if (v && point > (int64_t)len) {
        for (int64_t k = (int64_t)len; k < point; k++) {
            v *= 10;
            if (v > max)
                return -OP_PARSE_RANGE;
        }
    }
    if (!exact && point >= 0 && (uint64_t)point < len && number_digit(n, (size_t)point) >= 5)
        v++;
    if (v > max)
        return -OP_PARSE_RANGE;
    *out = (int64_t)v;
    return 0;
}

static const char *literal_scan(struct scan *s, const char *p)
{
    static const char *const words[] = {"true", "false", "null"};
    const char *w = words[*p == 't' ? 0 : *p == 'f' ? 1 : 2];
    size_t n = strlen(w);
    if ((size_t)(s->end - p) < n || memcmp(p, w, n) != 0)
        return fail(s, p, OP_PARSE_SYNTAX);
    return p + n;
}

/* Validates and skips one value of any type starting at p (already past
 * whitespace); depth is the nesting depth of the value's container. The
 * open containers are a bit stack: bit i set = level i is an object. */
static const char *value_skip(struct scan *s, const char *p, int depth)
{
    const char *end = s->end;
    uint64_t stack = 0;
    int top = 0; /* number of containers opened by this call */
    int dummy;

value:
    if (p >= end)
        return fail(s, p, OP_PARSE_SYNTAX);
    switch (*p) {
    case '{':
    case '[':
        if (depth + top + 1 > OP_PARSE_MAX_DEPTH)
            return fail(s, p, OP_PARSE_DEPTH);
        if (*p == '{')
            stack |= (uint64_t)1 << top;
        else
            stack &= ~((uint64_t)1 << top);
        top++;
        p = skip_ws(p + 1, end);
        if (p < end && *p == (stack >> (top - 1) & 1 ? '}' : ']')) {
            top--;
            p++;
            goto after;
        }
        if (stack >> (top - 1) & 1)
            goto key;
        goto value;
    case '"':
        if (!(p = string_scan(s, p + 1, &dummy)))
            return NULL;
        goto after;
    case 't':
    case 'f':
    case 'n':
        if (!(p = literal_scan(s, p)))
            return NULL;
        goto after;
    default: {
        struct number n;
        if (!(p = number_scan(s, p, &n)))
            return NULL;
        goto after;
    }
    }

key:
    if (p >= end || *p != '"')
        return fail(s, p, OP_PARSE_SYNTAX);
    if (!(p = string_scan(s, p + 1, &dummy)))
        return NULL;
    p = skip_ws(p, end);
    if (p >= end || *p != ':')
        return fail(s, p, OP_PARSE_SYNTAX);
    p = skip_ws(p + 1, end);
    goto value;

after:
    if (!top)
        return p;
    p = skip_ws(p, end);
    if (p >= end)
        return fail(s, p, OP_PARSE_SYNTAX);
    if (*p == ',') {
        p = skip_ws(p + 1, end);
        if (stack >> (top - 1) & 1)
            goto key;
        goto value;
    }
    if (*p == (stack >> (top - 1) & 1 ? '}' : ']')) {
        top--;
        p++;
        goto after;
    }
    return fail(s, p, OP_PARSE_SYNTAX);
}

/* ---- fields ----------------------------------------------------------------- */

static const char *string_field(struct scan *s, op_parser_t *ps, struct fields *f, enum field id,
                                const char *p)
{
    int escaped = 0;
    const char *start = p + 1;
    if (!(p = string_scan(s, start, &escaped)))
        return NULL;
    size_t rawlen = (size_t)(p - 1 - start);
    op_str_t *out = &f->str[id];
    if (!escaped) {
        out->ptr = start;
        out->len = (uint32_t)(rawlen < OP_PARSE_MAX_NAME + 1 ? rawlen : OP_PARSE_MAX_NAME + 1);
    } else {
        out->ptr = ps->scratch[id];
        out->len = (uint32_t)string_decode(start, rawlen, ps->scratch[id], OP_PARSE_MAX_NAME);
    }
    f->state[id] = out->len >= 1 && out->len <= OP_PARSE_MAX_NAME ? 1 : -OP_PARSE_RANGE;
    return p;
}

static const char *number_field(struct scan *s, struct fields *f, enum field id, const char *p)
{
    struct number n;
    int rc;
    if (!(p = number_scan(s, p, &n)))
        return NULL;
    switch (id) {
    case F_NUM:
        rc = number_value(&n, 0, 1, OP_PARSE_MAX_NUM, &f->num[id]);
        if (!rc && f->num[id] == 0)
            rc = -OP_PARSE_RANGE;
        break;
    case F_AMOUNT:
        rc = number_value(&n, 2, 0, OP_PARSE_MAX_CENTS, &f->num[id]);
        break;
    default: /* F_TIME_MS */
        rc = number_value(&n, 0, 1, OP_PARSE_MAX_EVENT_MS, &f->num[id]);
        if (!rc && f->num[id] == 0)
            rc = -OP_PARSE_RANGE;
        break;
    }
    f->state[id] = (int8_t)(rc ? rc : 1);
    return p;
}

/* One member value of the top-level object, at p (past whitespace). */
static const char *member_value(struct scan *s, op_parser_t *ps, struct fields *f, enum field id,
                                const char *p)
{
    if (id == F_UNKNOWN)
        return value_skip(s, p, 1);
    if (id <= F_TIME_STR) {
        if (*p == '"')
            return string_field(s, ps, f, id, p);
    } else if (*p == '-' || is_digit(*p)) {
        return number_field(s, f, id, p);
    }
    f->state[id] = -OP_PARSE_TYPE;
    return value_skip(s, p, 1);
}

int64_t op_parse_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* Shift the year to start in March so that the leap day is last. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int two_digits(const char *p, unsigned *out)
{
    if (!is_digit(p[0]) || !is_digit(p[1]))
        return -1;
    *out = (unsigned)(p[0] - '0') * 10 + (unsigned)(p[1] - '0');
    return 0;
}

/* "yyyy-MM-dd HH:mm:ss" in the parser's zone -> epoch ms. */
static int order_time(const op_parser_t *ps, op_str_t t, int64_t *out)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = t.ptr;
    unsigned yh, yl, mo, d, h, mi, sec;
    if (t.len != 19 || p[4] != '-' || p[7] != '-' || p[10] != ' ' || p[13] != ':' || p[16] != ':')
        return -OP_PARSE_TIME;
    if (two_digits(p, &yh) || two_digits(p + 2, &yl) || two_digits(p + 5, &mo) ||
        two_digits(p + 8, &d) || two_digits(p + 11, &h) || two_digits(p + 14, &mi) ||
        two_digits(p + 17, &sec))
        return -OP_PARSE_TIME;
    unsigned y = yh * 100 + yl;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
        mi > 59 || sec > 59)
        return -OP_PARSE_TIME;
    int64_t secs =
        op_parse_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - ps->tz_offset_s;
    int64_t ms = secs * 1000;
    if (ms < 1 || ms > OP_PARSE_MAX_EVENT_MS)
        return -OP_PARSE_RANGE;
    *out = ms;
    return 0;
}

/* Judges the fields once the whole record has been validated as JSON. */
static int fields_finish(const op_parser_t *ps, const struct fields *f, op_order_t *out)
{
    static const enum field required[] = {F_USER, F_GENDER, F_CATEGORY, F_BRAND, F_NUM, F_AMOUNT};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        int st = f->state[required[i]];
        if (st == 0)
            return -OP_PARSE_MISSING;
        if (st < 0)
            return st;
    }
    if (f->state[F_TIME_MS]) {
        if (f->state[F_TIME_MS] < 0)
            return f->state[F_TIME_MS];
        out->event_ms = f->num[F_TIME_MS];
    } else if (f->state[F_TIME_STR]) {
        if (f->state[F_TIME_STR] < 0)
            return f->state[F_TIME_STR] == -OP_PARSE_RANGE ? -OP_PARSE_TIME : f->state[F_TIME_STR];
        int rc = order_time(ps, f->str[F_TIME_STR], &out->event_ms);
        if (rc)
            return rc;
    } else {
        return -OP_PARSE_MISSING;
    }
    out->user = f->str[F_USER];
    out->gender = f->str[F_GENDER];
    out->category = f->str[F_CATEGORY];
    out->brand = f->str[F_BRAND];
    out->num = f->num[F_NUM];
    out->amount = f->num[F_AMOUNT];
    return 0;
}

static int scan_error(op_parser_t *ps, const struct scan *s)
{
    ps->err_offset = (size_t)(s->err_at - s->begin);
    return -s->err;
}

/* The general path: any JSON, any spelling; the judge of every rejection. */
int op_parse_order_general(op_parser_t *ps, const char *buf, size_t len, op_order_t *out)
{
    struct scan s = {.begin = buf, .end = buf + len, .err = 0, .err_at = buf};
    struct fields f;
    const char *p = skip_ws(buf, s.end), *end = s.end;
    int escaped;

    memset(f.state, 0, sizeof(f.state));
    if (unlikely(!op_utf8_valid(buf, len))) {
        ps->err_offset = op_utf8_invalid_at(buf, len);
        return -OP_PARSE_UTF8;
    }
    if (p >= end)
        return fail(&s, p, OP_PARSE_SYNTAX), scan_error(ps, &s);
    if (*p != '{') {
        int value_start = strchr("[\"-0123456789tfn", *p) != NULL && *p;
        return fail(&s, p, value_start ? OP_PARSE_NOT_OBJECT : OP_PARSE_SYNTAX), scan_error(ps, &s);
    }
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') {
        p++;
        goto done;
    }
    for (unsigned member = 0;; member++) {
        if (p >= end || *p != '"')
            return fail(&s, p, OP_PARSE_SYNTAX), scan_error(ps, &s);
        enum field id;
        op_parse_key_t *learned = member < OP_PARSE_KEY_SLOTS ? &ps->keys[member] : NULL;
        if (learned && key_matches(learned, p, end)) {
            id = (enum field)learned->field;
            p += learned->len;
        } else {
            const char *key = p + 1;
            escaped = 0;
            if (!(p = string_scan(&s, key, &escaped)))
                return scan_error(ps, &s);
            size_t keylen = (size_t)(p - 1 - key);
            if (likely(!escaped)) {
                id = field_of(key, keylen);
                if (learned)
                    key_learn(learned, key - 1, keylen, id);
            } else {
                char kbuf[16];
                size_t n = string_decode(key, keylen, kbuf, sizeof(kbuf));
                id = n <= sizeof(kbuf) ? field_of(kbuf, n) : F_UNKNOWN;
            }
        }
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return fail(&s, p, OP_PARSE_SYNTAX), scan_error(ps, &s);
        p = skip_ws(p + 1, end);
        if (p >= end)
            return fail(&s, p, OP_PARSE_SYNTAX), scan_error(ps, &s);
        if (!(p = member_value(&s, ps, &f, id, p)))
            return scan_error(ps, &s);
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') {
            p++;
            break;
        }
        return fail(&s, p, OP_PARSE_SYNTAX), scan_error(ps, &s);
    }
done:
    p = skip_ws(p, end);
    if (p != end)
        return fail(&s, p, OP_PARSE_TRAILING), scan_error(ps, &s);
    return fields_finish(ps, &f, out);
}

/* ---- the fast path ------------------------------------------------------------ */

/* The fast path takes the records a producer actually writes: one compact
 * object (spaces allowed, no other whitespace), no escapes, no nested
 * values, no exponents, every field valid. It walks the record with the
 * bitmaps of op_utf8_scan: a string ends at the next quote bit, a number
 * at the next non-digit bit. Whatever it does not recognise it hands to the
 * general path, which decides alone; so the fast path can only accept, and
 * it accepts exactly what the general path would, with the same values
 * (the fuzzer and the differential test hold it to that). */

#ifdef PARSE_FAST

/* 64 bits of a bitmap from bit pos on: two words funnel-shifted (shrd), so
 * that a search from pos crosses a block boundary without a branch. The
 * bitmaps have a zero word after the record's last block. */
static inline uint64_t bits_from(const uint64_t *bits, size_t pos)
{
    size_t b = pos >> 6;
    unsigned __int128 two = (unsigned __int128)bits[b + 1] << 64 | bits[b];
    return (uint64_t)(two >> (pos & 63));
}

/* Digits starting at byte pos. Terminates inside the record: its last byte
 * is '}' (checked before the walk), and bits past the record are 0. */
static inline size_t digit_run(const uint64_t *digit, size_t pos)
{
    size_t run = 0;
    uint64_t other;
    while (unlikely(!(other = ~bits_from(digit, pos + run))))
        run += 64;
    return run + (size_t)__builtin_ctzll(other);
}

/* The value of 1..8 ASCII digits ending just before end. Reads the 8 bytes
 * before end (the caller guarantees they are inside the record), zeroes the
 * ones before the digits (leading zeros), and sums the digits pairwise in
 * one word (the SWAR method of simdjson's parse_eight_digits_unrolled). */
static inline uint64_t digits8(const char *end, size_t n)
{
    uint64_t v;
    memcpy(&v, end - 8, 8);
    v &= ~0ULL << (8 * (8 - n));
    v = ((v & 0x0F0F0F0F0F0F0F0FULL) * 2561) >> 8;
    v = ((v & 0x00FF00FF00FF00FFULL) * 6553601) >> 16;
    return ((v & 0x0000FFFF0000FFFFULL) * 42949672960001ULL) >> 32;
}

/* 1..16 digits ending just before end; 16 bytes before end are inside. */
static inline uint64_t digits16(const char *end, size_t n)
{
    if (n <= 8)
        return digits8(end, n);
    return digits8(end - 8, n - 8) * 100000000 + digits8(end, 8);
}

/* Spaces are the only whitespace the fast path meets (controls, tabs and
 * newlines included, send a record to the general path). */
static inline const char *spaces(const char *p)
{
    while (*p == ' ')
        p++;
    return p;
}

/* 1 if the bytes at p are the learned separator-and-key literal k. */
__attribute__((target("avx2"))) static inline int literal_matches(const op_parse_fkey_t *k,
                                                                  const char *p, const char *end)
{
    if (likely(end - p >= 32)) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
        __m256i l = _mm256_loadu_si256((const __m256i *)(const void *)k->lit);
        uint32_t eq = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, l));
        return (eq & k->mask) == k->mask && k->mask;
    }
    return k->len && (size_t)(end - p) >= k->len && memcmp(p, k->lit, k->len) == 0;
}

#define BIT(f) (1u << (f))
#define FAST_REQUIRED                                                                              \
    (BIT(F_USER) | BIT(F_GENDER) | BIT(F_CATEGORY) | BIT(F_BRAND) | BIT(F_NUM) | BIT(F_AMOUNT))

/* 1 and *out filled, or 0: the general path must decide. */
__attribute__((target("avx2,bmi,bmi2"))) static int
parse_fast(op_parser_t *ps, const char *buf, size_t len, const op_utf8_scan_t *sc, op_order_t *out)
{
    const char *end = buf + len;
    if (len < 2 || end[-1] != '}')
        return 0;
    op_str_t str[F_TIME_STR + 1];
    int64_t num = 0, cents = 0, ms = 0;
    unsigned seen = 0;
    const char *p = buf; /* at the separator before the next member: '{' or ',' */

    /* Every dereference below is of a byte before end - 1 or of end - 1
     * itself (the '}'): a quote, ':' or ',' is never the last byte, a
     * literal never ends with '}', and the scans for spaces and digits stop
     * at the '}'.
     *
     * The positions of the strings come from the quote list, in order: qi
     * is the next quote not yet consumed. Where a member begins (p, the end
     * of the member before) is only compared with what the list says, never
     * used to find the next string, so that each member's loads wait for
     * the list, not for the member before: the walk is not one long chain
     * of dependent loads. */
    const uint16_t *q = sc->quotes;
    size_t nq = sc->nquotes, qi = 0;
    op_parse_fkey_t *fk = ps->fkeys, *sentinel = ps->fkeys + OP_PARSE_KEY_SLOTS;
    for (unsigned member = 0;; member++, fk += fk != sentinel) {
        enum field id;
        const char *lit;
        /* The learned literal sits fk->qoff bytes before the next quote. */
        if (likely(qi + 1 < nq && q[qi] >= fk->qoff) &&
            literal_matches(fk, lit = buf + q[qi] - fk->qoff, end) && likely(lit == p)) {
            id = (enum field)fk->field;
            qi += 2; /* the literal holds the key's two quotes */
            p = lit + fk->len;
            if (unlikely(*p == ' ')) /* learned from a record without the space */
                p = spaces(p);
        } else {
            const char *sep = p;
            p = spaces(p);
            if (*p == '}' && member)
                break; /* end - 1 or not: checked after the loop */
            if (*p != (member ? ',' : '{'))
                return 0;
            p = spaces(p + 1);
            if (*p != '"' || qi + 1 >= nq || buf + q[qi] != p)
                return 0;
            const char *kc = buf + q[qi + 1];
            qi += 2;
            id = field_of(p + 1, (size_t)(kc - p - 1));
            size_t qoff = (size_t)(p - sep);
            p = spaces(kc + 1);
            if (*p != ':')
                return 0;
            p = spaces(p + 1);
            if (fk != sentinel) {
                size_t n = (size_t)(p - sep);
                if (n > OP_PARSE_KEY_LIT) {
                    fk->len = 0;
                    fk->mask = 0;
                } else {
                    memset(fk->lit, 0, sizeof(fk->lit));
                    memcpy(fk->lit, sep, n);
                    fk->len = (uint8_t)n;
                    fk->mask = n == 32 ? 0xFFFFFFFFu : (1u << n) - 1;
                    fk->field = (uint8_t)id;
                    fk->qoff = (uint8_t)qoff;
                }
            }
        }

        if (*p == '"') {
            if (qi + 1 >= nq || buf + q[qi] != p)
                return 0;
            const char *vc = buf + q[qi + 1];
            qi += 2;
            if (id <= F_TIME_STR) {
                str[id] = (op_str_t){p + 1, (uint32_t)(vc - p - 1)};
                seen |= BIT(id);
            } else if (id != F_UNKNOWN) {
                return 0;
            }
            p = vc + 1;
        } else if (*p == '-' || is_digit(*p)) {
            int neg = *p == '-';
            const char *d = p + neg;
            size_t ni = digit_run(sc->digit, (size_t)(d - buf));
            if (!ni || (ni > 1 && *d == '0'))
                return 0;
            const char *idig = d, *fdig = d + ni;
            size_t nf = 0;
            p = d + ni;
            if (*p == '.') {
                nf = digit_run(sc->digit, (size_t)(p + 1 - buf));
                if (!nf)
                    return 0;
                fdig = p + 1;
                p = fdig + nf;
            }
            if ((*p | 0x20) == 'e')
                return 0;
            if (id != F_UNKNOWN) {
                /* Known numbers: non-negative, no exponent; integers
                 * without a fraction. Their digits start at least 7 bytes
                 * into the record ({"num": is 7), so 8 bytes before the
                 * end of up to 8 digits, and 16 before 9..16, are inside. */
                if (neg || id <= F_TIME_STR)
                    return 0;
                if (id == F_AMOUNT) {
                    if (ni > 10)
                        return 0;
                    int64_t c = (int64_t)digits16(idig + ni, ni) * 100;
                    if (nf) {
                        c += (fdig[0] - '0') * 10;
                        if (nf > 1)
                            c += fdig[1] - '0';
                        if (nf > 2 && fdig[2] >= '5')
                            c++;
                    }
                    if (c > OP_PARSE_MAX_CENTS)
                        return 0;
                    cents = c;
                } else {
                    if (nf || ni > 15)
                        return 0;
                    int64_t v = (int64_t)digits16(idig + ni, ni);
                    if (id == F_NUM) {
                        if (v < 1 || v > OP_PARSE_MAX_NUM)
                            return 0;
                        num = v;
                    } else {
                        if (v < 1 || v > OP_PARSE_MAX_EVENT_MS)
                            return 0;
                        ms = v;
                    }
                }
                seen |= BIT(id);
            }
        } else if (*p == 't' || *p == 'f' || *p == 'n') {
            static const char *const words[] = {"true", "false", "null"};
            const char *w = words[*p == 't' ? 0 : *p == 'f' ? 1 : 2];
            size_t n = *p == 'f' ? 5 : 4;
            if (id != F_UNKNOWN || (size_t)(end - p) <= n || memcmp(p, w, n) != 0)
                return 0;
            p += n;
        } else {
            return 0;
        }
    }
    if (p != end - 1)
        return 0;

    if ((seen & FAST_REQUIRED) != FAST_REQUIRED)
        return 0;
    for (int f = F_USER; f <= F_BRAND; f++)
        if (str[f].len < 1 || str[f].len > OP_PARSE_MAX_NAME)
            return 0;
    if (!(seen & BIT(F_TIME_MS))) {
        if (!(seen & BIT(F_TIME_STR)) || order_time(ps, str[F_TIME_STR], &ms) != 0)
            return 0;
    }
    out->user = str[F_USER];
    out->gender = str[F_GENDER];
    out->category = str[F_CATEGORY];
    out->brand = str[F_BRAND];
    out->num = num;
    out->amount = cents;
    out->event_ms = ms;
    return 1;
}

#else

static int parse_fast(op_parser_t *ps, const char *buf, size_t len, const op_utf8_scan_t *sc,
                      op_order_t *out)
{
    (void)ps, (void)buf, (void)len, (void)sc, (void)out;
    return 0;
}

#endif

int op_parse_order(op_parser_t *ps, const char *buf, size_t len, op_order_t *out)
{
    op_utf8_scan_t sc;
    if (likely(!ps->general_only && op_utf8_scan(buf, len, &sc)) &&
        likely(parse_fast(ps, buf, len, &sc, out))) {
        ps->fast_accepted++;
        return 0;
    }
    return op_parse_order_general(ps, buf, len, out);
}

int op_parse_tz_offset(const char *s, int32_t *out_seconds)
{
    if (!s)
        return -EINVAL;
    if (strcmp(s, "UTC") == 0 || strcmp(s, "Z") == 0 || strcmp(s, "utc") == 0) {
        *out_seconds = 0;
        return 0;
    }
    if (s[0] != '+' && s[0] != '-')
        return -EINVAL;
    int sign = s[0] == '-' ? -1 : 1;
    const char *p = s + 1;
    unsigned h = 0, m = 0, nd = 0;
    while (is_digit(*p) && nd < 2)
        h = h * 10 + (unsigned)(*p++ - '0'), nd++;
    if (!nd)
        return -EINVAL;
    if (*p == ':')
        p++;
    if (*p) {
        if (two_digits(p, &m) || p[2])
            return -EINVAL;
    }
    if (h > 14 || m > 59)
        return -EINVAL;
    *out_seconds = sign * (int32_t)(h * 3600 + m * 60);
    return 0;
}
