/* snapshot.c — rendering the state into pre-built JSON, and RCU publication.
 *
 * Rendering sorts each ranking once per tick (value descending, then name
 * bytewise ascending, so ties always come out in the same order) and writes
 * every API resource as a sliceable JSON array (snapshot.h), so that the
 * HTTP layer answers ?last=N or ?n=K by pointing into these bytes.
 */
#include "engine/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/jbuf.h"
#include "engine/util.h"

#define DOC_TOP_USERS 10 /* top_users in the full document, as in DESIGN §5 */

/* --- sliceable arrays -------------------------------------------------------- */

typedef struct arr_writer {
    op_jbuf_t b;
    uint32_t *off;
    uint32_t n, cap;
} arr_writer_t;

static void arr_begin(arr_writer_t *w)
{
    memset(w, 0, sizeof(*w));
    op_jbuf_lit(&w->b, "[");
}

static void arr_elem(arr_writer_t *w)
{
    if (w->n)
        op_jbuf_lit(&w->b, ",");
    if (w->n + 2 > w->cap) {
        w->cap = w->cap ? w->cap * 2 : 16;
        w->off = op_xrealloc(w->off, w->cap * sizeof(*w->off));
    }
    w->off[w->n++] = (uint32_t)w->b.len;
}

static op_jarray_t arr_end(arr_writer_t *w)
{
    op_jbuf_lit(&w->b, "]");
    if (!w->off)
        w->off = op_xmalloc(sizeof(*w->off));
    w->off[w->n] = (uint32_t)w->b.len;
    return (op_jarray_t){.buf = w->b.buf, .len = w->b.len, .off = w->off, .n = w->n};
}

static op_jarray_t plain(op_jbuf_t *b)
{
    return (op_jarray_t){.buf = b->buf, .len = b->len, .off = NULL, .n = 0};
}

/* --- rows ---------------------------------------------------------------------- */

typedef struct row {
    uint64_t key; /* bucket (minute/slot number) or 0 */
    const char *name;
    size_t name_len;
    op_tally_t t;
} row_t;

static int name_cmp(const row_t *a, const row_t *b)
{
    int c = memcmp(a->name, b->name, a->name_len < b->name_len ? a->name_len : b->name_len);
    if (c)
        return c;
    return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

static int cmp_i64_desc(int64_t a, int64_t b)
{
    return a > b ? -1 : a < b;
}

static int by_qty(const void *pa, const void *pb)
{
    const row_t *a = pa, *b = pb;
    int c = cmp_i64_desc(a->t.quantity, b->t.quantity);
    return c ? c : name_cmp(a, b);
}

static int by_amount(const void *pa, const void *pb)
{
    const row_t *a = pa, *b = pb;
    int c = cmp_i64_desc(a->t.amount, b->t.amount);
    return c ? c : name_cmp(a, b);
}

static int by_key_then_qty(const void *pa, const void *pb)
{
    const row_t *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    return by_qty(pa, pb);
}

static int by_key_then_name(const void *pa, const void *pb)
{
    const row_t *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    return name_cmp(a, b);
}

/* Rows of a table keyed by bucket alone (dim < 0), by dimension id alone
 * (bucket_keyed = 0), or by op_ktable_pair(bucket, id). Ids without a name
 * cannot occur (a shard only carries ids returned by a lookup). */
static row_t *collect(const op_state_t *st, const op_ktable_t *t, int dim, int paired,
                      uint32_t *nout)
{
    row_t *rows = op_xmalloc((size_t)(t->count ? t->count : 1) * sizeof(*rows));
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->cap; i++) {
        if (!op_ktable_used(t, i))
            continue;
        uint64_t k = op_ktable_key(t, i);
        row_t *r = &rows[n];
        memset(r, 0, sizeof(*r));
        r->t = t->vals[i];
        if (dim < 0) {
            r->key = k;
        } else {
            uint32_t id = paired ? op_ktable_pair_dim(k) : (uint32_t)k;
            r->key = paired ? op_ktable_pair_bucket(k) : 0;
            r->name = op_intern_name(st->dict, (op_dim_t)dim, id, &r->name_len);
            if (!r->name)
                continue;
        }
        n++;
    }
    *nout = n;
    return rows;
}

