/* jbuf.h — a growable byte buffer with the JSON writers the snapshot needs.
 *
 * Every API body is rendered once per tick by the merger, never per
 * request; this is the only JSON writer of the engine. Strings are written
 * with the escapes RFC 8259 requires (quote, backslash, control characters)
 * and nothing else: names are already valid UTF-8 (the parser checked).
 * Money is written from integer cents with exactly two decimals.
 *
 * Owner: the thread that created it. Out of memory aborts.
 */
#ifndef OP_JBUF_H
#define OP_JBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct op_jbuf {
    char *buf;
    size_t len, cap;
} op_jbuf_t;

void op_jbuf_init(op_jbuf_t *b);
void op_jbuf_dispose(op_jbuf_t *b);
void op_jbuf_reserve(op_jbuf_t *b, size_t extra);

void op_jbuf_raw(op_jbuf_t *b, const char *s, size_t len);
void op_jbuf_lit(op_jbuf_t *b, const char *s);             /* NUL-terminated raw text */
void op_jbuf_str(op_jbuf_t *b, const char *s, size_t len); /* quoted, escaped */
void op_jbuf_i64(op_jbuf_t *b, int64_t v);
void op_jbuf_cents(op_jbuf_t *b, int64_t cents);               /* 12345 -> 123.45, -5 -> -0.05 */
void op_jbuf_share(op_jbuf_t *b, int64_t part, int64_t whole); /* part/whole, 6 decimals */

/* Formats cents into out (at least 24 bytes); returns the length. */
size_t op_jbuf_format_cents(char *out, int64_t cents);

#endif
