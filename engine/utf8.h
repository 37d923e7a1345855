/* utf8.h — whole-buffer UTF-8 validation (RFC 3629), and the record scan.
 *
 * The order parser validates a record's UTF-8 once, up front, so that its
 * string scanner only has to look for quotes, backslashes and control
 * characters. Orders are full of multi-byte names and addresses; checking
 * them a code point at a time was the parser's largest cost. With AVX2 the
 * check runs 32 bytes at a time (with AVX-512, 64) using the nibble-lookup
 * method of Keiser and Lemire ("Validating UTF-8 in less than one
 * instruction per byte", 2021); without it, a scalar loop does the same job.
 *
 * op_utf8_scan is that validation fused with the parser's structural scan:
 * in the same pass over the record it records where the quotes and digits
 * are, one bit per byte, so that the parser's fast path finds every string
 * end and number end with bit operations instead of byte loops.
 *
 * Thread safety: pure functions; the CPU dispatch is resolved once, lazily,
 * with a benign race (every thread computes the same answer).
 */
#ifndef OP_UTF8_H
#define OP_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* 1 if buf[0..len) is valid UTF-8: no overlong forms, no surrogates, nothing
 * above U+10FFFF, no truncated sequence. Never reads outside the buffer. */
int op_utf8_valid(const char *buf, size_t len);

/* The scalar implementation, exported for the tests to compare against. */
int op_utf8_valid_scalar(const char *buf, size_t len);

/* Offset of the first byte of the first invalid sequence, or len if the
 * buffer is valid (scalar: for error reports, after op_utf8_valid failed). */
size_t op_utf8_invalid_at(const char *buf, size_t len);

/* Records longer than this take the parser's general path. */
#define OP_UTF8_SCAN_MAX 2048

/* The bitmaps of one record: bit i of word b is byte 64 * b + i. Only the
 * words of the record's (len + 63) / 64 blocks are written, and one zero
 * word after them (so that a reader may always look at two words); in the
 * last block, the bits past the record are 0. */
typedef struct op_utf8_scan {
    uint64_t quote[OP_UTF8_SCAN_MAX / 64 + 1]; /* '"' */
    uint64_t digit[OP_UTF8_SCAN_MAX / 64 + 1]; /* '0'..'9' */
    /* The quote bits as positions, in order (filled when the verdict is
     * 1): a parser walking strings reads the next position from here
     * instead of searching from where the last string ended, so finding
     * one string does not wait for the one before. */
    uint32_t nquotes;
    uint16_t quotes[OP_UTF8_SCAN_MAX + 64]; /* + room for a whole block's stores */
} op_utf8_scan_t;

/* Scans buf[0..len) (1 <= len <= OP_UTF8_SCAN_MAX) and fills s. Returns 1
 * when the record is valid UTF-8 and holds no backslash and no control
 * character (< 0x20) anywhere: then a string is exactly the bytes between
 * two consecutive quotes. Returns 0 otherwise, and also when the CPU has no
 * vector unit for it (the caller then takes its general path, which
 * decides everything itself). Never reads outside the buffer. */
int op_utf8_scan(const char *buf, size_t len, op_utf8_scan_t *s);

/* For tests and benchmarks: use at most this kernel from now on (0 scalar,
 * 1 AVX2, 2 AVX-512, 3 AVX-512 with VBMI2's compress for the quote
 * positions; -1 the best the CPU has). Returns the level in use. Not for use
 * while other threads parse. */
int op_utf8_set_level(int level);

#endif
