/* delta.c — encoding aggregates into Redis blobs and folding them back (see
 * delta.h for the format).
 *
 * Names of dimensions travel as bytes, once per chunk: ids are private to a
 * process (each engine interns in its own order), names are not.
 */
#include "engine/io/delta.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conf.h"
#include "engine/hash.h"
#include "engine/util.h"

enum {
    TAG_NAME = 1,
    TAG_TOTALS = 2,
    TAG_BAD = 3,
    TAG_LATE = 4,
    TAG_TALLY = 5,
    TAG_USER = 6,
    TAG_PART = 7,
    TAG_USERDAY = 8,
};

/* Per calendar day (--archive; shard.h): brands and genders as TALLY records
 * of these table ids (keyed by day and name), users as USERDAY records. They
 * are not op_tables: a shard keeps them as a base day plus off-day tables,
 * the state as whole tables. */
enum { TABLE_BRAND_DAYS = 6, TABLE_GENDER_DAYS = 7 };

#define HEADER_LEN 5
#define RECORD_MAX (1 + 2 + OP_PARSE_MAX_NAME + 5 * 10) /* the longest record, generously */

/* --- writing ------------------------------------------------------------------ */

static void buf_reserve(op_delta_chunk_t *c, size_t more)
{
    if (c->len + more <= c->cap)
        return;
    size_t cap = c->cap ? c->cap * 2 : 4096;
    while (cap < c->len + more)
        cap *= 2;
    c->buf = op_xrealloc(c->buf, cap);
    c->cap = cap;
}

static void grow_one(op_delta_buf_t *b)
{
    if (b->n < b->cap)
        return;
    b->cap = b->cap ? b->cap * 2 : 4;
    b->chunks = op_xrealloc(b->chunks, b->cap * sizeof(*b->chunks));
    memset(b->chunks + b->n, 0, (b->cap - b->n) * sizeof(*b->chunks));
}

static void new_chunk(op_delta_buf_t *b)
{
    if (b->on_full && b->n && b->chunks[b->n - 1].len >= OP_DELTA_CHUNK) {
        for (uint32_t i = 0; i < b->n; i++) {
            b->on_full(b->on_full_arg, b->chunks[i]);
            b->chunks[i] = (op_delta_chunk_t){0};
        }
        b->n = 0;
    }
    grow_one(b);
    op_delta_chunk_t *c = &b->chunks[b->n++];
    c->len = 0;
    buf_reserve(c, HEADER_LEN + RECORD_MAX);
    memcpy(c->buf, "OPD2", 4);
    c->buf[4] = b->kind;
    c->len = HEADER_LEN;
    b->bytes += HEADER_LEN;
    op_ktable_clear(&b->names);
    b->nnames = 0;
    b->sealed = 0;
}

/* The chunk the next record goes to, with room for it: a new one when the
 * current one is full. */
static op_delta_chunk_t *room(op_delta_buf_t *b)
{
    if (!b->n || b->sealed || b->chunks[b->n - 1].len >= OP_DELTA_CHUNK)
        new_chunk(b);
    op_delta_chunk_t *c = &b->chunks[b->n - 1];
    buf_reserve(c, RECORD_MAX);
    return c;
}

static void put_u8(op_delta_chunk_t *c, uint8_t v)
{
    c->buf[c->len++] = (char)v;
}

/* The writers work at a pointer (the users' loop keeps one) and return the
 * position after what they wrote; the put_ forms below append to a chunk. */