static int by_key(const void *pa, const void *pb)
{
    const row_t *a = pa, *b = pb;
    return a->key < b->key ? -1 : a->key > b->key;
}

/* --- resources ------------------------------------------------------------------ */

static op_jarray_t render_totals(const op_state_t *st)
{
    op_jbuf_t b;
    op_jbuf_init(&b);
    op_jbuf_lit(&b, "{\"orders\":");
    op_jbuf_i64(&b, st->totals.orders);
    op_jbuf_lit(&b, ",\"quantity\":");
    op_jbuf_i64(&b, st->totals.quantity);
    op_jbuf_lit(&b, ",\"amount\":");
    op_jbuf_cents(&b, st->totals.amount);
    op_jbuf_lit(&b, "}");
    return plain(&b);
}

static const char *const window_states[] = {
    [OP_WINDOW_OPEN] = "\"open\"",
    [OP_WINDOW_FINAL] = "\"final\"",
    [OP_WINDOW_REVISED] = "\"revised\"",
};

/* ,"state":"..." of a window. */
static void window_state(op_jbuf_t *b, const op_state_t *st, int64_t start_ms, int64_t len_ms,
                         int all_final)
{
    op_jbuf_lit(b, ",\"state\":");
    const char *v = window_states[op_state_window(st, start_ms, len_ms, all_final)];
    op_jbuf_raw(b, v, strlen(v));
}

static op_jarray_t render_minutes(const op_state_t *st, int all_final)
{
    uint32_t n;
    row_t *rows = collect(st, &st->minutes, -1, 0, &n);
    qsort(rows, n, sizeof(*rows), by_key);
    arr_writer_t w;
    arr_begin(&w);
    for (uint32_t i = 0; i < n; i++) {
        int64_t start = (int64_t)rows[i].key * OP_MINUTE_MS;
        int final = all_final ||
                    (st->watermark_ms != INT64_MIN && start + OP_MINUTE_MS <= st->watermark_ms);
        arr_elem(&w);
        op_jbuf_lit(&w.b, "{\"minute\":");
        op_jbuf_i64(&w.b, start);
        op_jbuf_lit(&w.b, ",\"orders\":");
        op_jbuf_i64(&w.b, rows[i].t.orders);
        op_jbuf_lit(&w.b, ",\"quantity\":");
        op_jbuf_i64(&w.b, rows[i].t.quantity);
        op_jbuf_lit(&w.b, ",\"amount\":");
        op_jbuf_cents(&w.b, rows[i].t.amount);
        /* "final" stays last: readers (http/view.c) find closed minutes by it. */
        window_state(&w.b, st, start, OP_MINUTE_MS, all_final);
        op_jbuf_lit(&w.b, final ? ",\"final\":true}" : ",\"final\":false}");
    }
    free(rows);
    return arr_end(&w);
}

static void named_tally(op_jbuf_t *b, const row_t *r)
{
    op_jbuf_lit(b, "{\"name\":");
    op_jbuf_str(b, r->name, r->name_len);
    op_jbuf_lit(b, ",\"quantity\":");
    op_jbuf_i64(b, r->t.quantity);
    op_jbuf_lit(b, ",\"amount\":");
    op_jbuf_cents(b, r->t.amount);
}

static op_jarray_t render_categories(const op_state_t *st, int all_final)
{
    uint32_t n;
    row_t *rows = collect(st, &st->catmin, OP_DIM_CATEGORY, 1, &n);
    qsort(rows, n, sizeof(*rows), by_key_then_qty);
    arr_writer_t w;
    arr_begin(&w);
    for (uint32_t i = 0; i < n;) {
        uint64_t minute = rows[i].key;
        arr_elem(&w);
        op_jbuf_lit(&w.b, "{\"minute\":");
        op_jbuf_i64(&w.b, (int64_t)minute * OP_MINUTE_MS);
        window_state(&w.b, st, (int64_t)minute * OP_MINUTE_MS, OP_MINUTE_MS, all_final);
        op_jbuf_lit(&w.b, ",\"ranking\":[");
        for (uint32_t j = i; i < n && rows[i].key == minute; i++) {
            if (i > j)
                op_jbuf_lit(&w.b, ",");
            named_tally(&w.b, &rows[i]);
            op_jbuf_lit(&w.b, "}");
        }
        op_jbuf_lit(&w.b, "]}");
    }
    free(rows);
    return arr_end(&w);
}

