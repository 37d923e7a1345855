/* fmt.h — hand-rolled number and time formatting for the simulator's hot loop.
 *
 * The simulator writes a million orders a second; snprintf per field would
 * cost more than everything else together. These write into a caller's
 * buffer and return the end pointer, never a NUL (callers that want a C
 * string terminate it themselves). Money is integer cents: 599900 prints as
 * "5999.00", exactly, without going through double.
 *
 * Thread safety: pure functions.
 */
#ifndef OP_FMT_H
#define OP_FMT_H

#include <stdint.h>

#define OP_FMT_U64_MAX  20 /* digits of UINT64_MAX */
#define OP_FMT_TIME_LEN 19 /* "yyyy-MM-dd HH:mm:ss" */

/* Decimal digits of v. Needs OP_FMT_U64_MAX bytes. */
char *op_fmt_u64(char *p, uint64_t v);
/* Signed decimal. Needs OP_FMT_U64_MAX + 1 bytes. */
char *op_fmt_i64(char *p, int64_t v);
/* v zero-padded to exactly width digits (v must fit). */
char *op_fmt_u64_pad(char *p, uint64_t v, int width);
/* Cents as an amount with exactly two decimals: 5 -> "0.05", -150 -> "-1.50". */
char *op_fmt_cents(char *p, int64_t cents);

/* Proleptic Gregorian date of a day count since 1970-01-01 (the inverse of
 * op_parse_days_from_civil). */
void op_fmt_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);
/* epoch_s + tz_offset_s rendered as "yyyy-MM-dd HH:mm:ss" (exactly 19 bytes;
 * years 0..9999). */
char *op_fmt_local_time(char *p, int64_t epoch_s, int32_t tz_offset_s);

#endif
