/* fmt.c — integer, cents and civil-time formatting without printf.
 *
 * Integers go out two digits at a time from a 200-byte table, right to left
 * into a small stack buffer; the civil date uses Howard Hinnant's
 * civil_from_days, which is exact for every day count the simulator meets.
 */
#include "sim/fmt.h"

#include <string.h>

static const char digits2[201] = "00010203040506070809"
                                 "10111213141516171819"
                                 "20212223242526272829"
                                 "30313233343536373839"
                                 "40414243444546474849"
                                 "50515253545556575859"
                                 "60616263646566676869"
                                 "70717273747576777879"
                                 "80818283848586878889"
                                 "90919293949596979899";

char *op_fmt_u64(char *p, uint64_t v)
{
    char tmp[OP_FMT_U64_MAX];
    char *q = tmp + sizeof(tmp);
    while (v >= 100) {
        unsigned i = (unsigned)(v % 100) * 2;
        v /= 100;
        q -= 2;
        q[0] = digits2[i];
        q[1] = digits2[i + 1];
    }
    if (v >= 10) {
        q -= 2;
        q[0] = digits2[v * 2];
        q[1] = digits2[v * 2 + 1];
    } else {
        *--q = (char)('0' + v);
    }
    size_t n = (size_t)(tmp + sizeof(tmp) - q);
    memcpy(p, q, n);
    return p + n;
}

char *op_fmt_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return op_fmt_u64(p, (uint64_t)0 - (uint64_t)v);
    }
    return op_fmt_u64(p, (uint64_t)v);
}

char *op_fmt_u64_pad(char *p, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

char *op_fmt_cents(char *p, int64_t cents)
{
    uint64_t u = (uint64_t)cents;
    if (cents < 0) {
        *p++ = '-';
        u = (uint64_t)0 - u;
    }
    p = op_fmt_u64(p, u / 100);
    unsigned c = (unsigned)(u % 100) * 2;
    p[0] = '.';
    p[1] = digits2[c];
    p[2] = digits2[c + 1];
    return p + 3;
}

void op_fmt_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static char *two(char *p, unsigned v)
{
    p[0] = digits2[v * 2];
    p[1] = digits2[v * 2 + 1];
    return p + 2;
}

char *op_fmt_local_time(char *p, int64_t epoch_s, int32_t tz_offset_s)
{
    int64_t t = epoch_s + tz_offset_s;
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t sod = t - days * 86400;
    int64_t y;
    unsigned m, d;
    op_fmt_civil_from_days(days, &y, &m, &d);
    p = op_fmt_u64_pad(p, (uint64_t)(y < 0 ? 0 : y), 4);
    *p++ = '-';
    p = two(p, m);
    *p++ = '-';
    p = two(p, d);
    *p++ = ' ';
    p = two(p, (unsigned)(sod / 3600));
    *p++ = ':';
    p = two(p, (unsigned)(sod / 60 % 60));
    *p++ = ':';
    return two(p, (unsigned)(sod % 60));
}
