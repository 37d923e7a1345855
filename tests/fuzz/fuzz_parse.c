/* fuzz_parse.c — libFuzzer target for the order parser.
 *
 * Feeds arbitrary bytes to op_parse_order, in a buffer of exactly the input's
 * size so that AddressSanitizer catches a read one byte past the end, and
 * checks the parser's own promises on every accepted record: fields within
 * their documented bounds, names inside the buffer or the parser's scratch.
 * Also tries the same bytes with a time zone, so both orderTime paths are
 * exercised, and holds the fast path (with each vector kernel the CPU has)
 * to exactly the general path's answer: same verdict, same reason, same
 * values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/parse.h"
#include "engine/utf8.h"

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

static int same_str(op_str_t a, op_str_t b)
{
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

static void same(int rc, const op_order_t *o, int grc, const op_order_t *g)
{
    if (rc != grc)
        abort();
    if (rc == 0 && (!same_str(o->user, g->user) || !same_str(o->gender, g->gender) ||
                    !same_str(o->category, g->category) || !same_str(o->brand, g->brand) ||
                    o->num != g->num || o->amount != g->amount || o->event_ms != g->event_ms))
        abort();
}

/* Parsers kept across inputs, as a worker keeps its own: what one record
 * teaches the learned keys is what the next one is read with. */
static op_parser_t learned[4];
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    op_parser_t ps;
    op_order_t o, g;
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    if (!ready) {
        for (int i = 0; i < 4; i++)
            op_parse_init(&learned[i], 8 * 3600);
        ready = 1;
    }

    op_parse_init(&ps, 0);
    check(&ps, buf, size, op_parse_order(&ps, buf, size, &o), &o);

    op_parse_init(&ps, 8 * 3600);
    ps.general_only = 1;
    int grc = op_parse_order(&ps, buf, size, &g);
    check(&ps, buf, size, grc, &g);
    /* Each kernel the CPU has (3 AVX-512 with VBMI2, 2 AVX-512, 1 AVX2),
     * with fresh learned keys and with the ones earlier inputs left. */
    for (int level = 3; level >= 1; level--) {
        if (op_utf8_set_level(level) != level)
            continue;
        op_parser_t fresh;
        op_parse_init(&fresh, 8 * 3600);
        int rc = op_parse_order(&fresh, buf, size, &o);
        check(&fresh, buf, size, rc, &o);
        same(rc, &o, grc, &g);
        rc = op_parse_order(&learned[level], buf, size, &o);
        check(&learned[level], buf, size, rc, &o);
        same(rc, &o, grc, &g);
    }
    op_utf8_set_level(-1);
    free(buf);
    return 0;
}