static op_jarray_t render_brands(const op_state_t *st, int (*order)(const void *, const void *))
{
    uint32_t n;
    row_t *rows = collect(st, &st->brands, OP_DIM_BRAND, 0, &n);
    qsort(rows, n, sizeof(*rows), order);
    arr_writer_t w;
    arr_begin(&w);
    for (uint32_t i = 0; i < n; i++) {
        arr_elem(&w);
        named_tally(&w.b, &rows[i]);
        op_jbuf_lit(&w.b, "}");
    }
    free(rows);
    return arr_end(&w);
}

static op_jarray_t render_top_users(const op_state_t *st)
{
    uint32_t top[OP_STATE_TOPK];
    uint32_t n = op_state_top_users(st, top, OP_STATE_TOPK);
    arr_writer_t w;
    arr_begin(&w);
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const char *name = op_users_name(&st->users, top[i], &len);
        arr_elem(&w);
        op_jbuf_lit(&w.b, "{\"name\":");
        op_jbuf_str(&w.b, name, len);
        op_jbuf_lit(&w.b, ",\"amount\":");
        op_jbuf_cents(&w.b, op_users_amount(&st->users, top[i]));
        op_jbuf_lit(&w.b, ",\"orders\":");
        op_jbuf_i64(&w.b, op_users_orders(&st->users, top[i]));
        op_jbuf_lit(&w.b, "}");
    }
    return arr_end(&w);
}

static op_jarray_t render_gender(const op_state_t *st)
{
    uint32_t n;
    row_t *rows = collect(st, &st->genders, OP_DIM_GENDER, 0, &n);
    qsort(rows, n, sizeof(*rows), by_amount);
    arr_writer_t w;
    arr_begin(&w);
    for (uint32_t i = 0; i < n; i++) {
        arr_elem(&w);
        named_tally(&w.b, &rows[i]);
        op_jbuf_lit(&w.b, ",\"quantity_share\":");
        op_jbuf_share(&w.b, rows[i].t.quantity, st->totals.quantity);
        op_jbuf_lit(&w.b, ",\"amount_share\":");
        op_jbuf_share(&w.b, rows[i].t.amount, st->totals.amount);
        op_jbuf_lit(&w.b, "}");
    }
    free(rows);
    return arr_end(&w);
}

static op_jarray_t render_gender_slots(const op_state_t *st, int all_final)
{
    uint32_t n;
    row_t *rows = collect(st, &st->gslots, OP_DIM_GENDER, 1, &n);
    qsort(rows, n, sizeof(*rows), by_key_then_name);
    arr_writer_t w;
    arr_begin(&w);
    for (uint32_t i = 0; i < n;) {
        uint64_t slot = rows[i].key;
        arr_elem(&w);
        op_jbuf_lit(&w.b, "{\"slot\":");
        op_jbuf_i64(&w.b, (int64_t)slot * OP_SLOT_MS);
        window_state(&w.b, st, (int64_t)slot * OP_SLOT_MS, OP_SLOT_MS, all_final);
        op_jbuf_lit(&w.b, ",\"quantity\":{");
        for (uint32_t j = i; i < n && rows[i].key == slot; i++) {
            if (i > j)
                op_jbuf_lit(&w.b, ",");
            op_jbuf_str(&w.b, rows[i].name, rows[i].name_len);
            op_jbuf_lit(&w.b, ":");
            op_jbuf_i64(&w.b, rows[i].t.quantity);
        }
        op_jbuf_lit(&w.b, "}}");
    }
    free(rows);
    return arr_end(&w);
}

/* The partitions of the stats: those this process reads (from the source)
 * merged with those that lost records (from the state), by number. */
