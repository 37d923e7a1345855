/* redis_sink.c — the merger's packages and the sink thread (see redis_sink.h).
 *
 * Readable view (what redis-cli readers get, docs/REDIS.md): absolute values,
 * written by the commit that changed them, so that the view always equals the
 * log at the position the commit reached. Each commit writes at most
 * view_budget dirty items; the rest stay dirty for the next one, so that no
 * commit holds Redis long even after a replay touched a day of windows.
 */
#include "engine/io/redis_sink.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <urcu.h>

#include "engine/conf.h"
#include "engine/io/delta.h"
#include "engine/util.h"

#define MAX_TABLES          16
#define TOP_VIEW            100 /* users in <prefix>:top_users */
#define FIELD_LEN           160
#define KEY_LEN             256
#define BACKOFF_MAX_MS      2000
#define CONN_BACKOFF_MAX_MS 250 /* after a connection error (a failover?) */
#define LOG_INTERVAL_MS     5000
#define GC_BATCH            500
#define META_EVERY          8    /* commits between two looks at the log's size */
#define READER_EVERY_MS     5000 /* how often an engine says how far it has read */

/* --- packages ----------------------------------------------------------------- */

typedef struct pkg_part {
    int32_t p;
    int64_t next, max_event_ms, lost; /* lost: a delta */
} pkg_part_t;

typedef struct top_entry {
    char name[OP_USERS_MAX_NAME + 1];
    int64_t amount, orders;
} top_entry_t;

/* Owner: the merger while it builds it, the sink thread from submit until it
 * is handed back in an event. */
typedef struct pkg {
    uint64_t cseq;
    uint64_t tick;                    /* the last tick whose own deltas it holds */
    int64_t born_ms;                  /* when its oldest delta was merged (monotonic), 0: none */
    int64_t expect_pos;               /* the log position its view values stand on */
    char expect_last[OP_REDIS_IDLEN]; /* the id of the entry there */
    op_delta_buf_t deltas;
    pkg_part_t parts[OP_SOURCE_MAX_PARTITIONS];
    uint64_t has_part[OP_SOURCE_MAX_PARTITIONS / 64];
    op_redis_argv_t view;
    op_ktable_t taken[MAX_TABLES]; /* view items it carries, back to dirty on a refresh */
    int took_counters;
    top_entry_t *top; /* the ranking it writes (NULL: unchanged) */
    uint32_t ntop;
    op_delta_buf_t snap;  /* a compaction snapshot of the state after it, or empty */
    uint64_t pre_through; /* the chunks handed over early (prechunk_t) up to this number are its */
    /* Sink thread: the staged blob keys. A refreshed package may have gained
     * delta chunks since its last attempt: only those are staged then. */
    char **dkeys; /* one per chunk of deltas staged so far */
    int ndkeys;
    char **skeys; /* one per chunk of snap, once staged */
    int nskeys;
} pkg_t;

/* A full chunk of the pending deltas, handed to the sink thread while the
 * merger encodes the rest of a big tick (delta.h on_full), so that staging
 * it in Redis overlaps the encoding: a tick of a million users would
 * otherwise encode 16 MiB first and only then start sending. The package
 * built next takes it (numbers up to its pre_through). The merger writes
 * c and seq before it links the chunk in, under mu; from then on only the
 * sink thread touches it. */
typedef struct prechunk {
    op_delta_chunk_t c;
    uint64_t seq;
    char *key; /* set once staged */
    int tried; /* under mu: the sink thread took it for staging */
    struct prechunk *next;
} prechunk_t;

static void prechunks_free(prechunk_t *p)
{
    while (p) {
        prechunk_t *next = p->next;
        free(p->c.buf);
        free(p->key);
        free(p);
        p = next;
    }
}

static pkg_t *pkg_new(void)
{
    pkg_t *k = op_xcalloc(1, sizeof(*k));
    op_delta_buf_init(&k->deltas, 'D');
    op_delta_buf_init(&k->snap, 'S');
    op_redis_argv_init(&k->view);
    for (int t = 0; t < MAX_TABLES; t++)
        op_ktable_init(&k->taken[t]);
    return k;
}

static void free_keys(char ***keys, int *n)
{
    for (int i = 0; i < *n; i++)
        free((*keys)[i]);
    free(*keys);
    *keys = NULL;
    *n = 0;
}

static void pkg_unstage(pkg_t *k)
{
    free_keys(&k->dkeys, &k->ndkeys);
    free_keys(&k->skeys, &k->nskeys);
}

static void pkg_free(pkg_t *k)
{
    if (!k)
        return;
    op_delta_buf_dispose(&k->deltas);
    op_delta_buf_dispose(&k->snap);
    op_redis_argv_dispose(&k->view);
    for (int t = 0; t < MAX_TABLES; t++)
        op_ktable_dispose(&k->taken[t]);
    free(k->top);
    pkg_unstage(k);
    free(k);
}

static int pkg_has_part(const pkg_t *k, int32_t p)
{
    return (k->has_part[p >> 6] >> (p & 63)) & 1;
}

/* --- events from the sink thread to the merger ----------------------------------- */

typedef enum ev_kind { EV_COMMITTED, EV_REFRESH, EV_REMOTE, EV_REWIND, EV_STOP } ev_kind_t;

typedef struct event {
    ev_kind_t kind;
    pkg_t *pkg;                /* COMMITTED, REFRESH */
    op_shard_t *shard;         /* REMOTE: another engine's deltas */
    int64_t pos;               /* COMMITTED, REMOTE: the log's position after it */
    char last[OP_REDIS_IDLEN]; /* COMMITTED, REMOTE: the id of the entry at pos */
    struct event *next;
} event_t;

struct op_redis_sink {
    op_redis_sink_conf_t conf;
    char writer[40];
    char source[FIELD_LEN];
    char prefix[64];
    op_redis_t *r; /* main before start, then the sink thread */

    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu: */
    pkg_t *submitted;
    prechunk_t *pre_head, *pre_tail; /* oldest first */
    event_t *ev_head, *ev_tail;
    int stop;
    char last_error[512];
    char reason[512];
    op_hist_t commit_hist;

    /* __atomic: */
    int want_snapshot; /* sink sets, merger clears when it builds one */
    int ok;
    uint64_t commits;
    int64_t lag_records, lag_ticks, lag_born_ms;

    /* Merger thread only: */
    op_delta_buf_t pending;
    uint64_t pre_handed; /* chunks of pending handed over so far */
    uint64_t pending_tick;
    int64_t pending_born_ms;
    pkg_part_t pend_parts[OP_SOURCE_MAX_PARTITIONS];
    uint64_t pend_has[OP_SOURCE_MAX_PARTITIONS / 64];
    op_ktable_t dirty[MAX_TABLES];
    int counters_dirty;
    pkg_t *inflight; /* submitted and not yet back: the sink's, never dereferenced here (the
                        sink frees a package it gives up on, a rewind) */
    int64_t inflight_records, inflight_born_ms; /* what the lag figures need of it */
    pkg_t *refresh;                             /* back for a rebuild */
    int64_t folded_pos;
    char folded_last[OP_REDIS_IDLEN];
    uint64_t committed_tick, last_tick;
    uint64_t next_cseq;
    top_entry_t top_written[TOP_VIEW];
    uint32_t ntop_written;
    int top_known;
    int64_t cut_ms; /* windows before this are cut from the view */

    /* Sink thread only: */
    int64_t read_pos;
    char read_last[OP_REDIS_IDLEN];
    uint64_t conn_seen; /* op_redis_connections when Redis was last checked */
    uint64_t blob_counter;
    int commits_since_meta;
    int64_t reader_said_ms; /* when this engine last told Redis how far it has read */
    int halted;             /* asked for a rewind or a stop: do nothing more */
    int64_t last_log_ms;
    int said_trouble; /* a trouble line was printed since the last success */
    op_intern_cache_t cache;
};

