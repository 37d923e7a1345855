/* view.c — copying a snapshot into one thread-owned, reference-counted block
 * (see view.h), and finding elements of its sliceable arrays by key.
 */
#include "http/view.h"

#include <string.h>

/* The leading key of an element: the number after the first ':' of
 * '{"minute":1731233400000,...' or '{"slot":...'. */
static int64_t elem_key(h2o_iovec_t e)
{
    const char *p = memchr(e.base, ':', e.len), *end = e.base + e.len;
    if (!p)
        return INT64_MIN;
    p++;
    int neg = p < end && *p == '-';
    p += neg;
    int64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9')
        v = v * 10 + (*p++ - '0');
    return neg ? -v : v;
}

int32_t op_http_view_find(const op_http_view_t *v, op_resource_t r, int64_t key)
{
    uint32_t lo = 0, hi = v->res[r].n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int64_t k = elem_key(op_http_view_elem(v, r, mid));
        if (k == key)
            return (int32_t)mid;
        if (k < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int32_t default_category(const op_http_view_t *v)
{
    uint32_t ncat = v->res[OP_RES_CATEGORIES].n;
    if (ncat == 0)
        return -1;
    static const char final[] = "\"final\":true}";
    for (uint32_t i = v->res[OP_RES_MINUTES].n; i-- > 0;) {
        h2o_iovec_t e = op_http_view_elem(v, OP_RES_MINUTES, i);
        if (e.len >= sizeof(final) - 1 &&
            memcmp(e.base + e.len - (sizeof(final) - 1), final, sizeof(final) - 1) == 0) {
            int32_t c = op_http_view_find(v, OP_RES_CATEGORIES, elem_key(e));
            return c >= 0 ? c : (int32_t)ncat - 1;
        }
    }
    return (int32_t)ncat - 1;
}

op_http_view_t *op_http_view_create(const op_snapshot_t *s)
{
    size_t etag_len = strlen(s->etag);
    size_t noff = 0, nbytes = etag_len + s->nparts * sizeof(*s->parts);
    for (int r = 0; r < OP_RES_COUNT; r++) {
        noff += s->res[r].off ? s->res[r].n + 1 : 0;
        nbytes += s->res[r].len;
    }
    char *block =
        h2o_mem_alloc_shared(NULL, sizeof(op_http_view_t) + noff * sizeof(uint32_t) + nbytes, NULL);
    op_http_view_t *v = (op_http_view_t *)block;
    /* The partitions first: their 8-byte members stay aligned. */
    op_snapshot_part_t *parts = (op_snapshot_part_t *)(block + sizeof(*v));
    uint32_t *offs = (uint32_t *)(parts + s->nparts);
    char *bytes = (char *)(offs + noff);

    memset(v, 0, sizeof(*v));
    v->tick = s->tick;
    v->as_of_ms = s->as_of_ms;
    v->watermark_ms = s->watermark_ms;
    v->orders = s->orders;
    v->bad_records = s->bad_records;
    v->late_records = s->late_records;
    v->dead_letter_errors = s->dead_letter_errors;
    v->lag = s->lag;
    v->users = s->users;
    v->lost_records = s->lost_records;
    memcpy(v->bad, s->bad, sizeof(v->bad));
    if (s->nparts)
        memcpy(parts, s->parts, s->nparts * sizeof(*parts));
    v->parts = parts;
    v->nparts = s->nparts;
    v->tick_hist = s->tick_hist;
    v->flush_hist = s->flush_hist;
    v->redis = s->redis;
    memcpy(bytes, s->etag, etag_len);
    v->etag = h2o_iovec_init(bytes, etag_len);
    bytes += etag_len;
    for (int r = 0; r < OP_RES_COUNT; r++) {
        const op_jarray_t *a = &s->res[r];
        op_jarray_t *b = &v->res[r];
        if (a->len)
            memcpy(bytes, a->buf, a->len);
        b->buf = bytes;
        b->len = a->len;
        b->n = a->n;
        bytes += a->len;
        if (a->off) {
            memcpy(offs, a->off, (a->n + 1) * sizeof(uint32_t));
            b->off = offs;
            offs += a->n + 1;
        }
    }
    v->default_category = default_category(v);
    return v;
}

void op_http_view_release(op_http_view_t *v)
{
    if (v)
        h2o_mem_release_shared(v);
}