static char *varint_at(char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    return p;
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* Names are short: a memcpy of a length known only at run time compiles to
 * `rep movs` here, whose start-up cost was most of encoding a user. Two
 * overlapping fixed-size moves cover 4 to 16 bytes without it. */
static char *bytes_at(char *d, const char *p, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t head, tail;
        memcpy(&head, p, 8);
        memcpy(&tail, p + n - 8, 8);
        memcpy(d, &head, 8);
        memcpy(d + n - 8, &tail, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t head, tail;
        memcpy(&head, p, 4);
        memcpy(&tail, p + n - 4, 4);
        memcpy(d, &head, 4);
        memcpy(d + n - 4, &tail, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++)
            d[i] = p[i];
    } else {
        memcpy(d, p, n);
    }
    return d + n;
}

static void put_varint(op_delta_chunk_t *c, uint64_t v)
{
    c->len = (size_t)(varint_at(c->buf + c->len, v) - c->buf);
}

static void put_svarint(op_delta_chunk_t *c, int64_t v)
{
    put_varint(c, zigzag(v));
}

static void put_bytes(op_delta_chunk_t *c, const char *p, size_t n)
{
    c->len = (size_t)(bytes_at(c->buf + c->len, p, n) - c->buf);
}

/* Ends a record: keeps the byte count. */
static void done(op_delta_buf_t *b, op_delta_chunk_t *c, size_t start)
{
    b->bytes += c->len - start;
}

/* This chunk's index of (dim, id), writing a NAME record on first use. The
 * caller has made room. Returns -1 for an id without a name (a hole left by
 * a lost insertion race: no tally can carry it). */
static int64_t name_index(op_delta_buf_t *b, op_delta_chunk_t *c, const op_intern_t *dict, int dim,
                          uint32_t id)
{
    uint64_t key = op_ktable_pair((uint64_t)dim, id);
    op_tally_t *t = op_ktable_find(&b->names, key);
    if (t)
        return t->orders - 1;
    size_t len;
    const char *name = op_intern_name(dict, (op_dim_t)dim, id, &len);
    if (!name)
        return -1;
    size_t start = c->len;
    put_u8(c, TAG_NAME);
    put_u8(c, (uint8_t)dim);
    put_varint(c, len);
    put_bytes(c, name, len);
    done(b, c, start);
    op_ktable_upsert(&b->names, key)->orders = (int64_t)b->nnames + 1;
    return b->nnames++;
}

static void put_tally(op_delta_chunk_t *c, const op_tally_t *t)
{
    put_svarint(c, t->orders);
    put_svarint(c, t->quantity);
    put_svarint(c, t->amount);
}

static void encode_table(op_delta_buf_t *b, const op_table_desc_t *d, const op_ktable_t *t,
                         const op_intern_t *dict)
{
    for (uint32_t i = 0; i < t->cap; i++) {
        if (!op_ktable_used(t, i))
            continue;
        uint64_t key = op_ktable_key(t, i);
        op_delta_chunk_t *c = room(b);
        int64_t name = 0;
        if (d->dim >= 0) {
            uint32_t id = d->paired ? op_ktable_pair_dim(key) : (uint32_t)key;
            name = name_index(b, c, dict, d->dim, id);
            if (name < 0)
                continue;
        }
        size_t start = c->len;
        put_u8(c, TAG_TALLY);
        put_u8(c, d->id);
        if (d->dim < 0)
            put_varint(c, key);
        else if (d->paired)
            put_varint(c, op_ktable_pair_bucket(key));
        if (d->dim >= 0)
            put_varint(c, (uint64_t)name);
        put_tally(c, &t->vals[i]);
        done(b, c, start);
    }
}

#define USERS_AHEAD 32 /* entries (a kilobyte) ahead: the hardware's own prefetch stalled here */

/* The users are most of a big tick's bytes, so their loop writes through a
 * local pointer into a chunk given its whole size up front: no per-record
 * room check, no regrowth (a doubling chunk copies itself ten times on
 * the way to OP_DELTA_CHUNK). */
static void encode_users(op_delta_buf_t *b, const op_users_t *u)
{
    uint32_t e = 0;
    while (e < u->count) {
        op_delta_chunk_t *c = room(b);
        if (c->cap < OP_DELTA_CHUNK + RECORD_MAX) {
            c->cap = OP_DELTA_CHUNK + RECORD_MAX;
            c->buf = op_xrealloc(c->buf, c->cap);
        }
        char *start = c->buf + c->len, *p = start;
        const char *full = c->buf + OP_DELTA_CHUNK;
        for (; e < u->count && p < full; e++) {
            if (e + USERS_AHEAD < u->count)
                __builtin_prefetch(&u->ent[e + USERS_AHEAD]);
            size_t len;
            const char *name = op_users_name(u, e, &len);
            *p++ = TAG_USER;
            *p++ = (char)len;
            p = bytes_at(p, name, len);
            p = varint_at(p, zigzag(u->ent[e].amount));
            p = varint_at(p, zigzag((int64_t)u->ent[e].orders));
        }
        c->len += (size_t)(p - start);
        b->bytes += (size_t)(p - start);
    }
    b->user_records += u->count;
}

static void encode_counters(op_delta_buf_t *b, const op_tally_t *totals, const int64_t *bad,
                            int64_t late)
{
    op_delta_chunk_t *c = room(b);
    size_t start = c->len;
    put_u8(c, TAG_TOTALS);
    put_tally(c, totals);
    put_u8(c, TAG_LATE);
    put_svarint(c, late);
    done(b, c, start);
    for (int r = 1; r < OP_BAD_REASON_COUNT; r++) {
        if (!bad[r])
            continue;
        const char *name = op_shard_bad_reason_name(r);
        size_t len = strlen(name);
        c = room(b);
        start = c->len;
        put_u8(c, TAG_BAD);
        put_varint(c, len);
        put_bytes(c, name, len);
        put_svarint(c, bad[r]);
        done(b, c, start);
    }
}

static void encode_part(op_delta_buf_t *b, int32_t p, int64_t next_offset, int64_t max_event_ms,
                        int64_t records, int64_t lost)
{
    op_delta_chunk_t *c = room(b);
    size_t start = c->len;
    put_u8(c, TAG_PART);
    put_varint(c, (uint64_t)p);
    put_svarint(c, next_offset);
    put_svarint(c, max_event_ms);
    put_svarint(c, records);
    put_svarint(c, lost);
    done(b, c, start);
}

static void put_day_tally(op_delta_buf_t *b, const op_intern_t *dict, uint8_t table, int dim,
                          uint64_t day, uint32_t id, const op_tally_t *t)
{
    if (!t->orders && !t->quantity && !t->amount)
        return;
    op_delta_chunk_t *c = room(b);
    int64_t name = name_index(b, c, dict, dim, id);
    if (name < 0)
        return;
    size_t start = c->len;
    put_u8(c, TAG_TALLY);
    put_u8(c, table);
    put_varint(c, day);
    put_varint(c, (uint64_t)name);
    put_tally(c, t);
    done(b, c, start);
}

static void put_user_day(op_delta_buf_t *b, uint64_t day, const char *name, size_t len,
                         int64_t amount, int64_t orders)
{
    if (!amount && !orders)
        return;
    op_delta_chunk_t *c = room(b);
    size_t start = c->len;
    put_u8(c, TAG_USERDAY);
    put_varint(c, day);
    put_u8(c, (uint8_t)len);
    put_bytes(c, name, len);
    put_svarint(c, amount);
    put_svarint(c, orders);
    done(b, c, start);
}

/* A dimension's exact figures per day from a shard's base day and off-day
 * table (shard.h): the base day holds the totals less every off-day share. */
static void encode_dim_days(op_delta_buf_t *b, const op_intern_t *dict, uint8_t table, int dim,
                            uint64_t base, const op_ktable_t *total, const op_ktable_t *off)
{
    op_ktable_t moved;
    op_ktable_init(&moved);
    for (uint32_t i = 0; i < off->cap; i++)
        if (op_ktable_used(off, i))
            op_tally_add(op_ktable_upsert(&moved, op_ktable_pair_dim(op_ktable_key(off, i))),
                         &off->vals[i]);
    for (uint32_t i = 0; i < total->cap; i++) {
        if (!op_ktable_used(total, i))
            continue;
        op_tally_t t = total->vals[i];
        const op_tally_t *m = op_ktable_find(&moved, op_ktable_key(total, i));
        if (m)
            op_tally_sub(&t, m);
        put_day_tally(b, dict, table, dim, base, (uint32_t)op_ktable_key(total, i), &t);
    }
    for (uint32_t i = 0; i < off->cap; i++)
        if (op_ktable_used(off, i))
            put_day_tally(b, dict, table, dim, op_ktable_pair_bucket(op_ktable_key(off, i)),
                          op_ktable_pair_dim(op_ktable_key(off, i)), &off->vals[i]);
    op_ktable_dispose(&moved);
}

static void encode_shard_days(op_delta_buf_t *b, const op_shard_t *s, const op_intern_t *dict)
{
    if (s->day < 0)
        return;
    uint64_t base = (uint64_t)s->day;
    encode_dim_days(b, dict, TABLE_BRAND_DAYS, OP_DIM_BRAND, base, &s->brands, &s->brand_offday);
    encode_dim_days(b, dict, TABLE_GENDER_DAYS, OP_DIM_GENDER, base, &s->genders,
                    &s->gender_offday);
    op_ktable_t moved; /* key: user entry */
    op_ktable_init(&moved);
    const op_ktable_t *off = &s->user_offday;
    for (uint32_t i = 0; i < off->cap; i++)
        if (op_ktable_used(off, i))
            op_tally_add(op_ktable_upsert(&moved, (uint32_t)op_ktable_key(off, i)), &off->vals[i]);
    for (uint32_t e = 0; e < s->users.count; e++) {
        size_t len;
        const char *name = op_users_name(&s->users, e, &len);
        const op_tally_t *m = op_ktable_find(&moved, e);
        put_user_day(b, base, name, len, s->users.ent[e].amount - (m ? m->amount : 0),
                     (int64_t)s->users.ent[e].orders - (m ? m->orders : 0));
    }
    for (uint32_t i = 0; i < off->cap; i++) {
        if (!op_ktable_used(off, i))
            continue;
        uint64_t k = op_ktable_key(off, i);
        size_t len;
        const char *name = op_users_name(&s->users, (uint32_t)k, &len);
        put_user_day(b, k >> 32, name, len, off->vals[i].amount, off->vals[i].orders);
    }
    op_ktable_dispose(&moved);
}

void op_delta_encode_shard(op_delta_buf_t *b, const op_shard_t *s, op_intern_t *dict)
{
    encode_counters(b, &s->totals, s->bad, s->late);
    for (int i = 0; i < op_ntables; i++)
        encode_table(b, &op_tables[i], op_table_in_shard(&op_tables[i], (op_shard_t *)s), dict);
    encode_users(b, &s->users);
    encode_shard_days(b, s, dict);
    for (int32_t p = op_shard_next_touched(s, 0); p >= 0; p = op_shard_next_touched(s, p + 1)) {
        const op_shard_part_t *sp = &s->parts[p];
        encode_part(b, p, sp->next_offset, sp->max_event_ms, sp->records, sp->lost);
    }
}

void op_delta_encode_state(op_delta_buf_t *b, op_state_t *st)
{
    op_state_settle_days(st);
    encode_counters(b, &st->totals, st->bad, st->late);
    for (int i = 0; i < op_ntables; i++)
        encode_table(b, &op_tables[i], op_table_in_state(&op_tables[i], st), st->dict);
    encode_users(b, &st->users);
    const op_ktable_t *days[2] = {&st->brand_days, &st->gender_days};
    for (int t = 0; t < 2; t++)
        for (uint32_t i = 0; i < days[t]->cap; i++)
            if (op_ktable_used(days[t], i))
                put_day_tally(b, st->dict, t ? TABLE_GENDER_DAYS : TABLE_BRAND_DAYS,
                              t ? OP_DIM_GENDER : OP_DIM_BRAND,
                              op_ktable_pair_bucket(op_ktable_key(days[t], i)),
                              op_ktable_pair_dim(op_ktable_key(days[t], i)), &days[t]->vals[i]);
    for (uint32_t i = 0; i < st->user_days.cap; i++) {
        if (!op_ktable_used(&st->user_days, i))
            continue;
        uint64_t k = op_ktable_key(&st->user_days, i);
        size_t len;
        const char *name = op_users_name(&st->users, (uint32_t)k, &len);
        put_user_day(b, k >> 32, name, len, st->user_days.vals[i].amount,
                     st->user_days.vals[i].orders);
    }
    for (int32_t p = 0; p < st->nparts_seen; p++) {
        const op_state_part_t *sp = &st->parts[p];
        if (sp->next_offset >= 0 || sp->max_event_ms != INT64_MIN || sp->lost)
            encode_part(b, p, sp->next_offset, sp->max_event_ms, 0, sp->lost);
    }
}

void op_delta_buf_init(op_delta_buf_t *b, char kind)
{
    memset(b, 0, sizeof(*b));
    b->kind = kind;
    op_ktable_init(&b->names);
}

void op_delta_buf_dispose(op_delta_buf_t *b)
{
    for (uint32_t i = 0; i < b->cap; i++)
        free(b->chunks[i].buf);
    free(b->chunks);
    op_ktable_dispose(&b->names);
    memset(b, 0, sizeof(*b));
}

void op_delta_buf_reset(op_delta_buf_t *b)
{
    for (uint32_t i = 1; i < b->cap; i++) {
        free(b->chunks[i].buf);
        b->chunks[i] = (op_delta_chunk_t){0};
    }
    if (b->cap)
        b->chunks[0].len = 0;
    b->n = 0;
    b->bytes = 0;
    b->user_records = 0;
    op_ktable_clear(&b->names);
    b->nnames = 0;
    b->sealed = 0;
}

void op_delta_buf_insert(op_delta_buf_t *b, uint32_t at, op_delta_chunk_t chunk)
{
    grow_one(b);
    free(b->chunks[b->n].buf); /* a spare allocation kept by a reset */
    memmove(b->chunks + at + 1, b->chunks + at, (b->n - at) * sizeof(*b->chunks));
    b->chunks[at] = chunk;
    b->n++;
}

void op_delta_buf_append(op_delta_buf_t *dst, op_delta_buf_t *src)
{
    for (uint32_t i = 0; i < src->n; i++) {
        grow_one(dst);
        free(dst->chunks[dst->n].buf); /* a spare allocation kept by a reset */
        dst->chunks[dst->n++] = src->chunks[i];
        src->chunks[i] = (op_delta_chunk_t){0};
    }
    dst->bytes += src->bytes;
    dst->user_records += src->user_records;
    /* dst's last chunk now has src's name table: the next record starts a
     * chunk of its own. */
    dst->sealed = 1;
    op_delta_buf_reset(src);
}

/* --- reading ------------------------------------------------------------------ */

typedef struct reader {
    const unsigned char *p, *end;
    int bad;
} reader_t;

static uint64_t get_varint(reader_t *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            r->bad = 1;
            return 0;
        }
        uint8_t byte = *r->p++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return v;
    }
    r->bad = 1;
    return 0;
}

