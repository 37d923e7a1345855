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

/* -1 until the first call decides; every access is atomic (relaxed: all
 * threads compute the same value, so the race to store it is benign). */
static int have_avx2 = -1;

int op_utf8_valid(const char *buf, size_t len)
{
    int avx2 = __atomic_load_n(&have_avx2, __ATOMIC_RELAXED);
    if (avx2 < 0) {
        avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&have_avx2, avx2, __ATOMIC_RELAXED);
    }
    return avx2 ? valid_avx2(buf, len) : op_utf8_valid_scalar(buf, len);
}

#else

int op_utf8_valid(const char *buf, size_t len)
{
    return op_utf8_valid_scalar(buf, len);
}

#endif