static void collect_parts(op_snapshot_t *s, const op_state_t *st, op_source_t *src)
{
    op_source_part_t *own = NULL;
    int nown = 0;
    if (src) {
        own = op_xcalloc(OP_SOURCE_MAX_PARTITIONS, sizeof(*own));
        nown = op_source_partitions(src, own, OP_SOURCE_MAX_PARTITIONS);
    }
    uint32_t n = 0;
    for (int32_t p = 0, i = 0; p < OP_SOURCE_MAX_PARTITIONS; p++) {
        int owned = i < nown && own[i].partition == p;
        if (owned || st->parts[p].lost)
            n++;
        i += owned;
    }
    s->parts = n ? op_xcalloc(n, sizeof(*s->parts)) : NULL;
    for (int32_t p = 0, i = 0; p < OP_SOURCE_MAX_PARTITIONS; p++) {
        int owned = i < nown && own[i].partition == p;
        if (!owned && !st->parts[p].lost)
            continue;
        s->parts[s->nparts++] = (op_snapshot_part_t){
            .partition = p,
            .owned = owned,
            .next_offset = owned ? own[i].next_offset : -1,
            .end_offset = owned ? own[i].end_offset : -1,
            .lag = owned ? own[i].lag : 0,
            .lost = st->parts[p].lost,
        };
        i += owned;
    }
    free(own);
}

static void offset_or_null(op_jbuf_t *b, int64_t v)
{
    if (v < 0)
        op_jbuf_lit(b, "null");
    else
        op_jbuf_i64(b, v);
}

static op_jarray_t render_stats(const op_state_t *st, const op_snapshot_t *s,
                                const op_snapshot_meta_t *meta)
{
    int64_t lag = meta->lag;
    op_jbuf_t b;
    op_jbuf_init(&b);
    op_jbuf_lit(&b, "{\"bad_records\":");
    op_jbuf_i64(&b, st->bad_total);
    op_jbuf_lit(&b, ",\"late_records\":");
    op_jbuf_i64(&b, st->late);
    op_jbuf_lit(&b, ",\"lag\":");
    op_jbuf_i64(&b, lag);
    op_jbuf_lit(&b, ",\"orders_per_s\":");
    op_jbuf_cents(&b, op_state_rate_centi(st));
    op_jbuf_lit(&b, ",\"bad_by_reason\":{");
    int first = 1;
    for (int r = 1; r < OP_BAD_REASON_COUNT; r++) {
        if (!st->bad[r])
            continue;
        if (!first)
            op_jbuf_lit(&b, ",");
        first = 0;
        const char *name = op_shard_bad_reason_name(r);
        op_jbuf_str(&b, name, strlen(name));
        op_jbuf_lit(&b, ":");
        op_jbuf_i64(&b, st->bad[r]);
    }
    op_jbuf_lit(&b, "},\"dead_letter_errors\":");
    op_jbuf_i64(&b, st->dead_letter_errors);
    op_jbuf_lit(&b, ",\"lost_records\":");
    op_jbuf_i64(&b, st->lost);
    op_jbuf_lit(&b, ",\"lost_by_partition\":{");
    first = 1;
    for (uint32_t i = 0; i < s->nparts; i++) {
        if (!s->parts[i].lost)
            continue;
        op_jbuf_lit(&b, first ? "\"" : ",\"");
        first = 0;
        op_jbuf_i64(&b, s->parts[i].partition);
        op_jbuf_lit(&b, "\":");
        op_jbuf_i64(&b, s->parts[i].lost);
    }
    op_jbuf_lit(&b, "},\"partitions\":[");
    first = 1;
    for (uint32_t i = 0; i < s->nparts; i++) {
        const op_snapshot_part_t *sp = &s->parts[i];
        if (!sp->owned)
            continue;
        op_jbuf_lit(&b, first ? "{\"partition\":" : ",{\"partition\":");
        first = 0;
        op_jbuf_i64(&b, sp->partition);
        op_jbuf_lit(&b, ",\"next_offset\":");
        offset_or_null(&b, sp->next_offset);
        op_jbuf_lit(&b, ",\"end_offset\":");
        offset_or_null(&b, sp->end_offset);
        op_jbuf_lit(&b, ",\"lag\":");
        op_jbuf_i64(&b, sp->lag);
        op_jbuf_lit(&b, "}");
    }
    op_jbuf_lit(&b, "]");
    const op_snapshot_redis_t *rd = &meta->redis;
    if (rd->on) {
        op_jbuf_lit(&b, ",\"redis\":{\"ok\":");
        op_jbuf_lit(&b, rd->ok ? "true" : "false");
        op_jbuf_lit(&b, ",\"behind_ticks\":");
        op_jbuf_i64(&b, rd->behind_ticks);
        op_jbuf_lit(&b, ",\"behind_users\":");
        op_jbuf_i64(&b, rd->behind_records);
        op_jbuf_lit(&b, ",\"behind_seconds\":");
        op_jbuf_i64(&b, rd->behind_ms / 1000);
        op_jbuf_lit(&b, ".");
        char ms[8];
        snprintf(ms, sizeof(ms), "%03d", (int)(rd->behind_ms % 1000));
        op_jbuf_raw(&b, ms, 3);
        op_jbuf_lit(&b, ",\"rewinds\":");
        op_jbuf_i64(&b, (int64_t)rd->rewinds);
        op_jbuf_lit(&b, "}");
    }
    const op_snapshot_archive_t *a = &meta->archive;
    if (a->on) {
        op_jbuf_lit(&b, a->connected ? ",\"archive\":{\"connected\":true"
                                     : ",\"archive\":{\"connected\":false");
        op_jbuf_lit(&b, ",\"pending_rows\":");
        op_jbuf_i64(&b, a->pending_rows);
        op_jbuf_lit(&b, ",\"written_rows\":");
        op_jbuf_i64(&b, a->written_rows);
        op_jbuf_lit(&b, ",\"dropped_rows\":");
        op_jbuf_i64(&b, a->dropped_rows);
        op_jbuf_lit(&b, "}");
    }
    op_jbuf_lit(&b, "}");
    return plain(&b);
}

