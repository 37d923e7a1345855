/* utf8.c — UTF-8 validation, AVX2 with a scalar fallback (see utf8.h).
 *
 * The vector method: a byte sequence is invalid exactly when some pair of
 * adjacent bytes (prev, cur) is an impossible combination, or a continuation
 * byte appears where none is expected / is missing where one is. Each kind of
 * bad pair gets a bit; three 16-entry tables, indexed by prev's high nibble,
 * prev's low nibble and cur's high nibble, each say which kinds the nibble is
 * compatible with, and the AND of the three is the set of errors for the
 * pair. Continuations that must be the 2nd or 3rd after a lead (prev2 >= E0
 * or prev3 >= F0) flip the "two continuations in a row" bit back off.
 */
#include "engine/utf8.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define UTF8_HAVE_AVX2_PATH 1
#endif

/* The scalar reference: one code point at a time. */
size_t op_utf8_invalid_at(const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t avail = (size_t)(end - p);
        if (c < 0xC2)
            return (size_t)(p - (const unsigned char *)buf);
        if (c < 0xE0) {
            if (avail < 2 || (p[1] & 0xC0) != 0x80)
                return (size_t)(p - (const unsigned char *)buf);
            p += 2;
        } else if (c < 0xF0) {
            if (avail < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
                return (size_t)(p - (const unsigned char *)buf);
            if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))
                return (size_t)(p - (const unsigned char *)buf);
            p += 3;
        } else if (c < 0xF5) {
            if (avail < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
                (p[3] & 0xC0) != 0x80)
                return (size_t)(p - (const unsigned char *)buf);
            if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
                return (size_t)(p - (const unsigned char *)buf);
            p += 4;
        } else {
            return (size_t)(p - (const unsigned char *)buf);
        }
    }
    return len;
}

int op_utf8_valid_scalar(const char *buf, size_t len)
{
    return op_utf8_invalid_at(buf, len) == len;
}

#ifdef UTF8_HAVE_AVX2_PATH

/* Kinds of bad adjacent pairs (prev, cur). */
enum {
    TOO_SHORT = 1 << 0,      /* lead followed by a non-continuation */
    TOO_LONG = 1 << 1,       /* ASCII followed by a continuation */
    OVERLONG_3 = 1 << 2,     /* E0 followed by 80..9F */
    TOO_LARGE = 1 << 3,      /* F4 followed by 90..BF, or F5..FF followed by 90..BF */
    SURROGATE = 1 << 4,      /* ED followed by A0..BF */
    OVERLONG_2 = 1 << 5,     /* C0/C1 followed by a continuation */
    TOO_LARGE_1000 = 1 << 6, /* F5..FF followed by 80..8F */
    OVERLONG_4 = 1 << 6,     /* F0 followed by 80..8F (shares the bit: same cur range) */
    TWO_CONTS = 1 << 7,      /* continuation followed by continuation */
    CARRY = TOO_SHORT | TOO_LONG | TWO_CONTS, /* kinds that do not depend on prev's low nibble */
};

/* Which kinds each nibble allows; a pair is bad for the kinds all three allow. */
static const int8_t prev_high[16] = {
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG, /* 0..7 */
    TWO_CONTS,
    TWO_CONTS,
    TWO_CONTS,
    TWO_CONTS,                                           /* 8..B */
    TOO_SHORT | OVERLONG_2,                              /* C */
    TOO_SHORT,                                           /* D */
    TOO_SHORT | OVERLONG_3 | SURROGATE,                  /* E */
    TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4, /* F */
};
static const int8_t prev_low[16] = {
    CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4, /* 0 */
    CARRY | OVERLONG_2,                           /* 1 */
    CARRY,
    CARRY,
    CARRY | TOO_LARGE, /* 4 */
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE, /* D */
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
};
static const int8_t cur_high[16] = {
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    (int8_t)(TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4), /* 8 */
    (int8_t)(TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE),                   /* 9 */
    (int8_t)(TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE),                    /* A */
    (int8_t)(TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE),                    /* B */
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT, /* C..F */
};

__attribute__((target("avx2"))) static inline __m256i table(const int8_t t[16])
{
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)t));
}

/* The bytes of cur shifted by n positions, with the last n bytes of prev in front. */
#define PREV(cur, prev, n)                                                                         \
    _mm256_alignr_epi8((cur), _mm256_permute2x128_si256((prev), (cur), 0x21), 16 - (n))

