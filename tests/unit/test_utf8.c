/* test_utf8.c — the vector UTF-8 validator against the scalar one and
 * against hand-picked valid and invalid sequences at every block offset. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/utf8.h"
#include "tests/unit/xorshift.h"

static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void)
{
    return xorshift64(&rng);
}

static const char *const valid[] = {
    "a",
    "\xC2\x80",
    "\xDF\xBF",
    "\xE0\xA0\x80",
    "\xE6\x89\x8B",
    "\xED\x9F\xBF",
    "\xEE\x80\x80",
    "\xEF\xBF\xBF",
    "\xF0\x90\x80\x80",
    "\xF0\x9F\x98\x80",
    "\xF4\x8F\xBF\xBF",
    "\xF3\xBF\xBF\xBF",
};
static const char *const invalid[] = {
    "\x80",
    "\xBF",
    "\xC0\x80",
    "\xC1\xBF",
    "\xC2",
    "\xC2\x41",
    "\xE0\x80\x80",
    "\xE0\x9F\xBF",
    "\xED\xA0\x80",
    "\xED\xBF\xBF",
    "\xE6\x89",
    "\xE6\x41\x8B",
    "\xF0\x80\x80\x80",
    "\xF0\x8F\xBF\xBF",
    "\xF4\x90\x80\x80",
    "\xF5\x80\x80\x80",
    "\xF8\x88\x80\x80\x80",
    "\xFF",
    "\xFE",
    "\xF0\x9F\x98",
    "\xC2\x80\x80",
};

/* Each sequence embedded at every offset of ASCII buffers of several sizes,
 * so it straddles the 32-byte blocks and the padded tail. */
Test(utf8, sequences_at_every_offset)
{
    char buf[100];
    for (size_t size = 1; size <= sizeof(buf); size++) {
        for (size_t k = 0;
             k < sizeof(valid) / sizeof(valid[0]) + sizeof(invalid) / sizeof(invalid[0]); k++) {
            int ok = k < sizeof(valid) / sizeof(valid[0]);
            const char *seq = ok ? valid[k] : invalid[k - sizeof(valid) / sizeof(valid[0])];
            size_t n = strlen(seq);
            for (size_t at = 0; at + n <= size; at++) {
                memset(buf, 'x', size);
                memcpy(buf + at, seq, n);
                cr_assert_eq(op_utf8_valid(buf, size), ok, "seq %zu at %zu of %zu", k, at, size);
                cr_assert_eq(op_utf8_valid_scalar(buf, size), ok, "scalar seq %zu at %zu", k, at);
            }
        }
    }
}

/* Random mixes of valid code points with random byte damage. */
Test(utf8, agrees_with_scalar_on_random_damage)
{
    static const char *const pieces[] = {"a", "{\"", "\xE5\xBC\xA0", "\xC3\xA9", "\xF0\x9F\x98\x80",
                                         " "};
    char buf[400];
    for (int round = 0; round < 200000; round++) {
        size_t len = 0, want = next() % 300;
        while (len < want) {
            const char *p = pieces[next() % 6];
            size_t n = strlen(p);
            if (len + n > sizeof(buf))
                break;
            memcpy(buf + len, p, n);
            len += n;
        }
        int damage = (int)(next() % 4);
        for (int d = 0; d < damage && len; d++)
            buf[next() % len] = (char)(next() & 0xFF);
        if (next() % 8 == 0 && len)
            len -= next() % (len < 4 ? len : 4); /* cut in the middle of a sequence */
        cr_assert_eq(op_utf8_valid(buf, len), op_utf8_valid_scalar(buf, len), "round %d", round);
    }
}

Test(utf8, empty_and_exact_blocks)
{
    cr_assert(op_utf8_valid("", 0));
    char buf[64];
    memset(buf, 'a', sizeof(buf));
    cr_assert(op_utf8_valid(buf, 32));
    cr_assert(op_utf8_valid(buf, 64));
    memcpy(buf + 30, "\xE6\x89", 2); /* cut exactly at a block end */
    cr_assert_not(op_utf8_valid(buf, 32));
    memcpy(buf + 61, "\xF0\x9F\x98", 3);
    cr_assert_not(op_utf8_valid(buf, 64));
}

/* op_utf8_scan at each vector level against a byte loop: the verdict
 * (valid UTF-8, no backslash, no control character) and the quote and digit
 * bitmaps, on random records of every length up to a few blocks. */
Test(utf8, scan_agrees_with_a_byte_loop)
{
    static const char *const pieces[] = {
        "a",  "{\"", "\xE5\xBC\xA0", "\xC3\xA9", "\xF0\x9F\x98\x80", " ", "7", "\"",
        "\\", "\t",  "09",           ":",        "\xE6\x89"};
    char buf[300];
    for (int level = 1; level <= 3; level++) {
        if (op_utf8_set_level(level) != level)
            continue;
        for (int round = 0; round < 100000; round++) {
            size_t len = 0, want = 1 + next() % 260;
            /* Mostly clean records, so that the verdict is often 1. */
            int dirty = next() % 4 == 0;
            while (len < want) {
                const char *p = pieces[next() % (dirty ? 13 : 7)];
                size_t n = strlen(p);
                if (len + n > sizeof(buf))
                    break;
                memcpy(buf + len, p, n);
                len += n;
            }
            if (dirty && next() % 2 && len)
                buf[next() % len] = (char)(next() & 0xFF);
            int special = 0;
            for (size_t i = 0; i < len; i++)
                special |= buf[i] == '\\' || (unsigned char)buf[i] < 0x20;
            int want_ok = op_utf8_valid_scalar(buf, len) && !special;
            op_utf8_scan_t s;
            cr_assert_eq(op_utf8_scan(buf, len, &s), want_ok, "level %d round %d", level, round);
            if (!want_ok)
                continue;
            uint32_t nq = 0;
            for (size_t i = 0; i < (len + 63) / 64 * 64; i++) {
                int q = i < len && buf[i] == '"', d = i < len && buf[i] >= '0' && buf[i] <= '9';
                cr_assert_eq((int)(s.quote[i / 64] >> (i % 64) & 1), q, "quote bit %zu", i);
                cr_assert_eq((int)(s.digit[i / 64] >> (i % 64) & 1), d, "digit bit %zu", i);
                if (q) {
                    cr_assert_lt(nq, s.nquotes);
                    cr_assert_eq(s.quotes[nq], i, "quote %u at %u, want %zu", nq, s.quotes[nq], i);
                    nq++;
                }
            }
            cr_assert_eq(nq, s.nquotes);
        }
    }
    op_utf8_set_level(-1);
}

Test(utf8, scan_limits)
{
    op_utf8_scan_t s;
    static char big[OP_UTF8_SCAN_MAX + 1];
    memset(big, 'a', sizeof(big));
    cr_assert_eq(op_utf8_scan(big, 0, &s), 0);
    cr_assert_eq(op_utf8_scan(big, OP_UTF8_SCAN_MAX, &s), op_utf8_set_level(-1) > 0);
    cr_assert_eq(op_utf8_scan(big, OP_UTF8_SCAN_MAX + 1, &s), 0);
    /* A sequence cut exactly at a 64-byte block end, with no padding after. */
    memcpy(big + 62, "\xE6\x89", 2);
    cr_assert_eq(op_utf8_scan(big, 64, &s), 0);
    memcpy(big + 61, "\xE6\x89\x8B", 3);
    cr_assert_eq(op_utf8_scan(big, 64, &s), op_utf8_set_level(-1) > 0);
    cr_assert_eq(op_utf8_scan(big, 63, &s), 0);
}
