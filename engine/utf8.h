/* utf8.h — whole-buffer UTF-8 validation (RFC 3629).
 *
 * The order parser validates a record's UTF-8 once, up front, so that its
 * string scanner only has to look for quotes, backslashes and control
 * characters. Orders are full of multi-byte names and addresses; checking
 * them a code point at a time was the parser's largest cost. With AVX2 the
 * check runs 32 bytes at a time using the nibble-lookup method of Keiser and
 * Lemire ("Validating UTF-8 in less than one instruction per byte", 2021);
 * without it, a scalar loop does the same job.
 *
 * Thread safety: pure function; the CPU dispatch is resolved once, lazily,
 * with a benign race (every thread computes the same answer).
 */
#ifndef OP_UTF8_H
#define OP_UTF8_H

#include <stddef.h>

/* 1 if buf[0..len) is valid UTF-8: no overlong forms, no surrogates, nothing
 * above U+10FFFF, no truncated sequence. Never reads outside the buffer. */
int op_utf8_valid(const char *buf, size_t len);

/* The scalar implementation, exported for the tests to compare against. */
int op_utf8_valid_scalar(const char *buf, size_t len);

/* Offset of the first byte of the first invalid sequence, or len if the
 * buffer is valid (scalar: for error reports, after op_utf8_valid failed). */
size_t op_utf8_invalid_at(const char *buf, size_t len);

#endif