__attribute__((target("avx2"))) static __m256i block_errors(__m256i cur, __m256i prev, __m256i t1,
                                                            __m256i t2, __m256i t3)
{
    const __m256i nib = _mm256_set1_epi8(0x0F);
    __m256i prev1 = PREV(cur, prev, 1);
    __m256i sc = _mm256_and_si256(
        _mm256_and_si256(
            _mm256_shuffle_epi8(t1, _mm256_and_si256(_mm256_srli_epi16(prev1, 4), nib)),
            _mm256_shuffle_epi8(t2, _mm256_and_si256(prev1, nib))),
        _mm256_shuffle_epi8(t3, _mm256_and_si256(_mm256_srli_epi16(cur, 4), nib)));
    __m256i prev2 = PREV(cur, prev, 2), prev3 = PREV(cur, prev, 3);
    __m256i third = _mm256_subs_epu8(prev2, _mm256_set1_epi8((char)(0xE0 - 1)));
    __m256i fourth = _mm256_subs_epu8(prev3, _mm256_set1_epi8((char)(0xF0 - 1)));
    __m256i must23 = _mm256_cmpgt_epi8(_mm256_or_si256(third, fourth), _mm256_setzero_si256());
    __m256i must23_80 = _mm256_and_si256(must23, _mm256_set1_epi8((char)0x80));
    return _mm256_xor_si256(must23_80, sc);
}

__attribute__((target("avx2"))) static int valid_avx2(const char *buf, size_t len)
{
    const __m256i t1 = table(prev_high), t2 = table(prev_low), t3 = table(cur_high);
    __m256i prev = _mm256_setzero_si256(), err = _mm256_setzero_si256();
    int prev_ascii = 1;
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        __m256i cur = _mm256_loadu_si256((const __m256i *)(const void *)(buf + i));
        int ascii = _mm256_movemask_epi8(cur) == 0;
        /* Two ASCII blocks in a row cannot hold an error. */
        if (!(ascii && prev_ascii))
            err = _mm256_or_si256(err, block_errors(cur, prev, t1, t2, t3));
        prev = cur;
        prev_ascii = ascii;
    }
    /* The tail, padded with zeros (there is always at least one): a
     * sequence cut short by the end of the buffer then shows up as a lead
     * followed by ASCII, or a missing 2nd/3rd continuation. */
    char tail[32] = {0};
    memcpy(tail, buf + i, len - i);
    __m256i cur = _mm256_loadu_si256((const __m256i *)(const void *)tail);
    err = _mm256_or_si256(err, block_errors(cur, prev, t1, t2, t3));
    return _mm256_testz_si256(err, err);
}

/* ---- the record scan: UTF-8 plus the bitmaps of the order parser's fast path ---- */

/* Which bytes of a 64-byte block are quotes, digits, and "special" (a
 * backslash or a control character: either sends the record to the
 * general parser). */
typedef struct scan_masks {
    uint64_t quote, digit, special;
} scan_masks_t;

__attribute__((target("avx2"))) static uint64_t mask32(__m256i m)
{
    return (uint32_t)_mm256_movemask_epi8(m);
}

__attribute__((target("avx2"))) static scan_masks_t masks_avx2(__m256i lo, __m256i hi)
{
    const __m256i quote = _mm256_set1_epi8('"'), bslash = _mm256_set1_epi8('\\');
    const __m256i space = _mm256_set1_epi8(0x1F), zero = _mm256_set1_epi8('0');
    const __m256i nine = _mm256_set1_epi8(9);
    scan_masks_t m;
    m.quote = mask32(_mm256_cmpeq_epi8(lo, quote)) | mask32(_mm256_cmpeq_epi8(hi, quote)) << 32;
    /* unsigned x <= 0x1F  <=>  min(x, 0x1F) == x */
    __m256i sl = _mm256_or_si256(_mm256_cmpeq_epi8(lo, bslash),
                                 _mm256_cmpeq_epi8(_mm256_min_epu8(lo, space), lo));
    __m256i sh = _mm256_or_si256(_mm256_cmpeq_epi8(hi, bslash),
                                 _mm256_cmpeq_epi8(_mm256_min_epu8(hi, space), hi));
    m.special = mask32(sl) | mask32(sh) << 32;
    __m256i dl = _mm256_sub_epi8(lo, zero), dh = _mm256_sub_epi8(hi, zero);
    m.digit = mask32(_mm256_cmpeq_epi8(_mm256_min_epu8(dl, nine), dl)) |
              mask32(_mm256_cmpeq_epi8(_mm256_min_epu8(dh, nine), dh)) << 32;
    return m;
}

/* The quote bits as positions: one tzcnt and one blsr per quote. */
__attribute__((target("bmi"))) static void flatten(op_utf8_scan_t *s, size_t nb)
{
    uint32_t n = 0;
    for (size_t b = 0; b < nb; b++)
        for (uint64_t w = s->quote[b]; w; w &= w - 1)
            s->quotes[n++] = (uint16_t)(b * 64 + (size_t)__builtin_ctzll(w));
    s->nquotes = n;
}