/* The first k elements of an array, as "[e0,...,ek-1]". */
static void slice_head(op_jbuf_t *b, const op_jarray_t *a, uint32_t k)
{
    if (k >= a->n) {
        op_jbuf_raw(b, a->buf, a->len);
        return;
    }
    op_jbuf_raw(b, a->buf, k ? a->off[k] - 1 : 1);
    op_jbuf_lit(b, "]");
}

/* "+08:00" */
static void tz_offset(op_jbuf_t *b, int32_t offset_s)
{
    char buf[16];
    int32_t a = offset_s < 0 ? -offset_s : offset_s;
    int n = snprintf(buf, sizeof(buf), "\"%c%02d:%02d\"", offset_s < 0 ? '-' : '+', a / 3600,
                     a % 3600 / 60);
    op_jbuf_raw(b, buf, (size_t)n);
}

static op_jarray_t render_document(const op_snapshot_t *s, const op_snapshot_meta_t *meta)
{
    static const struct {
        const char *key;
        op_resource_t res;
    } members[] = {
        {",\"totals\":", OP_RES_TOTALS},
        {",\"minutes\":", OP_RES_MINUTES},
        {",\"categories\":", OP_RES_CATEGORIES},
        {",\"brands\":", OP_RES_BRANDS_QTY},
        {",\"top_users\":", OP_RES_TOP_USERS},
        {",\"gender\":", OP_RES_GENDER},
        {",\"gender_slots\":", OP_RES_GENDER_SLOTS},
        {",\"stats\":", OP_RES_STATS},
    };
    op_jbuf_t b;
    op_jbuf_init(&b);
    op_jbuf_lit(&b, "{\"as_of\":");
    op_jbuf_i64(&b, s->as_of_ms);
    op_jbuf_lit(&b, ",\"watermark\":");
    if (s->watermark_ms == INT64_MIN)
        op_jbuf_lit(&b, "null");
    else
        op_jbuf_i64(&b, s->watermark_ms);
    op_jbuf_lit(&b, ",\"tick\":");
    op_jbuf_i64(&b, (int64_t)s->tick);
    op_jbuf_lit(&b, ",\"tick_ms\":");
    op_jbuf_i64(&b, meta->tick_ms);
    op_jbuf_lit(&b, ",\"display_timezone\":");
    tz_offset(&b, meta->display_tz_offset_s);
    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        op_jbuf_lit(&b, members[i].key);
        if (members[i].res == OP_RES_TOP_USERS)
            slice_head(&b, &s->res[OP_RES_TOP_USERS], DOC_TOP_USERS);
        else
            op_jbuf_raw(&b, s->res[members[i].res].buf, s->res[members[i].res].len);
    }
    op_jbuf_lit(&b, "}\n");
    return plain(&b);
}