/* --- small helpers --------------------------------------------------------------- */

int64_t op_redis_sink_read_pos(const op_redis_sink_t *s)
{
    return s->read_pos;
}

const char *op_redis_sink_generation(const op_redis_sink_t *s)
{
    return op_redis_generation(s->r);
}

void op_redis_sink_field(const char *source, int32_t p, char *buf, size_t len)
{
    if (snprintf(buf, len, "%s:%d", source, (int)p) >= (int)len && len)
        buf[len - 1] = 0;
}

static int64_t now_mono(void)
{
    return op_now_mono_ms();
}

static void set_text(op_redis_sink_t *s, char *dst, size_t len, const char *text)
{
    pthread_mutex_lock(&s->mu);
    snprintf(dst, len, "%s", text);
    pthread_mutex_unlock(&s->mu);
}

static void push_event(op_redis_sink_t *s, event_t ev)
{
    event_t *e = op_xmalloc(sizeof(*e));
    *e = ev;
    e->next = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->ev_tail)
        s->ev_tail->next = e;
    else
        s->ev_head = e;
    s->ev_tail = e;
    pthread_mutex_unlock(&s->mu);
    if (s->conf.wake)
        s->conf.wake(s->conf.wake_arg);
}

static event_t *pop_event(op_redis_sink_t *s)
{
    pthread_mutex_lock(&s->mu);
    event_t *e = s->ev_head;
    if (e) {
        s->ev_head = e->next;
        if (!s->ev_head)
            s->ev_tail = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* --- life ------------------------------------------------------------------------- */

/* Merger thread (delta.h on_full): a full chunk of pending to the sink
 * thread, to stage now. */
static void hand_over_chunk(void *arg, op_delta_chunk_t c)
{
    op_redis_sink_t *s = arg;
    prechunk_t *p = op_xcalloc(1, sizeof(*p));
    p->c = c;
    p->seq = ++s->pre_handed;
    pthread_mutex_lock(&s->mu);
    if (s->pre_tail)
        s->pre_tail->next = p;
    else
        s->pre_head = p;
    s->pre_tail = p;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int op_redis_sink_create(op_redis_sink_t **out, const op_redis_sink_conf_t *conf, char *err,
                         size_t errlen)
{
    op_redis_sink_t *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->conf = *conf;
    snprintf(s->writer, sizeof(s->writer), "%s", conf->writer);
    snprintf(s->source, sizeof(s->source), "%s", conf->source);
    snprintf(s->prefix, sizeof(s->prefix), "%s", conf->redis.prefix ? conf->redis.prefix : "{op}");
    s->conf.writer = s->writer;
    s->conf.source = s->source;
    if (s->conf.view_budget <= 0)
        s->conf.view_budget = 4000;
    if (s->conf.tail_ms <= 0)
        s->conf.tail_ms = 1000;
    if (s->conf.min_compact_bytes <= 0)
        s->conf.min_compact_bytes = 8 << 20;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    op_delta_buf_init(&s->pending, 'D');
    s->pending.on_full = hand_over_chunk;
    s->pending.on_full_arg = s;
    for (int t = 0; t < MAX_TABLES; t++)
        op_ktable_init(&s->dirty[t]);
    s->counters_dirty = 1;
    s->ok = 1;
    s->cut_ms = INT64_MIN;
    op_intern_cache_init(&s->cache, conf->dict);
    int rc = op_redis_create(&s->r, &s->conf.redis);
    if (rc == 0)
        rc = op_redis_open(s->r, err, errlen);
    if (rc < 0) {
        op_redis_sink_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}

void op_redis_sink_destroy(op_redis_sink_t *s)
{
    if (!s)
        return;
    op_redis_sink_stop(s);
    event_t *e;
    while ((e = pop_event(s))) {
        pkg_free(e->pkg);
        op_shard_destroy(e->shard);
        free(e);
    }
    /* A package in flight belongs to the sink thread, which freed it when it
     * stopped; one submitted to a thread that never ran is still here. */
    pkg_free(s->submitted);
    pkg_free(s->refresh);
    prechunks_free(s->pre_head);
    op_delta_buf_dispose(&s->pending);
    for (int t = 0; t < MAX_TABLES; t++)
        op_ktable_dispose(&s->dirty[t]);
    op_intern_cache_dispose(&s->cache);
    op_redis_destroy(s->r);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* --- loading -------------------------------------------------------------------- */

static int decode_into(void *arg, const char *buf, size_t len)
{
    void **a = arg; /* shard, cache, err */
    char *err = a[2];
    return op_delta_decode(buf, len, a[0], a[1], err, 256);
}

/* Fetches and decodes the blobs of entry e into sh. */
static int fetch_entry(op_redis_sink_t *s, const op_redis_entry_t *e, op_shard_t *sh,
                       op_intern_cache_t *cache, char *err, size_t errlen)
{
    char derr[256] = "";
    void *arg[3] = {sh, cache, derr};
    int rc = op_redis_fetch(s->r, e->nblobs, e->blobs, decode_into, arg, err, errlen);
    if (rc < 0 && derr[0])
        snprintf(err, errlen, "%s", derr);
    return rc;
}

int op_redis_sink_load(op_redis_sink_t *s, op_state_t *st, char *err, size_t errlen)
{
    op_intern_t *dict = st->dict;
    for (int attempt = 0;; attempt++) {
        op_redis_log_t log;
        int rc = op_redis_read_log(s->r, -1, NULL, &log, err, errlen);
        if (rc < 0)
            return rc;
        op_shard_t *sh = op_shard_create(-1);
        int64_t now = now_mono();
        for (int i = 0; i < log.n && rc == 0; i++) {
            rc = fetch_entry(s, &log.entries[i], sh, &s->cache, err, errlen);
            if (rc == 0) {
                op_state_merge(st, sh, now);
                op_shard_clear(sh);
            }
        }
        op_shard_destroy(sh);
        int64_t end = log.end;
        char last[OP_REDIS_IDLEN];
        snprintf(last, sizeof(last), "%s", log.last);
        op_redis_log_dispose(&log);
        /* Compaction waits only for the readers it knows of (redis.lua
         * op_compact): say how far this one has read, then make sure no
         * compaction overtook it in between. Best effort: while Redis refuses
         * writes, the first commit or tail says it instead. */
        if (rc == 0 && op_redis_reader(s->r, s->writer, end, err, errlen) == 0) {
            op_redis_log_t chk;
            if (op_redis_read_log(s->r, end, last, &chk, err, errlen) == 0) {
                if (chk.verdict == OP_REDIS_RELOAD)
                    rc = -ENOENT;
                op_redis_log_dispose(&chk);
            }
        }
        if (rc == -ENOENT && attempt < 5) { /* compacted while we read: again */
            op_state_dispose(st);
            op_state_init(st, dict);
            continue;
        }
        if (rc < 0)
            return rc;
        s->read_pos = s->folded_pos = end;
        snprintf(s->read_last, sizeof(s->read_last), "%s", last);
        snprintf(s->folded_last, sizeof(s->folded_last), "%s", last);
        s->conn_seen = op_redis_connections(s->r);
        /* The readable view is rewritten whole (over the first commits, at
         * view_budget items each): after a crash it may lack what the last
         * engine had not yet written, after a migration it is empty. */
        for (int t = 0; t < op_ntables && t < MAX_TABLES; t++) {
            const op_ktable_t *k = op_table_in_state(&op_tables[t], st);
            for (uint32_t j = 0; j < k->cap; j++)
                if (op_ktable_used(k, j))
                    op_ktable_upsert(&s->dirty[t], op_ktable_key(k, j));
        }
        s->counters_dirty = 1;
        s->top_known = 0;
        return 0;
    }
}

/* --- the merger's half: pending deltas ------------------------------------------- */

static void mark_dirty(op_redis_sink_t *s, const op_shard_t *sh)
{
    s->counters_dirty = 1;
    for (int i = 0; i < op_ntables && i < MAX_TABLES; i++) {
        const op_ktable_t *t = op_table_in_shard(&op_tables[i], (op_shard_t *)sh);
        for (uint32_t k = 0; k < t->cap; k++)
            if (op_ktable_used(t, k))
                op_ktable_upsert(&s->dirty[i], op_ktable_key(t, k));
    }
}

void op_redis_sink_add_shard(op_redis_sink_t *s, const op_shard_t *sh, uint64_t tick)
{
    if (op_shard_next_touched(sh, 0) < 0)
        return; /* nothing consumed */
    op_delta_encode_shard(&s->pending, sh, s->conf.dict);
    mark_dirty(s, sh);
    if (!s->pending_born_ms)
        s->pending_born_ms = now_mono();
    s->pending_tick = tick;
    for (int32_t p = op_shard_next_touched(sh, 0); p >= 0; p = op_shard_next_touched(sh, p + 1)) {
        const op_shard_part_t *sp = &sh->parts[p];
        pkg_part_t *pp = &s->pend_parts[p];
        if (!((s->pend_has[p >> 6] >> (p & 63)) & 1)) {
            *pp = (pkg_part_t){.p = p, .next = -1, .max_event_ms = INT64_MIN};
            s->pend_has[p >> 6] |= 1ULL << (p & 63);
        }
        if (sp->next_offset > pp->next)
            pp->next = sp->next_offset;
        if (sp->max_event_ms > pp->max_event_ms)
            pp->max_event_ms = sp->max_event_ms;
        pp->lost += sp->lost;
        op_claims_set(&s->conf.claims->consumed[p], pp->next);
    }
}

static int pending_empty(const op_redis_sink_t *s)
{
    return s->pending.n == 0;
}

/* --- the merger's half: the readable view ----------------------------------------- */

/* One view operation being assembled: op key n args... */
typedef struct vop {
    op_redis_argv_t args;
    size_t n;
} vop_t;

static void vop_flush(op_redis_argv_t *view, const char *op, const char *key, vop_t *v)
{
    if (!v->n)
        return;
    op_redis_argv_str(view, op);
    op_redis_argv_str(view, key);
    op_redis_argv_i64(view, (int64_t)v->n);
    for (size_t i = 0; i < v->args.n; i++)
        op_redis_argv_add(view, v->args.v[i], v->args.len[i]);
    op_redis_argv_clear(&v->args);
    v->n = 0;
}

static void vop_pair(vop_t *v, const char *a, size_t alen, const char *b, size_t blen)
{
    op_redis_argv_add(&v->args, a, alen);
    op_redis_argv_add(&v->args, b, blen);
    v->n++;
}

static void vop_num_name(vop_t *v, int64_t num, const char *name, size_t len)
{
    char buf[24];
    vop_pair(v, buf, (size_t)snprintf(buf, sizeof(buf), "%" PRId64, num), name, len);
}

static void vop_name_num(vop_t *v, const char *name, size_t len, int64_t num)
{
    char buf[24];
    vop_pair(v, name, len, buf, (size_t)snprintf(buf, sizeof(buf), "%" PRId64, num));
}

static void key_of(const op_redis_sink_t *s, char *key, const char *what)
{
    snprintf(key, KEY_LEN, "%s:%s", s->prefix, what);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Takes up to budget keys out of dirty table i into the package, sorted. */
static uint64_t *take_dirty(op_redis_sink_t *s, pkg_t *k, int i, int *budget, uint32_t *n)
{
    op_ktable_t *d = &s->dirty[i];
    uint64_t *keys = op_xmalloc((size_t)(d->count ? d->count : 1) * sizeof(*keys));
    uint32_t m = 0;
    for (uint32_t j = 0; j<d->cap && * budget> 0; j++) {
        if (!op_ktable_used(d, j))
            continue;
        keys[m++] = op_ktable_key(d, j);
        (*budget)--;
    }
    for (uint32_t j = 0; j < m; j++)
        op_ktable_upsert(&k->taken[i], keys[j]);
    if (m == d->count) {
        op_ktable_clear(d);
    } else { /* rebuild without what was taken */
        op_ktable_t rest;
        op_ktable_init(&rest);
        for (uint32_t j = 0; j < d->cap; j++)
            if (op_ktable_used(d, j) && !op_ktable_find(&k->taken[i], op_ktable_key(d, j)))
                op_ktable_upsert(&rest, op_ktable_key(d, j));
        op_ktable_dispose(d);
        *d = rest;
    }
    qsort(keys, m, sizeof(*keys), cmp_u64);
    *n = m;
    return keys;
}

static void view_counters(op_redis_sink_t *s, const op_state_t *st, op_redis_argv_t *view)
{
    char key[KEY_LEN];
    vop_t v = {0};
    int64_t lost = 0;
    for (int p = 0; p < st->nparts_seen; p++)
        lost += st->parts[p].lost;
    static const char *const names[] = {"orders", "quantity", "amount", "bad",
                                        "late",   "lost",     "users"};
    const int64_t vals[] = {st->totals.orders,
                            st->totals.quantity,
                            st->totals.amount,
                            st->bad_total,
                            st->late,
                            lost,
                            (int64_t)st->users.count};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        vop_name_num(&v, names[i], strlen(names[i]), vals[i]);
    key_of(s, key, "totals");
    vop_flush(view, "H", key, &v);
    for (int r = 1; r < OP_BAD_REASON_COUNT; r++)
        if (st->bad[r]) {
            const char *n = op_shard_bad_reason_name(r);
            vop_name_num(&v, n, strlen(n), st->bad[r]);
        }
    key_of(s, key, "bad");
    vop_flush(view, "H", key, &v);
    op_redis_argv_dispose(&v.args);
}

/* Brands or genders: sorted sets by quantity and amount (brands) or hashes
 * (genders), and the orders in a hash. */
static void view_dim(op_redis_sink_t *s, const op_state_t *st, const op_table_desc_t *d,
                     const uint64_t *keys, uint32_t n, op_redis_argv_t *view)
{
    const op_ktable_t *t = op_table_in_state(d, st);
    int brands = d->dim == OP_DIM_BRAND;
    vop_t q = {0}, a = {0}, o = {0};
    for (uint32_t i = 0; i < n; i++) {
        const op_tally_t *tl = op_ktable_find(t, keys[i]);
        size_t len;
        const char *name = op_intern_name(st->dict, (op_dim_t)d->dim, (uint32_t)keys[i], &len);
        if (!tl || !name)
            continue;
        if (brands) {
            vop_num_name(&q, tl->quantity, name, len);
            vop_num_name(&a, tl->amount, name, len);
        } else {
            vop_name_num(&q, name, len, tl->quantity);
            vop_name_num(&a, name, len, tl->amount);
        }
        vop_name_num(&o, name, len, tl->orders);
    }
    char key[KEY_LEN];
    const char *what = brands ? "brands" : "gender";
    snprintf(key, sizeof(key), "%s:%s:q", s->prefix, what);
    vop_flush(view, brands ? "Z" : "H", key, &q);
    snprintf(key, sizeof(key), "%s:%s:a", s->prefix, what);
    vop_flush(view, brands ? "Z" : "H", key, &a);
    snprintf(key, sizeof(key), "%s:%s:o", s->prefix, what);
    vop_flush(view, "H", key, &o);
    op_redis_argv_dispose(&q.args);
    op_redis_argv_dispose(&a.args);
    op_redis_argv_dispose(&o.args);
}

static void view_minutes(op_redis_sink_t *s, const op_state_t *st, const op_table_desc_t *d,
                         const uint64_t *keys, uint32_t n, op_redis_argv_t *view)
{
    vop_t v = {0};
    for (uint32_t i = 0; i < n; i++) {
        const op_tally_t *tl = op_ktable_find(op_table_in_state(d, st), keys[i]);
        if (!tl)
            continue;
        char f[24], val[80];
        size_t fl = (size_t)snprintf(f, sizeof(f), "%" PRId64, (int64_t)(keys[i] * OP_MINUTE_MS));
        size_t vl = (size_t)snprintf(val, sizeof(val), "%" PRId64 " %" PRId64 " %" PRId64,
                                     tl->orders, tl->quantity, tl->amount);
        vop_pair(&v, f, fl, val, vl);
    }
    char key[KEY_LEN];
    key_of(s, key, "minutes");
    vop_flush(view, "H", key, &v);
    op_redis_argv_dispose(&v.args);
}

/* Per minute: <prefix>:catmin:<ms> a sorted set category -> quantity (the
 * ranking), :a and :o hashes of amounts and orders. */
static void view_catmin(op_redis_sink_t *s, const op_state_t *st, const op_table_desc_t *d,
                        const uint64_t *keys, uint32_t n, op_redis_argv_t *view)
{
    vop_t q = {0}, a = {0}, o = {0};
    for (uint32_t i = 0; i < n; i++) {
        uint64_t minute = op_ktable_pair_bucket(keys[i]);
        const op_tally_t *tl = op_ktable_find(op_table_in_state(d, st), keys[i]);
        size_t len;
        const char *name =
            op_intern_name(st->dict, OP_DIM_CATEGORY, op_ktable_pair_dim(keys[i]), &len);
        if (tl && name) {
            vop_num_name(&q, tl->quantity, name, len);
            vop_name_num(&a, name, len, tl->amount);
            vop_name_num(&o, name, len, tl->orders);
        }
        if (i + 1 < n && op_ktable_pair_bucket(keys[i + 1]) == minute)
            continue;
        char key[KEY_LEN], ka[KEY_LEN + 2], ko[KEY_LEN + 2], ttl[24];
        snprintf(key, sizeof(key), "%s:catmin:%" PRId64, s->prefix,
                 (int64_t)(minute * OP_MINUTE_MS));
        snprintf(ka, sizeof(ka), "%s:a", key);
        snprintf(ko, sizeof(ko), "%s:o", key);
        snprintf(ttl, sizeof(ttl), "%" PRId64, s->conf.retention_ms);
        int any = q.n > 0;
        vop_flush(view, "Z", key, &q);
        vop_flush(view, "H", ka, &a);
        vop_flush(view, "H", ko, &o);
        if (any) {
            const char *keys3[] = {key, ka, ko};
            for (int k = 0; k < 3; k++) {
                op_redis_argv_str(view, "E");
                op_redis_argv_str(view, keys3[k]);
                op_redis_argv_str(view, ttl);
            }
        }
    }
    op_redis_argv_dispose(&q.args);
    op_redis_argv_dispose(&a.args);
    op_redis_argv_dispose(&o.args);
}

/* <prefix>:slots: "<slot ms>:<gender>" -> quantity. */
static void view_slots(op_redis_sink_t *s, const op_state_t *st, const op_table_desc_t *d,
                       const uint64_t *keys, uint32_t n, op_redis_argv_t *view)
{
    vop_t v = {0};
    for (uint32_t i = 0; i < n; i++) {
        const op_tally_t *tl = op_ktable_find(op_table_in_state(d, st), keys[i]);
        size_t len;
        const char *name =
            op_intern_name(st->dict, OP_DIM_GENDER, op_ktable_pair_dim(keys[i]), &len);
        if (!tl || !name)
            continue;
        char f[OP_PARSE_MAX_NAME + 32];
        int fl = snprintf(f, sizeof(f), "%" PRId64 ":%.*s",
                          (int64_t)(op_ktable_pair_bucket(keys[i]) * OP_SLOT_MS), (int)len, name);
        char val[24];
        vop_pair(&v, f, (size_t)fl, val,
                 (size_t)snprintf(val, sizeof(val), "%" PRId64, tl->quantity));
    }
    char key[KEY_LEN];
    key_of(s, key, "slots");
    vop_flush(view, "H", key, &v);
    op_redis_argv_dispose(&v.args);
}

/* The top users: rewritten whole when they changed since the last commit. */
static void view_top(op_redis_sink_t *s, const op_state_t *st, pkg_t *k, op_redis_argv_t *view)
{
    uint32_t idx[OP_STATE_TOPK];
    uint32_t n = op_state_top_users(st, idx, TOP_VIEW);
    top_entry_t *top = op_xcalloc(n ? n : 1, sizeof(*top));
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const char *name = op_users_name(&st->users, idx[i], &len);
        memcpy(top[i].name, name, len);
        top[i].name[len] = 0;
        top[i].amount = st->users.ent[idx[i]].amount;
        top[i].orders = st->users.ent[idx[i]].orders;
    }
    if (s->top_known && n == s->ntop_written &&
        (!n || memcmp(top, s->top_written, n * sizeof(*top)) == 0)) {
        free(top);
        return;
    }
    vop_t z = {0}, o = {0};
    for (uint32_t i = 0; i < n; i++) {
        vop_num_name(&z, top[i].amount, top[i].name, strlen(top[i].name));
        vop_name_num(&o, top[i].name, strlen(top[i].name), top[i].orders);
    }
    char key[KEY_LEN], ko[KEY_LEN + 2];
    key_of(s, key, "top_users");
    snprintf(ko, sizeof(ko), "%s:o", key);
    op_redis_argv_str(view, "R");
    op_redis_argv_str(view, key);
    op_redis_argv_i64(view, (int64_t)z.n);
    for (size_t i = 0; i < z.args.n; i++)
        op_redis_argv_add(view, z.args.v[i], z.args.len[i]);
    op_redis_argv_str(view, "X");
    op_redis_argv_str(view, ko);
    vop_flush(view, "H", ko, &o);
    op_redis_argv_dispose(&z.args);
    op_redis_argv_dispose(&o.args);
    k->top = top;
    k->ntop = n;
}

/* Windows that fell out of the retention leave the view. */
static void view_cut(op_redis_sink_t *s, const op_state_t *st, int64_t retention_ms,
                     op_redis_argv_t *view)
{
    if (st->watermark_ms == INT64_MIN || st->watermark_ms - retention_ms <= 0)
        return;
    int64_t cutoff = (st->watermark_ms - retention_ms) / OP_MINUTE_MS * OP_MINUTE_MS;
    if (cutoff <= s->cut_ms)
        return;
    s->cut_ms = cutoff;
    char key[KEY_LEN], ms[24];
    snprintf(ms, sizeof(ms), "%" PRId64, cutoff);
    key_of(s, key, "minutes");
    op_redis_argv_str(view, "C");
    op_redis_argv_str(view, key);
    op_redis_argv_str(view, ms);
    snprintf(ms, sizeof(ms), "%" PRId64, (int64_t)(cutoff / OP_SLOT_MS * OP_SLOT_MS));
    key_of(s, key, "slots");
    op_redis_argv_str(view, "C");
    op_redis_argv_str(view, key);
    op_redis_argv_str(view, ms);
}

static void build_view(op_redis_sink_t *s, const op_state_t *st, pkg_t *k)
{
    op_redis_argv_t *view = &k->view;
    op_redis_argv_clear(view);
    if (s->counters_dirty) {
        view_counters(s, st, view);
        s->counters_dirty = 0;
        k->took_counters = 1;
    }
    int budget = s->conf.view_budget;
    for (int i = 0; i < op_ntables && i < MAX_TABLES; i++) {
        const op_table_desc_t *d = &op_tables[i];
        if (!s->dirty[i].count)
            continue;
        uint32_t n;
        uint64_t *keys = take_dirty(s, k, i, &budget, &n);
        if (d->id == 1)
            view_minutes(s, st, d, keys, n, view);
        else if (d->id == 2)
            view_catmin(s, st, d, keys, n, view);
        else if (d->id == 3 || d->id == 4)
            view_dim(s, st, d, keys, n, view);
        else if (d->id == 5)
            view_slots(s, st, d, keys, n, view);
        /* Other tables are not part of the readable view. */
        free(keys);
    }
    view_top(s, st, k, view);
    view_cut(s, st, s->conf.retention_ms, view);
    char key[KEY_LEN];
    key_of(s, key, "view");
    vop_t v = {0};
    vop_name_num(&v, "watermark", 9, st->watermark_ms == INT64_MIN ? 0 : st->watermark_ms);
    vop_name_num(&v, "as_of", 5, op_now_wall_ms());
    vop_flush(view, "H", key, &v);
    op_redis_argv_dispose(&v.args);
}

/* A package handed back: what it took from the view is dirty again. */
static void untake(op_redis_sink_t *s, pkg_t *k)
{
    for (int i = 0; i < MAX_TABLES; i++) {
        op_ktable_t *t = &k->taken[i];
        for (uint32_t j = 0; j < t->cap; j++)
            if (op_ktable_used(t, j))
                op_ktable_upsert(&s->dirty[i], op_ktable_key(t, j));
        op_ktable_clear(t);
    }
    if (k->took_counters)
        s->counters_dirty = 1;
    k->took_counters = 0;
    free(k->top);
    k->top = NULL;
    k->ntop = 0;
}

static int view_dirty(const op_redis_sink_t *s)
{
    if (s->counters_dirty)
        return 1;
    for (int i = 0; i < MAX_TABLES; i++)
        if (s->dirty[i].count)
            return 1;
    return 0;
}

/* --- the merger's half: packages and events ----------------------------------------- */

static void submit(op_redis_sink_t *s, pkg_t *k)
{
    s->inflight = k;
    s->inflight_records = (int64_t)k->deltas.user_records;
    s->inflight_born_ms = k->born_ms;
    pthread_mutex_lock(&s->mu);
    s->submitted = k;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void build_and_submit(op_redis_sink_t *s, op_state_t *st, uint64_t tick)
{
    pkg_t *k = s->refresh;
    s->refresh = NULL;
    if (k) {
        untake(s, k);
        op_delta_buf_reset(&k->snap); /* it stood on an older state */
    } else {
        k = pkg_new();
        k->cseq = ++s->next_cseq;
    }
    if (!pending_empty(s)) {
        op_delta_buf_append(&k->deltas, &s->pending);
        if (!k->born_ms)
            k->born_ms = s->pending_born_ms;
        s->pending_born_ms = 0;
        k->tick = s->pending_tick;
        for (int w = 0; w < OP_SOURCE_MAX_PARTITIONS / 64; w++) {
            for (uint64_t bits = s->pend_has[w]; bits; bits &= bits - 1) {
                int32_t p = w * 64 + __builtin_ctzll(bits);
                const pkg_part_t *pp = &s->pend_parts[p];
                pkg_part_t *kp = &k->parts[p];
                if (!pkg_has_part(k, p)) {
                    *kp = *pp;
                    k->has_part[p >> 6] |= 1ULL << (p & 63);
                } else {
                    if (pp->next > kp->next)
                        kp->next = pp->next;
                    if (pp->max_event_ms > kp->max_event_ms)
                        kp->max_event_ms = pp->max_event_ms;
                    kp->lost += pp->lost;
                }
            }
            s->pend_has[w] = 0;
        }
    }
    if (k->tick < tick && !k->deltas.n)
        k->tick = s->committed_tick; /* a view-only package completes nothing new */
    k->pre_through = s->pre_handed;  /* a hand-over leaves a chunk in pending: deltas.n > 0 */
    k->expect_pos = s->folded_pos;
    snprintf(k->expect_last, sizeof(k->expect_last), "%s", s->folded_last);
    build_view(s, st, k);
    if (__atomic_load_n(&s->want_snapshot, __ATOMIC_ACQUIRE)) {
        op_delta_encode_state(&k->snap, st);
        __atomic_store_n(&s->want_snapshot, 0, __ATOMIC_RELEASE);
    }
    submit(s, k);
}

op_redis_sink_need_t op_redis_sink_tick(op_redis_sink_t *s, op_state_t *st, uint64_t tick,
                                        int64_t now_ms)
{
    op_redis_sink_need_t need = OP_REDIS_SINK_RUN;
    s->last_tick = tick;
    event_t *e;
    while ((e = pop_event(s))) {
        switch (e->kind) {
        case EV_REMOTE:
            op_state_merge(st, e->shard, now_ms);
            mark_dirty(s, e->shard);
            s->folded_pos = e->pos;
            snprintf(s->folded_last, sizeof(s->folded_last), "%s", e->last);
            op_shard_destroy(e->shard);
            break;
        case EV_COMMITTED: {
            pkg_t *k = e->pkg;
            s->folded_pos = e->pos;
            snprintf(s->folded_last, sizeof(s->folded_last), "%s", e->last);
            if (k->tick > s->committed_tick)
                s->committed_tick = k->tick;
            if (k->top) {
                memcpy(s->top_written, k->top, k->ntop * sizeof(*k->top));
                s->ntop_written = k->ntop;
                s->top_known = 1;
            }
            for (int32_t p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++)
                if (pkg_has_part(k, p))
                    op_claims_set(&s->conf.claims->committed[p], k->parts[p].next);
            if (s->inflight == k)
                s->inflight = NULL;
            pkg_free(k);
            break;
        }
        case EV_REFRESH:
            if (s->inflight == e->pkg)
                s->inflight = NULL;
            s->refresh = e->pkg;
            break;
        case EV_REWIND:
            need = need == OP_REDIS_SINK_STOP ? need : OP_REDIS_SINK_REWIND;
            break;
        case EV_STOP:
            need = OP_REDIS_SINK_STOP;
            break;
        }
        free(e);
    }
    if (need != OP_REDIS_SINK_RUN)
        return need;
    if (!s->inflight && (s->refresh || !pending_empty(s) || view_dirty(s)))
        build_and_submit(s, st, tick);
    /* Lag, for stats and /metrics. */
    int64_t records = (int64_t)s->pending.user_records + (s->inflight ? s->inflight_records : 0);
    int64_t born = s->inflight && s->inflight_born_ms ? s->inflight_born_ms : s->pending_born_ms;
    __atomic_store_n(&s->lag_records, records, __ATOMIC_RELAXED);
    __atomic_store_n(&s->lag_ticks,
                     (int64_t)(s->inflight || !pending_empty(s) ? tick - s->committed_tick : 0),
                     __ATOMIC_RELAXED);
    __atomic_store_n(&s->lag_born_ms, born, __ATOMIC_RELAXED);
    return OP_REDIS_SINK_RUN;
}

int op_redis_sink_committed_through(const op_redis_sink_t *s, uint64_t tick)
{
    return s->committed_tick >= tick || (pending_empty(s) && !s->inflight && !s->refresh);
}

int op_redis_sink_drained(const op_redis_sink_t *s)
{
    return pending_empty(s) && !s->inflight && !s->refresh && !view_dirty(s);
}

void op_redis_sink_lag(const op_redis_sink_t *s, int64_t now_ms, op_redis_sink_lag_t *out)
{
    int64_t born = __atomic_load_n(&s->lag_born_ms, __ATOMIC_RELAXED);
    out->records = __atomic_load_n(&s->lag_records, __ATOMIC_RELAXED);
    out->ticks = __atomic_load_n(&s->lag_ticks, __ATOMIC_RELAXED);
    out->oldest_ms = born ? now_ms - born : 0;
    out->ok = __atomic_load_n(&s->ok, __ATOMIC_RELAXED);
    out->commits = __atomic_load_n(&s->commits, __ATOMIC_RELAXED);
    out->rewinds_needed = 0;
}

void op_redis_sink_commit_hist(op_redis_sink_t *s, op_hist_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->commit_hist;
    pthread_mutex_unlock(&s->mu);
}

void op_redis_sink_last_error(op_redis_sink_t *s, char *buf, size_t len)
{
    pthread_mutex_lock(&s->mu);
    snprintf(buf, len, "%s", s->last_error);
    pthread_mutex_unlock(&s->mu);
}

void op_redis_sink_reason(op_redis_sink_t *s, char *buf, size_t len)
{
    pthread_mutex_lock(&s->mu);
    snprintf(buf, len, "%s", s->reason);
    pthread_mutex_unlock(&s->mu);
}

/* --- the sink thread ---------------------------------------------------------------- */

static int stopping(op_redis_sink_t *s)
{
    pthread_mutex_lock(&s->mu);
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* Sleeps ms unless asked to stop. */
static void nap(op_redis_sink_t *s, int64_t ms)
{
    int64_t deadline = op_now_wall_ms() + ms;
    struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000};
    pthread_mutex_lock(&s->mu);
    while (!s->stop && op_now_wall_ms() < deadline)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&s->mu);
}

/* An attempt failed: one line every few seconds, the error for /readyz. */
static void trouble(op_redis_sink_t *s, const char *err)
{
    __atomic_store_n(&s->ok, 0, __ATOMIC_RELAXED);
    set_text(s, s->last_error, sizeof(s->last_error), err);
    int64_t now = now_mono();
    if (now - s->last_log_ms >= LOG_INTERVAL_MS) {
        fprintf(stderr, "orderpulse: redis: %s; retrying (nothing is lost)\n", err);
        s->last_log_ms = now;
        s->said_trouble = 1;
    }
}

static void healthy(op_redis_sink_t *s)
{
    if (s->said_trouble)
        fprintf(stderr, "orderpulse: redis: writing again\n");
    s->said_trouble = 0;
    __atomic_store_n(&s->ok, 1, __ATOMIC_RELAXED);
    set_text(s, s->last_error, sizeof(s->last_error), "");
}

static void ask(op_redis_sink_t *s, ev_kind_t kind, const char *why)
{
    s->halted = 1;
    set_text(s, s->reason, sizeof(s->reason), why);
    fprintf(stderr, "orderpulse: redis: %s\n", why);
    push_event(s, (event_t){.kind = kind});
}

static void push_at(op_redis_sink_t *s, ev_kind_t kind, pkg_t *k, op_shard_t *sh, int64_t pos,
                    const char *last)
{
    event_t ev = {.kind = kind, .pkg = k, .shard = sh, .pos = pos};
    snprintf(ev.last, sizeof(ev.last), "%s", last);
    push_event(s, ev);
}

/* This engine has read (or written) the log up to pos, whose entry is last. */
static void read_to(op_redis_sink_t *s, int64_t pos, const char *last)
{
    s->read_pos = pos;
    snprintf(s->read_last, sizeof(s->read_last), "%s", last);
}

/* Redis holds another history than this engine read: one line, a rewind. */
static void went_back(op_redis_sink_t *s, int64_t end, const char *why, char *err, size_t errlen)
{
    snprintf(err, errlen,
             "Redis went back in time: its log ends at %" PRId64 " but this engine %s up to "
             "%" PRId64 " (entry %s)%s; a failover lost commits? Reloading what Redis holds",
             end, why, s->read_pos, s->read_last[0] ? s->read_last : "-",
             end >= s->read_pos ? ", and the entries there are others" : "");
    ask(s, EV_REWIND, err);
}

/* Reads the log from read_pos on and hands other engines' entries over as
 * REMOTE events. If mine (a package whose reply was lost) is among them,
 * reading stops there: 1 is returned with *mine_pos and mine_last (its
 * place), for the caller to book it. Negative: an error; -EAGAIN: a rewind
 * was asked for. */
static int read_others(op_redis_sink_t *s, pkg_t *mine, int64_t *mine_pos, char *mine_last,
                       char *err, size_t errlen)
{
    op_redis_log_t log;
    int rc = op_redis_read_log(s->r, s->read_pos, s->read_last, &log, err, errlen);
    if (rc < 0)
        return rc;
    s->conn_seen = op_redis_connections(s->r);
    if (log.verdict == OP_REDIS_RELOAD) {
        op_redis_log_dispose(&log);
        ask(s, EV_REWIND, "the log was compacted past what this engine has read: reloading");
        return -EAGAIN;
    }
    if (log.verdict == OP_REDIS_BACK) {
        int64_t end = log.end;
        op_redis_log_dispose(&log);
        went_back(s, end, "has read", err, errlen);
        return -EAGAIN;
    }
    int found = 0;
    for (int i = 0; i < log.n && rc == 0 && !found; i++) {
        const op_redis_entry_t *e = &log.entries[i];
        int64_t pos = log.from + i + 1;
        char id[OP_REDIS_IDLEN];
        snprintf(id, sizeof(id), "%s:%" PRIu64, e->writer, e->cseq);
        if (mine && !strcmp(e->writer, s->writer) && e->cseq == mine->cseq) {
            found = 1; /* read up to it once it counts (book) */
            *mine_pos = pos;
            snprintf(mine_last, OP_REDIS_IDLEN, "%s", id);
            continue;
        }
        if (!strcmp(e->writer, s->writer)) { /* already in the state */
            read_to(s, pos, id);
            continue;
        }
        op_shard_t *sh = op_shard_create(-1);
        rc = fetch_entry(s, e, sh, &s->cache, err, errlen);
        if (rc < 0) {
            op_shard_destroy(sh);
            break;
        }
        push_at(s, EV_REMOTE, NULL, sh, pos, id);
        read_to(s, pos, id);
    }
    op_redis_log_dispose(&log);
    if (rc == -ENOENT) { /* compacted while we read */
        ask(s, EV_REWIND, "the log was compacted while this engine read it: reloading");
        return -EAGAIN;
    }
    return rc < 0 ? rc : found;
}

/* SETs n blobs under new keys of this writer, into keys[]; they are freed
 * (and NULL) when it fails. 0 or op_redis_stage's error. */
static int stage_blobs(op_redis_sink_t *s, int n, char **keys, const char **bufs,
                       const size_t *lens, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        keys[i] = op_xmalloc(KEY_LEN);
        snprintf(keys[i], KEY_LEN, "%s:b:%s:%" PRIu64, s->prefix, s->writer, ++s->blob_counter);
    }
    int rc = op_redis_stage(s->r, n, (const char *const *)keys, bufs, lens, err, errlen);
    for (int i = 0; rc != 0 && i < n; i++) {
        free(keys[i]);
        keys[i] = NULL;
    }
    return rc;
}

/* Stages what is not yet: new chunks of deltas, and the snapshot. */
static int stage(op_redis_sink_t *s, pkg_t *k, char *err, size_t errlen)
{
    if (!k->snap.n)
        free_keys(&k->skeys, &k->nskeys); /* a refresh dropped the snapshot */
    int nd = (int)k->deltas.n - k->ndkeys;
    int ns = k->snap.n && !k->nskeys ? (int)k->snap.n : 0;
    if (nd + ns == 0)
        return 0;
    char **keys = op_xcalloc((size_t)(nd + ns), sizeof(*keys));
    const char **bufs = op_xcalloc((size_t)(nd + ns), sizeof(*bufs));
    size_t *lens = op_xcalloc((size_t)(nd + ns), sizeof(*lens));
    for (int i = 0; i < nd + ns; i++) {
        const op_delta_chunk_t *c =
            i < nd ? &k->deltas.chunks[k->ndkeys + i] : &k->snap.chunks[i - nd];
        bufs[i] = c->buf;
        lens[i] = c->len;
    }
    int rc = stage_blobs(s, nd + ns, keys, bufs, lens, err, errlen);
    if (rc == 0) {
        k->dkeys = op_xrealloc(k->dkeys, (size_t)(k->ndkeys + nd) * sizeof(*k->dkeys));
        memcpy(k->dkeys + k->ndkeys, keys, (size_t)nd * sizeof(*keys));
        k->ndkeys += nd;
        if (ns) {
            k->skeys = op_xmalloc((size_t)ns * sizeof(*k->skeys));
            memcpy(k->skeys, keys + nd, (size_t)ns * sizeof(*keys));
            k->nskeys = ns;
        }
    }
    free(keys);
    free(bufs);
    free(lens);
    return rc;
}

static void compact(op_redis_sink_t *s, pkg_t *k, int64_t upto)
{
    char err[512];
    if (!k->nskeys)
        return;
    int rc = op_redis_compact(s->r, s->writer, k->cseq, upto, k->nskeys,
                              (const char *const *)k->skeys, k->snap.bytes, err, sizeof(err));
    if (rc < 0) {
        trouble(s, err);
        return;
    }
    while ((rc = op_redis_collect_garbage(s->r, GC_BATCH, err, sizeof(err))) > 0 && !stopping(s))
        ;
}

static void maybe_want_snapshot(op_redis_sink_t *s)
{
    if (++s->commits_since_meta < META_EVERY)
        return;
    s->commits_since_meta = 0;
    int64_t snap = 0, delta = 0;
    char err[256];
    if (op_redis_meta(s->r, &snap, &delta, err, sizeof(err)) < 0)
        return;
    int64_t limit = snap > s->conf.min_compact_bytes ? snap : s->conf.min_compact_bytes;
    if (delta > limit)
        __atomic_store_n(&s->want_snapshot, 1, __ATOMIC_RELEASE);
}

static void describe_fence(const op_redis_commit_result_t *res, char *buf, size_t len)
{
    snprintf(buf, len,
             "partition %s belongs to writer %s (epoch %" PRId64 ", next offset %" PRId64
             ") now: this engine's uncommitted records of it were read by someone else; "
             "reloading from Redis",
             res->fence_field, res->fence_owner, res->fence_epoch, res->fence_next);
}

/* --redis-min-replicas: the entry ending at pos (id last) counts as
 * committed once that many replicas have it. WAIT counts what the connection
 * itself wrote: on another connection than the commit's (wrote_on), the
 * entry is looked for again (a failover may have lost it) and a small write
 * after it (op_reader) gives WAIT something to wait for. Returns 0, -EAGAIN
 * (the entry is gone: a rewind was asked for) or -EINTR (stopping). */
static int await_replicas(op_redis_sink_t *s, int64_t pos, const char *last, uint64_t wrote_on)
{
    int need = s->conf.redis.min_replicas;
    if (need <= 0)
        return 0;
    int timeout = s->conf.redis.timeout_ms > 20 ? s->conf.redis.timeout_ms / 2 : 10;
    int64_t backoff = 50;
    char err[512];
    while (!stopping(s)) {
        int rc = 0;
        uint64_t conn = op_redis_connections(s->r);
        if (conn != wrote_on) {
            op_redis_log_t log;
            rc = op_redis_read_log(s->r, pos, last, &log, err, sizeof(err));
            int verdict = log.verdict;
            if (rc == 0)
                op_redis_log_dispose(&log);
            if (rc == 0 && verdict != 0) {
                snprintf(err, sizeof(err),
                         "Redis lost the commit ending at log position %" PRId64
                         " (entry %s) while it waited for %d replica(s) to have it (a failover?); "
                         "reloading what Redis holds",
                         pos, last, need);
                ask(s, EV_REWIND, err);
                return -EAGAIN;
            }
            if (rc == 0)
                rc = op_redis_reader(s->r, s->writer, pos, err, sizeof(err));
            if (rc == 0 && op_redis_connections(s->r) == conn)
                wrote_on = conn;
            else if (rc == 0)
                continue; /* reconnected in between: look again */
        }
        if (rc == 0) {
            rc = op_redis_wait(s->r, need, timeout, err, sizeof(err));
            if (rc >= need && op_redis_connections(s->r) == wrote_on)
                return 0;
            if (rc >= need) /* WAIT ran on a new connection: it proves nothing */
                snprintf(err, sizeof(err), "redis: reconnected while waiting for replicas");
        }
        trouble(s, err);
        nap(s, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    return -EINTR;
}

/* The package is in the log at pos (id last): committed once the replicas
 * asked for have it -- only then has this engine read (and counted) the log
 * up to it; then the log may be compacted after it. */
static void book(op_redis_sink_t *s, pkg_t *k, int64_t pos, const char *last, uint64_t wrote_on)
{
    if (await_replicas(s, pos, last, wrote_on) < 0) {
        pkg_free(k); /* in the log all the same, or lost: a reload tells */
        return;
    }
    read_to(s, pos, last);
    if (k->nskeys)
        compact(s, k, pos);
    else
        maybe_want_snapshot(s);
    push_at(s, EV_COMMITTED, k, NULL, pos, last);
}

/* Commits one package, retrying until it is decided. */
static void commit_package(op_redis_sink_t *s, pkg_t *k)
{
    char err[512];
    int64_t backoff = 50;
    while (!stopping(s)) {
        if (k->expect_pos < s->read_pos) { /* entries handed over are not folded yet */
            push_event(s, (event_t){.kind = EV_REFRESH, .pkg = k});
            return;
        }
        int rc = stage(s, k, err, sizeof(err));
        op_redis_commit_result_t res;
        op_redis_commit_part_t *parts = NULL;
        int nparts = 0;
        if (rc == 0) {
            parts = op_xcalloc(OP_SOURCE_MAX_PARTITIONS, sizeof(*parts));
            char(*fields)[FIELD_LEN] = op_xcalloc(OP_SOURCE_MAX_PARTITIONS, FIELD_LEN);
            for (int32_t p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++) {
                if (!pkg_has_part(k, p))
                    continue;
                op_redis_sink_field(s->source, p, fields[nparts], FIELD_LEN);
                parts[nparts] = (op_redis_commit_part_t){
                    .field = fields[nparts],
                    .epoch = op_claims_get(&s->conf.claims->epoch[p]),
                    .expect_next = op_claims_get(&s->conf.claims->committed[p]),
                    .next = k->parts[p].next,
                    .max_event_ms = k->parts[p].max_event_ms,
                    .lost = k->parts[p].lost,
                };
                nparts++;
            }
            int64_t t0 = now_mono();
            rc = op_redis_commit(s->r, s->writer, k->cseq, k->expect_pos, k->expect_last, nparts,
                                 parts, k->ndkeys, (const char *const *)k->dkeys, k->deltas.bytes,
                                 &k->view, &res, err, sizeof(err));
            free(fields);
            free(parts);
            pthread_mutex_lock(&s->mu);
            op_hist_observe(&s->commit_hist, (uint64_t)(now_mono() - t0) * 1000);
            pthread_mutex_unlock(&s->mu);
        }
        if (rc == OP_REDIS_ESTATE) {
            ask(s, EV_STOP, err);
            pkg_free(k);
            return;
        }
        if (rc == -ESTALE) /* a staged blob expired or was evicted: stage again */
            pkg_unstage(k);
        if (rc < 0) {
            /* A dead primary is looked for again soon: a failover takes a
             * second or two, and finding the new one costs nothing. */
            int64_t cap = rc == -ECONNRESET ? CONN_BACKOFF_MAX_MS : BACKOFF_MAX_MS;
            trouble(s, err);
            nap(s, backoff);
            backoff = backoff * 2 > cap ? cap : backoff * 2;
            continue;
        }
        if (res.verdict == OP_REDIS_OK) {
            healthy(s);
            s->conn_seen = op_redis_connections(s->r);
            __atomic_add_fetch(&s->commits, 1, __ATOMIC_RELAXED);
            book(s, k, res.pos, res.last, s->conn_seen);
            return;
        }
        if (res.verdict == OP_REDIS_BEHIND) {
            healthy(s);
            int64_t mine_pos = 0;
            char mine_last[OP_REDIS_IDLEN];
            rc = read_others(s, k, &mine_pos, mine_last, err, sizeof(err));
            if (rc == 1) { /* committed by an attempt whose reply was lost */
                book(s, k, mine_pos, mine_last, 0);
                return;
            }
            if (rc == -EAGAIN) {
                pkg_free(k);
                return;
            }
            if (rc < 0) {
                trouble(s, err);
                nap(s, backoff);
                continue;
            }
            push_event(s, (event_t){.kind = EV_REFRESH, .pkg = k});
            return;
        }
        if (res.verdict == OP_REDIS_BACK) {
            went_back(s, res.pos, "has read", err, sizeof(err));
        } else {
            describe_fence(&res, err, sizeof(err));
            ask(s, EV_REWIND, err);
        }
        pkg_free(k);
        return;
    }
    /* Stopping: the package stays uncommitted; a restart reads it again. */
    pkg_free(k);
}

/* --- the sink thread: chunks handed over early ---------------------------------------- */

/* Under mu: a chunk not yet taken for staging? */
static int prechunks_waiting(const op_redis_sink_t *s)
{
    for (const prechunk_t *p = s->pre_head; p; p = p->next)
        if (!p->tried)
            return 1;
    return 0;
}

/* Under mu: detaches the chunks numbered up to through (a package's). */
static prechunk_t *prechunks_take(op_redis_sink_t *s, uint64_t through)
{
    prechunk_t *head = s->pre_head, *last = NULL;
    for (prechunk_t *p = head; p && p->seq <= through; p = p->next)
        last = p;
    if (!last)
        return NULL;
    s->pre_head = last->next;
    if (!s->pre_head)
        s->pre_tail = NULL;
    last->next = NULL;
    return head;
}

/* A package's early chunks into its deltas: the staged ones with their
 * keys right after its staged prefix, the others after them, for stage()
 * to send with the package's own. */
static void pkg_adopt(pkg_t *k, prechunk_t *list)
{
    for (int staged = 1; staged >= 0; staged--) {
        for (prechunk_t *p = list; p; p = p->next) {
            if (!p->c.buf || !!p->key != staged)
                continue;
            op_delta_buf_insert(&k->deltas, (uint32_t)k->ndkeys, p->c);
            p->c = (op_delta_chunk_t){0};
            if (staged) {
                k->dkeys = op_xrealloc(k->dkeys, (size_t)(k->ndkeys + 1) * sizeof(*k->dkeys));
                k->dkeys[k->ndkeys++] = p->key;
                p->key = NULL;
            }
        }
    }
    prechunks_free(list);
}

#define PRESTAGE_MAX 64 /* chunks per pipeline */

/* Stages the chunks handed over and not taken yet. Returns how many it
 * took; a failure leaves them unstaged, for the commit's own staging to
 * retry and report. */
static int prestage(op_redis_sink_t *s)
{
    prechunk_t *todo[PRESTAGE_MAX];
    int n = 0;
    pthread_mutex_lock(&s->mu);
    for (prechunk_t *p = s->pre_head; p && n < PRESTAGE_MAX; p = p->next)
        if (!p->tried) {
            p->tried = 1;
            todo[n++] = p;
        }
    pthread_mutex_unlock(&s->mu);
    if (!n)
        return 0;
    char *keys[PRESTAGE_MAX];
    const char *bufs[PRESTAGE_MAX];
    size_t lens[PRESTAGE_MAX];
    for (int i = 0; i < n; i++) {
        bufs[i] = todo[i]->c.buf;
        lens[i] = todo[i]->c.len;
    }
    char err[512];
    stage_blobs(s, n, keys, bufs, lens, err, sizeof(err));
    for (int i = 0; i < n; i++)
        todo[i]->key = keys[i]; /* NULL when it failed */
    return n;
}

static void *sink_main(void *arg)
{
    op_redis_sink_t *s = arg;
    rcu_register_thread();
    int64_t next_tail = now_mono() + s->conf.tail_ms;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stop && !s->submitted && !prechunks_waiting(s) && now_mono() < next_tail) {
            int64_t deadline = op_now_wall_ms() + (next_tail - now_mono());
            struct timespec ts = {.tv_sec = deadline / 1000,
                                  .tv_nsec = (deadline % 1000) * 1000000};
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
        int stop = s->stop;
        pkg_t *k = s->submitted;
        s->submitted = NULL;
        prechunk_t *early = k ? prechunks_take(s, k->pre_through) : NULL;
        pthread_mutex_unlock(&s->mu);
        if (k)
            pkg_adopt(k, early);
        if (stop) {
            pkg_free(k);
            break;
        }
        if (s->halted) { /* waiting to be stopped */
            pkg_free(k);
            next_tail = now_mono() + s->conf.tail_ms;
            continue;
        }
        char err[512];
        int64_t unused_pos;
        char unused_last[OP_REDIS_IDLEN];
        /* A new connection (the same Redis after an error, or another one
         * after a failover): does it still hold what this engine read? */
        if (op_redis_connections(s->r) != s->conn_seen &&
            read_others(s, NULL, &unused_pos, unused_last, err, sizeof(err)) == -EAGAIN) {
            pkg_free(k);
            continue;
        }
        if (k) {
            commit_package(s, k);
            continue;
        }
        if (prestage(s))
            continue;
        next_tail = now_mono() + s->conf.tail_ms;
        int64_t before = s->read_pos;
        int rc = read_others(s, NULL, &unused_pos, unused_last, err, sizeof(err));
        if (rc < 0 && rc != -EAGAIN)
            trouble(s, err);
        /* Compaction waits for live readers: say how far this one is. */
        if (rc >= 0 &&
            (s->read_pos != before || now_mono() - s->reader_said_ms >= READER_EVERY_MS) &&
            op_redis_reader(s->r, s->writer, s->read_pos, err, sizeof(err)) == 0)
            s->reader_said_ms = now_mono();
    }
    rcu_unregister_thread();
    return NULL;
}

int op_redis_sink_start(op_redis_sink_t *s)
{
    int rc = pthread_create(&s->thread, NULL, sink_main, s);
    if (rc)
        return -rc;
    pthread_setname_np(s->thread, "op-redis-sink");
    s->started = 1;
    return 0;
}

void op_redis_sink_stop(op_redis_sink_t *s)
{
    if (!s->started)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->started = 0;
}