__attribute__((target("avx2"))) static int scan_avx2(const char *buf, size_t len, op_utf8_scan_t *s)
{
    const __m256i t1 = table(prev_high), t2 = table(prev_low), t3 = table(cur_high);
    __m256i prev = _mm256_setzero_si256(), err = _mm256_setzero_si256();
    uint64_t special = 0;
    size_t nb = (len + 63) / 64;
    for (size_t b = 0; b < nb; b++) {
        const char *p = buf + b * 64;
        __m256i lo, hi;
        uint64_t valid = ~0ULL;
        if (b * 64 + 64 <= len) {
            lo = _mm256_loadu_si256((const __m256i *)(const void *)p);
            hi = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
        } else {
            /* The tail, zero-padded: a sequence cut by the end shows up as
             * a lead followed by ASCII (or a missing continuation). */
            char tail[64] = {0};
            size_t n = len - b * 64;
            memcpy(tail, p, n);
            lo = _mm256_loadu_si256((const __m256i *)(const void *)tail);
            hi = _mm256_loadu_si256((const __m256i *)(const void *)(tail + 32));
            valid = (1ULL << n) - 1;
        }
        scan_masks_t m = masks_avx2(lo, hi);
        s->quote[b] = m.quote;
        s->digit[b] = m.digit;
        special |= m.special & valid;
        if (!_mm256_testz_si256(_mm256_or_si256(lo, hi), _mm256_set1_epi8((char)0x80)) ||
            !_mm256_testz_si256(prev, _mm256_set1_epi8((char)0x80))) {
            err = _mm256_or_si256(err, block_errors(lo, prev, t1, t2, t3));
            err = _mm256_or_si256(err, block_errors(hi, lo, t1, t2, t3));
        }
        prev = hi;
    }
    if (len % 64 == 0) /* no padding: a final zero block catches a cut sequence */
        err = _mm256_or_si256(err, block_errors(_mm256_setzero_si256(), prev, t1, t2, t3));
    s->quote[nb] = s->digit[nb] = 0;
    if (special || !_mm256_testz_si256(err, err))
        return 0;
    flatten(s, nb);
    return 1;
}

#define AVX512 "avx512f,avx512bw,avx512vl,avx2,bmi,bmi2"

__attribute__((target(AVX512))) static inline __m512i table512(const int8_t t[16])
{
    return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)t));
}

/* block_errors on 64 bytes: lane i-1 of (prev, cur) moved under lane i,
 * then the same byte alignment as the AVX2 version. */
#define PREV512(cur, shifted, n) _mm512_alignr_epi8((cur), (shifted), 16 - (n))

__attribute__((target(AVX512))) static __m512i block_errors512(__m512i cur, __m512i prev,
                                                               __m512i t1, __m512i t2, __m512i t3)
{
    const __m512i nib = _mm512_set1_epi8(0x0F);
    const __m512i lanes = _mm512_setr_epi64(6, 7, 8, 9, 10, 11, 12, 13);
    __m512i shifted = _mm512_permutex2var_epi64(prev, lanes, cur);
    __m512i prev1 = PREV512(cur, shifted, 1);
    __m512i sc = _mm512_and_si512(
        _mm512_and_si512(
            _mm512_shuffle_epi8(t1, _mm512_and_si512(_mm512_srli_epi16(prev1, 4), nib)),
            _mm512_shuffle_epi8(t2, _mm512_and_si512(prev1, nib))),
        _mm512_shuffle_epi8(t3, _mm512_and_si512(_mm512_srli_epi16(cur, 4), nib)));
    __m512i prev2 = PREV512(cur, shifted, 2), prev3 = PREV512(cur, shifted, 3);
    __m512i third = _mm512_subs_epu8(prev2, _mm512_set1_epi8((char)(0xE0 - 1)));
    __m512i fourth = _mm512_subs_epu8(prev3, _mm512_set1_epi8((char)(0xF0 - 1)));
    __mmask64 must23 =
        _mm512_test_epi8_mask(_mm512_or_si512(third, fourth), _mm512_or_si512(third, fourth));
    __m512i must23_80 = _mm512_maskz_mov_epi8(must23, _mm512_set1_epi8((char)0x80));
    return _mm512_xor_si512(must23_80, sc);
}