static int64_t get_svarint(reader_t *r)
{
    uint64_t u = get_varint(r);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static uint8_t get_u8(reader_t *r)
{
    if (r->p >= r->end) {
        r->bad = 1;
        return 0;
    }
    return *r->p++;
}

static const char *get_bytes(reader_t *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const char *s = (const char *)r->p;
    r->p += n;
    return s;
}

static op_tally_t get_tally(reader_t *r)
{
    op_tally_t t;
    t.orders = get_svarint(r);
    t.quantity = get_svarint(r);
    t.amount = get_svarint(r);
    return t;
}

static const op_table_desc_t *table_by_id(uint8_t id)
{
    for (int i = 0; i < op_ntables; i++)
        if (op_tables[i].id == id)
            return &op_tables[i];
    return NULL;
}

/* A chunk's name table while decoding: index -> (dim, interned id). */
typedef struct names {
    int8_t *dim;
    int32_t *id;
    uint32_t n, cap;
} names_t;

static int bad_chunk(char *err, size_t errlen, const char *what)
{
    return op_conf_error(err, errlen, "a Redis state blob is damaged or of another version (%s)",
                         what);
}

/* A decoded shard holds its days exactly, in its off-day tables (shard.h). */
static void days_exact(op_shard_t *s)
{
    s->days_exact = 1;
    if (s->day < 0)
        s->day = 0;
}

int op_delta_decode(const char *buf, size_t len, op_shard_t *s, op_intern_cache_t *cache, char *err,
                    size_t errlen)
{
    if (len < HEADER_LEN || memcmp(buf, "OPD2", 4) != 0 || (buf[4] != 'D' && buf[4] != 'S'))
        return bad_chunk(err, errlen, "header");
    reader_t r = {(const unsigned char *)buf + HEADER_LEN, (const unsigned char *)buf + len, 0};
    names_t nm = {0};
    int rc = 0;
    while (r.p < r.end && !r.bad) {
        uint8_t tag = get_u8(&r);
        if (tag == TAG_NAME) {
            uint8_t dim = get_u8(&r);
            uint64_t n = get_varint(&r);
            const char *name = n <= OP_PARSE_MAX_NAME ? get_bytes(&r, (size_t)n) : NULL;
            if (r.bad || !name || dim >= OP_DIM_COUNT) {
                rc = bad_chunk(err, errlen, "name");
                break;
            }
            if (nm.n == nm.cap) {
                nm.cap = nm.cap ? nm.cap * 2 : 64;
                nm.dim = op_xrealloc(nm.dim, nm.cap * sizeof(*nm.dim));
                nm.id = op_xrealloc(nm.id, nm.cap * sizeof(*nm.id));
            }
            nm.dim[nm.n] = (int8_t)dim;
            nm.id[nm.n++] = op_intern_cache_id(cache, (op_dim_t)dim, name, (size_t)n);
        } else if (tag == TAG_TOTALS) {
            op_tally_t t = get_tally(&r);
            op_tally_add(&s->totals, &t);
        } else if (tag == TAG_LATE) {
            s->late += get_svarint(&r);
        } else if (tag == TAG_BAD) {
            uint64_t n = get_varint(&r);
            const char *name = n < 64 ? get_bytes(&r, (size_t)n) : NULL;
            int64_t count = get_svarint(&r);
            if (r.bad || !name) {
                rc = bad_chunk(err, errlen, "bad-record reason");
                break;
            }
            for (int reason = 1; reason < OP_BAD_REASON_COUNT; reason++) {
                const char *rn = op_shard_bad_reason_name(reason);
                if (strlen(rn) == n && memcmp(rn, name, n) == 0)
                    s->bad[reason] += count;
            }
        } else if (tag == TAG_TALLY && r.p < r.end &&
                   (*r.p == TABLE_BRAND_DAYS || *r.p == TABLE_GENDER_DAYS)) {
            int brand = get_u8(&r) == TABLE_BRAND_DAYS;
            uint64_t day = get_varint(&r), idx = get_varint(&r);
            op_tally_t t = get_tally(&r);
            int dim = brand ? OP_DIM_BRAND : OP_DIM_GENDER;
            if (r.bad || idx >= nm.n || nm.dim[idx] != dim || day > UINT32_MAX) {
                rc = bad_chunk(err, errlen, "day tally");
                break;
            }
            if (nm.id[idx] < 0)
                continue;
            days_exact(s);
            op_tally_add(op_ktable_upsert(brand ? &s->brand_offday : &s->gender_offday,
                                          op_ktable_pair(day, (uint32_t)nm.id[idx])),
                         &t);
        } else if (tag == TAG_USERDAY) {
            uint64_t day = get_varint(&r);
            uint8_t n = get_u8(&r);
            const char *name = get_bytes(&r, n);
            op_tally_t t = {0};
            t.amount = get_svarint(&r);
            t.orders = get_svarint(&r);
            if (r.bad || !name || !n || day > UINT32_MAX) {
                rc = bad_chunk(err, errlen, "user day");
                break;
            }
            days_exact(s);
            uint32_t e = op_users_upsert(&s->users, name, n, op_hash_bytes(name, n));
            op_tally_add(op_ktable_upsert(&s->user_offday, op_shard_user_day((uint32_t)day, e)),
                         &t);
        } else if (tag == TAG_TALLY) {
            const op_table_desc_t *d = table_by_id(get_u8(&r));
            if (!d) {
                rc = bad_chunk(err, errlen, "unknown table");
                break;
            }
            uint64_t bucket = d->dim < 0 || d->paired ? get_varint(&r) : 0;
            uint64_t idx = d->dim >= 0 ? get_varint(&r) : 0;
            op_tally_t t = get_tally(&r);
            if (r.bad || (d->dim >= 0 && (idx >= nm.n || nm.dim[idx] != d->dim))) {
                rc = bad_chunk(err, errlen, "tally");
                break;
            }
            uint64_t key = bucket;
            if (d->dim >= 0) {
                if (nm.id[idx] < 0) {
                    s->bad[OP_BAD_TOO_MANY_NAMES] += t.orders; /* a full dimension */
                    continue;
                }
                key =
                    d->paired ? op_ktable_pair(bucket, (uint32_t)nm.id[idx]) : (uint64_t)nm.id[idx];
            }
            op_tally_add(op_ktable_upsert(op_table_in_shard(d, s), key), &t);
        } else if (tag == TAG_USER) {
            uint8_t n = get_u8(&r);
            const char *name = get_bytes(&r, n);
            int64_t amount = get_svarint(&r);
            int64_t orders = get_svarint(&r);
            if (r.bad || !name || !n) {
                rc = bad_chunk(err, errlen, "user");
                break;
            }
            uint32_t e = op_users_upsert(&s->users, name, n, op_hash_bytes(name, n));
            s->users.ent[e].amount += amount;
            s->users.ent[e].orders += (uint32_t)orders;
        } else if (tag == TAG_PART) {
            uint64_t p = get_varint(&r);
            int64_t next = get_svarint(&r), max_event = get_svarint(&r);
            int64_t records = get_svarint(&r), lost = get_svarint(&r);
            if (r.bad || p >= OP_SOURCE_MAX_PARTITIONS) {
                rc = bad_chunk(err, errlen, "partition");
                break;
            }
            op_shard_part_t *sp = &s->parts[p];
            if (!op_shard_touched(s, (int32_t)p)) {
                *sp = (op_shard_part_t){.max_event_ms = INT64_MIN, .next_offset = -1};
                s->touched[p >> 6] |= 1ULL << (p & 63);
            }
            if (next > sp->next_offset)
                sp->next_offset = next;
            if (max_event > sp->max_event_ms)
                sp->max_event_ms = max_event;
            sp->records += records;
            sp->lost += lost;
        } else {
            rc = bad_chunk(err, errlen, "unknown record");
            break;
        }
    }
    if (!rc && r.bad)
        rc = bad_chunk(err, errlen, "truncated");
    free(nm.dim);
    free(nm.id);
    return rc;
}