op_snapshot_t *op_snapshot_render(const op_state_t *st, const op_snapshot_meta_t *meta)
{
    op_snapshot_t *s = op_xcalloc(1, sizeof(*s));
    s->tick = meta->tick;
    s->as_of_ms = meta->as_of_ms;
    s->watermark_ms = st->watermark_ms;
    s->orders = st->totals.orders;
    s->bad_records = st->bad_total;
    s->late_records = st->late;
    s->users = st->users.count;
    s->dead_letter_errors = st->dead_letter_errors;
    s->lost_records = st->lost;
    s->lag = meta->lag;
    collect_parts(s, st, meta->src);
    memcpy(s->bad, st->bad, sizeof(s->bad));
    snprintf(s->etag, sizeof(s->etag), "\"%llu-%lld\"", (unsigned long long)meta->tick,
             (long long)meta->as_of_ms);

    s->res[OP_RES_TOTALS] = render_totals(st);
    s->res[OP_RES_MINUTES] = render_minutes(st, meta->all_final);
    s->res[OP_RES_CATEGORIES] = render_categories(st, meta->all_final);
    s->res[OP_RES_BRANDS_QTY] = render_brands(st, by_qty);
    s->res[OP_RES_BRANDS_AMOUNT] = render_brands(st, by_amount);
    s->res[OP_RES_TOP_USERS] = render_top_users(st);
    s->res[OP_RES_GENDER] = render_gender(st);
    s->res[OP_RES_GENDER_SLOTS] = render_gender_slots(st, meta->all_final);
    s->redis = meta->redis;
    s->res[OP_RES_STATS] = render_stats(st, s, meta);
    s->res[OP_RES_SNAPSHOT] = render_document(s, meta);
    return s;
}

void op_snapshot_free(op_snapshot_t *s)
{
    if (!s)
        return;
    for (int r = 0; r < OP_RES_COUNT; r++) {
        free(s->res[r].buf);
        free(s->res[r].off);
    }
    free(s->parts);
    free(s);
}

/* --- publication ------------------------------------------------------------------ */

static void snapshot_free_rcu(struct rcu_head *head)
{
    op_snapshot_t *s = caa_container_of(head, op_snapshot_t, rcu);
    (void)__atomic_load_n(&s->tsan_readers_done, __ATOMIC_ACQUIRE);
    op_snapshot_free(s);
}

void op_snapshot_publish(op_snapshot_pub_t *pub, op_snapshot_t *s)
{
#ifdef __SANITIZE_THREAD__
    op_snapshot_t *old = __atomic_exchange_n(&pub->current, s, __ATOMIC_ACQ_REL);
#else
    op_snapshot_t *old = rcu_xchg_pointer(&pub->current, s);
#endif
    if (old) {
        /* Joins the release sequence of the readers' counter (see the note
         * in snapshot.h), so the free callback's acquire covers us too. */
        __atomic_fetch_add(&old->tsan_readers_done, 0, __ATOMIC_RELEASE);
        call_rcu(&old->rcu, snapshot_free_rcu);
    }
}

void op_snapshot_pub_dispose(op_snapshot_pub_t *pub)
{
    op_snapshot_t *old = rcu_xchg_pointer(&pub->current, NULL);
    if (old) {
        synchronize_rcu();
        op_snapshot_free(old);
    }
}

const op_snapshot_t *op_snapshot_acquire(op_snapshot_pub_t *pub)
{
    rcu_read_lock();
#ifdef __SANITIZE_THREAD__
    return __atomic_load_n(&pub->current, __ATOMIC_ACQUIRE);
#else
    return rcu_dereference(pub->current);
#endif
}

void op_snapshot_release(const op_snapshot_t *s)
{
#ifdef __SANITIZE_THREAD__
    if (s)
        __atomic_fetch_add(&((op_snapshot_t *)s)->tsan_readers_done, 1, __ATOMIC_RELEASE);
#else
    (void)s;
#endif
    rcu_read_unlock();
}
