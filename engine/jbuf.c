/* jbuf.c — JSON output buffer (see jbuf.h). */
#include "engine/jbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util.h"

void op_jbuf_init(op_jbuf_t *b)
{
    memset(b, 0, sizeof(*b));
}

void op_jbuf_dispose(op_jbuf_t *b)
{
    free(b->buf);
    memset(b, 0, sizeof(*b));
}

void op_jbuf_reserve(op_jbuf_t *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    b->buf = op_xrealloc(b->buf, cap);
    b->cap = cap;
}

void op_jbuf_raw(op_jbuf_t *b, const char *s, size_t len)
{
    op_jbuf_reserve(b, len);
    memcpy(b->buf + b->len, s, len);
    b->len += len;
}

void op_jbuf_lit(op_jbuf_t *b, const char *s)
{
    op_jbuf_raw(b, s, strlen(s));
}

void op_jbuf_str(op_jbuf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    op_jbuf_reserve(b, len * 6 + 2);
    char *o = b->buf + b->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->buf);
}

static size_t format_u64(char *out, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

void op_jbuf_i64(op_jbuf_t *b, int64_t v)
{
    op_jbuf_reserve(b, 24);
    char *o = b->buf + b->len;
    size_t n = 0;
    uint64_t u = (uint64_t)v;
    if (v < 0) {
        o[n++] = '-';
        u = 0 - u;
    }
    n += format_u64(o + n, u);
    b->len += n;
}

size_t op_jbuf_format_cents(char *out, int64_t cents)
{
    size_t n = 0;
    uint64_t u = (uint64_t)cents;
    if (cents < 0) {
        out[n++] = '-';
        u = 0 - u;
    }
    n += format_u64(out + n, u / 100);
    out[n++] = '.';
    out[n++] = (char)('0' + u % 100 / 10);
    out[n++] = (char)('0' + u % 10);
    return n;
}

void op_jbuf_cents(op_jbuf_t *b, int64_t cents)
{
    op_jbuf_reserve(b, 24);
    b->len += op_jbuf_format_cents(b->buf + b->len, cents);
}

void op_jbuf_share(op_jbuf_t *b, int64_t part, int64_t whole)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%.6f", whole > 0 ? (double)part / (double)whole : 0.0);
    op_jbuf_raw(b, tmp, (size_t)n);
}