__attribute__((target(AVX512))) static int scan_avx512(const char *buf, size_t len,
                                                       op_utf8_scan_t *s)
{
    const __m512i t1 = table512(prev_high), t2 = table512(prev_low), t3 = table512(cur_high);
    const __m512i quote = _mm512_set1_epi8('"'), bslash = _mm512_set1_epi8('\\');
    const __m512i space = _mm512_set1_epi8(0x20), zero = _mm512_set1_epi8('0');
    const __m512i ten = _mm512_set1_epi8(10);
    __m512i prev = _mm512_setzero_si512(), err = _mm512_setzero_si512();
    uint64_t special = 0, prev_high_bits = 0;
    size_t nb = (len + 63) / 64;
    for (size_t b = 0; b < nb; b++) {
        size_t at = b * 64;
        /* A masked load never touches the bytes it leaves out: the tail
         * is read as zeros without reading past the record. */
        __mmask64 valid = at + 64 <= len ? ~0ULL : (1ULL << (len - at)) - 1;
        __m512i v = _mm512_maskz_loadu_epi8(valid, buf + at);
        s->quote[b] = _mm512_cmpeq_epi8_mask(v, quote);
        s->digit[b] = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(v, zero), ten);
        special |= _mm512_cmpeq_epi8_mask(v, bslash) | _mm512_mask_cmplt_epu8_mask(valid, v, space);
        uint64_t high = _mm512_movepi8_mask(v);
        if (high | prev_high_bits)
            err = _mm512_or_si512(err, block_errors512(v, prev, t1, t2, t3));
        prev = v;
        prev_high_bits = high;
    }
    if (len % 64 == 0 && prev_high_bits)
        err = _mm512_or_si512(err, block_errors512(_mm512_setzero_si512(), prev, t1, t2, t3));
    s->quote[nb] = s->digit[nb] = 0;
    return !special && !_mm512_test_epi8_mask(err, err);
}

/* flatten with VBMI2: per block, the positions of the quote bits are
 * compressed out of a vector of all 64 positions, 32 at a time (16-bit
 * lanes), and stored whole; the count moves the output on. No branch per
 * quote. */
__attribute__((target(AVX512 ",avx512vbmi2,popcnt"))) static void flatten_vbmi2(op_utf8_scan_t *s,
                                                                                size_t nb)
{
    static const uint16_t iota[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                      11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                                      22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
    __m512i pos = _mm512_loadu_si512((const void *)iota);
    const __m512i step = _mm512_set1_epi16(32);
    uint32_t n = 0;
    for (size_t b = 0; b < nb; b++) {
        uint64_t w = s->quote[b];
        __mmask32 lo = (__mmask32)w, hi = (__mmask32)(w >> 32);
        _mm512_storeu_si512((void *)(s->quotes + n), _mm512_maskz_compress_epi16(lo, pos));
        n += (uint32_t)__builtin_popcount(lo);
        pos = _mm512_add_epi16(pos, step);
        _mm512_storeu_si512((void *)(s->quotes + n), _mm512_maskz_compress_epi16(hi, pos));
        n += (uint32_t)__builtin_popcount(hi);
        pos = _mm512_add_epi16(pos, step);
    }
    s->nquotes = n;
}

/* The best kernel this CPU has: 2 AVX-512, 1 AVX2, 0 none. -1 until the
 * first call decides; every access is atomic (relaxed: all threads compute
 * the same value, so the race to store it is benign). */
static int level = -1;

static int cpu_level(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("bmi2"))
        return __builtin_cpu_supports("avx512vbmi2") ? 3 : 2;
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}

static int get_level(void)
{
    int l = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (l < 0) {
        l = cpu_level();
        __atomic_store_n(&level, l, __ATOMIC_RELAXED);
    }
    return l;
}

int op_utf8_set_level(int want)
{
    int have = cpu_level();
    int l = want < 0 || want > have ? have : want;
    __atomic_store_n(&level, l, __ATOMIC_RELAXED);
    return l;
}

int op_utf8_valid(const char *buf, size_t len)
{
    return get_level() ? valid_avx2(buf, len) : op_utf8_valid_scalar(buf, len);
}

int op_utf8_scan(const char *buf, size_t len, op_utf8_scan_t *s)
{
    if (len == 0 || len > OP_UTF8_SCAN_MAX)
        return 0;
    switch (get_level()) {
    case 3:
        if (!scan_avx512(buf, len, s))
            return 0;
        flatten_vbmi2(s, (len + 63) / 64);
        return 1;
    case 2:
        if (!scan_avx512(buf, len, s))
            return 0;
        flatten(s, (len + 63) / 64);
        return 1;
    case 1:
        return scan_avx2(buf, len, s);
    default:
        return 0;
    }
}

#else

int op_utf8_valid(const char *buf, size_t len)
{
    return op_utf8_valid_scalar(buf, len);
}

int op_utf8_set_level(int want)
{
    (void)want;
    return 0;
}

int op_utf8_scan(const char *buf, size_t len, op_utf8_scan_t *s)
{
    (void)buf, (void)len, (void)s;
    return 0;
}

#endif
