/* redis.c — fenced, pipelined flush of a tick; offsets; state loading.
 *
 * Every command goes through hiredis's Argv API (binary-safe names, no
 * format parsing) and is pipelined: a flush appends WATCH, the offset GETs,
 * then MULTI, every HINCRBY/ZINCRBY/SET/PEXPIRE and EXEC, and reads all the
 * replies at the end. The fence is checked between the GETs and MULTI: if
 * an offset differs, the queued MULTI is DISCARDed instead of EXECed.
 * (The GET replies are needed before deciding, so a flush is two round
 * trips: WATCH+GETs, then MULTI..EXEC.)
 */
#include "engine/io/redis.h"

#include <errno.h>
#include <hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conf.h"
#include "engine/hash.h"
#include "engine/util.h"

#define KEYLEN 512

struct op_redis {
    op_redis_conf_t conf;
    char prefix[64];
    char topic[256];
    redisContext *c;
};

/* --- one command at a time, built in place ------------------------------------ */

#define MAX_ARGS 8

typedef struct cmd {
    const char *argv[MAX_ARGS];
    size_t len[MAX_ARGS];
    int argc;
    char num[MAX_ARGS][24];
} cmd_t;

static void cmd_begin(cmd_t *c, const char *name)
{
    c->argc = 0;
    c->argv[c->argc] = name;
    c->len[c->argc++] = strlen(name);
}

static void cmd_str(cmd_t *c, const char *s, size_t len)
{
    c->argv[c->argc] = s;
    c->len[c->argc++] = len;
}

static void cmd_i64(cmd_t *c, int64_t v)
{
    int n = snprintf(c->num[c->argc], sizeof(c->num[0]), "%" PRId64, v);
    cmd_str(c, c->num[c->argc], (size_t)n);
}

static int cmd_append(op_redis_t *r, cmd_t *c)
{
    return redisAppendCommandArgv(r->c, c->argc, c->argv, c->len) == REDIS_OK ? 0 : -EIO;
}

/* --- connection ------------------------------------------------------------------ */

static int redis_error(op_redis_t *r, char *err, size_t errlen, const char *what)
{
    op_conf_error(err, errlen, "redis %s:%d: %s: %s", r->conf.host, r->conf.port, what,
                  r->c && r->c->err ? r->c->errstr : "no connection");
    if (r->c) {
        redisFree(r->c);
        r->c = NULL;
    }
    return -ECONNRESET;
}

static redisReply *call(op_redis_t *r, cmd_t *c)
{
    return redisCommandArgv(r->c, c->argc, c->argv, c->len);
}

static int ensure_connected(op_redis_t *r, char *err, size_t errlen)
{
    if (r->c)
        return 0;
    struct timeval tv = {.tv_sec = r->conf.timeout_ms / 1000,
                         .tv_usec = (r->conf.timeout_ms % 1000) * 1000};
    r->c = redisConnectWithTimeout(r->conf.host, r->conf.port, tv);
    if (!r->c || r->c->err)
        return redis_error(r, err, errlen, "connect");
    redisSetTimeout(r->c, tv);
    cmd_t c;
    if (r->conf.password) {
        cmd_begin(&c, "AUTH");
        cmd_str(&c, r->conf.password, strlen(r->conf.password));
        redisReply *rep = call(r, &c);
        int ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep && rep->type == REDIS_REPLY_ERROR)
            op_conf_error(err, errlen, "redis %s:%d: AUTH: %s", r->conf.host, r->conf.port,
                          rep->str);
        freeReplyObject(rep);
        if (!ok) {
            redisFree(r->c);
            r->c = NULL;
            return -EACCES;
        }
    }
    char key[KEYLEN];
    int n = snprintf(key, sizeof(key), "%s:schema", r->prefix);
    cmd_begin(&c, "SET");
    cmd_str(&c, key, (size_t)n);
    cmd_str(&c, "1", 1);
    redisReply *rep = call(r, &c);
    int ok = rep && rep->type == REDIS_REPLY_STATUS;
    if (rep && rep->type == REDIS_REPLY_ERROR)
        op_conf_error(err, errlen, "redis %s:%d: %s", r->conf.host, r->conf.port, rep->str);
    freeReplyObject(rep);
    if (!ok) {
        if (!rep)
            return redis_error(r, err, errlen, "SET schema");
        redisFree(r->c);
        r->c = NULL;
        return -EIO;
    }
    return 0;
}

int op_redis_connect(op_redis_t **out, const op_redis_conf_t *conf, char *err, size_t errlen)
{
    op_redis_t *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->conf = *conf;
    snprintf(r->prefix, sizeof(r->prefix), "%s", conf->prefix ? conf->prefix : "{op}");
    snprintf(r->topic, sizeof(r->topic), "%s", conf->topic ? conf->topic : "orders");
    r->conf.prefix = r->prefix;
    r->conf.topic = r->topic;
    if (r->conf.timeout_ms <= 0)
        r->conf.timeout_ms = 2000;
    int rc = ensure_connected(r, err, errlen);
    if (rc < 0) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void op_redis_close(op_redis_t *r)
{
    if (!r)
        return;
    if (r->c)
        redisFree(r->c);
    free(r);
}

static int offset_key(const op_redis_t *r, int32_t p, char *key)
{
    return snprintf(key, KEYLEN, "%s:offset:%s:%d", r->prefix, r->topic, (int)p);
}

static int64_t reply_i64(const redisReply *rep)
{
    if (!rep)
        return -1;
    if (rep->type == REDIS_REPLY_INTEGER)
        return rep->integer;
    if (rep->type == REDIS_REPLY_STRING)
        return strtoll(rep->str, NULL, 10);
    return -1;
}

int op_redis_offsets(op_redis_t *r, int32_t n, int64_t *offsets, char *err, size_t errlen)
{
    int rc = ensure_connected(r, err, errlen);
    if (rc < 0)
        return rc;
    char key[KEYLEN];
    cmd_t c;
    for (int32_t p = 0; p < n; p++) {
        cmd_begin(&c, "GET");
        cmd_str(&c, key, (size_t)offset_key(r, p, key));
        if (cmd_append(r, &c) < 0)
            return redis_error(r, err, errlen, "GET offset");
    }
    for (int32_t p = 0; p < n; p++) {
        redisReply *rep = NULL;
        if (redisGetReply(r->c, (void **)&rep) != REDIS_OK)
            return redis_error(r, err, errlen, "GET offset");
        offsets[p] = rep->type == REDIS_REPLY_NIL ? -1 : reply_i64(rep);
        freeReplyObject(rep);
    }
    return 0;
}

/* --- flush ----------------------------------------------------------------------- */

typedef struct flush {
    op_redis_t *r;
    long queued; /* commands appended after MULTI */
    int failed;
} flush_t;

static void put(flush_t *f, cmd_t *c)
{
    if (!f->failed && cmd_append(f->r, c) < 0)
        f->failed = 1;
    f->queued++;
}

static void hincr(flush_t *f, const char *key, size_t keylen, const char *field, size_t flen,
                  int64_t v)
{
    if (!v)
        return;
    cmd_t c;
    cmd_begin(&c, "HINCRBY");
    cmd_str(&c, key, keylen);
    cmd_str(&c, field, flen);
    cmd_i64(&c, v);
    put(f, &c);
}

static void hincr_lit(flush_t *f, const char *key, const char *field, int64_t v)
{
    hincr(f, key, strlen(key), field, strlen(field), v);
}

static void expire(flush_t *f, const char *key, size_t keylen)
{
    cmd_t c;
    cmd_begin(&c, "PEXPIRE");
    cmd_str(&c, key, keylen);
    cmd_i64(&c, f->r->conf.retention_ms);
    put(f, &c);
}

/* Per-dimension tallies: P:<what>:q, :a, :o keyed by name. */
static void flush_dim(flush_t *f, const op_ktable_t *t, op_intern_t *dict, op_dim_t dim,
                      const char *what)
{
    char kq[KEYLEN], ka[KEYLEN], ko[KEYLEN];
    snprintf(kq, sizeof(kq), "%s:%s:q", f->r->prefix, what);
    snprintf(ka, sizeof(ka), "%s:%s:a", f->r->prefix, what);
    snprintf(ko, sizeof(ko), "%s:%s:o", f->r->prefix, what);
    for (uint32_t i = 0; i < t->cap; i++) {
        if (!op_ktable_used(t, i))
            continue;
        size_t len;
        const char *name = op_intern_name(dict, dim, (uint32_t)op_ktable_key(t, i), &len);
        if (!name)
            continue;
        hincr(f, kq, strlen(kq), name, len, t->vals[i].quantity);
        hincr(f, ka, strlen(ka), name, len, t->vals[i].amount);
        hincr(f, ko, strlen(ko), name, len, t->vals[i].orders);
    }
}

static void flush_users(flush_t *f, const op_users_t *u)
{
    char kz[KEYLEN], ko[KEYLEN];
    snprintf(kz, sizeof(kz), "%s:users", f->r->prefix);
    snprintf(ko, sizeof(ko), "%s:user:o", f->r->prefix);
    for (uint32_t e = 0; e < u->count; e++) {
        size_t len;
        const char *name = op_users_name(u, e, &len);
        cmd_t c;
        cmd_begin(&c, "ZINCRBY");
        cmd_str(&c, kz, strlen(kz));
        cmd_i64(&c, op_users_amount(u, e));
        cmd_str(&c, name, len);
        put(f, &c);
        hincr(f, ko, strlen(ko), name, len, op_users_orders(u, e));
    }
}

static void flush_windows(flush_t *f, const op_shard_t *d, op_intern_t *dict)
{
    char key[KEYLEN], field[OP_PARSE_MAX_NAME + 8];
    for (uint32_t i = 0; i < d->minutes.cap; i++) {
        if (!op_ktable_used(&d->minutes, i))
            continue;
        const op_tally_t *t = &d->minutes.vals[i];
        int n = snprintf(key, sizeof(key), "%s:minute:%" PRId64, f->r->prefix,
                         (int64_t)(op_ktable_key(&d->minutes, i) * OP_MINUTE_MS));
        hincr_lit(f, key, "orders", t->orders);
        hincr_lit(f, key, "quantity", t->quantity);
        hincr_lit(f, key, "amount", t->amount);
        expire(f, key, (size_t)n);
    }
    for (uint32_t i = 0; i < d->catmin.cap; i++) {
        if (!op_ktable_used(&d->catmin, i))
            continue;
        uint64_t k = op_ktable_key(&d->catmin, i);
        size_t len;
        const char *name = op_intern_name(dict, OP_DIM_CATEGORY, op_ktable_pair_dim(k), &len);
        if (!name)
            continue;
        const op_tally_t *t = &d->catmin.vals[i];
        int n = snprintf(key, sizeof(key), "%s:catmin:%" PRId64, f->r->prefix,
                         (int64_t)(op_ktable_pair_bucket(k) * OP_MINUTE_MS));
        memcpy(field, name, len);
        field[len] = '\x1f';
        static const char suffix[3] = {'q', 'a', 'o'};
        const int64_t vals[3] = {t->quantity, t->amount, t->orders};
        for (int s = 0; s < 3; s++) {
            field[len + 1] = suffix[s];
            hincr(f, key, (size_t)n, field, len + 2, vals[s]);
        }
        expire(f, key, (size_t)n);
    }
    for (uint32_t i = 0; i < d->gslots.cap; i++) {
        if (!op_ktable_used(&d->gslots, i))
            continue;
        uint64_t k = op_ktable_key(&d->gslots, i);
        size_t len;
        const char *name = op_intern_name(dict, OP_DIM_GENDER, op_ktable_pair_dim(k), &len);
        if (!name)
            continue;
        int n = snprintf(key, sizeof(key), "%s:slot:%" PRId64, f->r->prefix,
                         (int64_t)(op_ktable_pair_bucket(k) * OP_SLOT_MS));
        hincr(f, key, (size_t)n, name, len, d->gslots.vals[i].quantity);
        expire(f, key, (size_t)n);
    }
}

static void flush_counters(flush_t *f, const op_shard_t *d)
{
    char key[KEYLEN];
    snprintf(key, sizeof(key), "%s:totals", f->r->prefix);
    int64_t bad = 0;
    for (int i = 0; i < OP_BAD_REASON_COUNT; i++)
        bad += d->bad[i];
    hincr_lit(f, key, "orders", d->totals.orders);
    hincr_lit(f, key, "quantity", d->totals.quantity);
    hincr_lit(f, key, "amount", d->totals.amount);
    hincr_lit(f, key, "bad", bad);
    hincr_lit(f, key, "late", d->late);
    snprintf(key, sizeof(key), "%s:bad", f->r->prefix);
    for (int i = 1; i < OP_BAD_REASON_COUNT; i++)
        hincr_lit(f, key, op_shard_bad_reason_name(i), d->bad[i]);
}

/* Reads n replies; returns the last one (caller frees) or NULL on error. */
static redisReply *drain(op_redis_t *r, long n, char *err, size_t errlen, int *queued_error)
{
    redisReply *rep = NULL;
    for (long i = 0; i < n; i++) {
        freeReplyObject(rep);
        rep = NULL;
        if (redisGetReply(r->c, (void **)&rep) != REDIS_OK) {
            redis_error(r, err, errlen, "reading replies");
            return NULL;
        }
        if (i + 1 < n && rep->type == REDIS_REPLY_ERROR && !*queued_error) {
            *queued_error = 1;
            op_conf_error(err, errlen, "redis: %s", rep->str);
        }
    }
    return rep;
}

static int check_fence(op_redis_t *r, const op_shard_t *d, const int64_t *expected, char *err,
                       size_t errlen)
{
    char key[KEYLEN];
    cmd_t c;
    for (int32_t p = op_shard_next_touched(d, 0); p >= 0; p = op_shard_next_touched(d, p + 1)) {
        int klen = offset_key(r, p, key);
        cmd_begin(&c, "WATCH");
        cmd_str(&c, key, (size_t)klen);
        if (cmd_append(r, &c) < 0)
            return redis_error(r, err, errlen, "WATCH");
        cmd_begin(&c, "GET");
        cmd_str(&c, key, (size_t)klen);
        if (cmd_append(r, &c) < 0)
            return redis_error(r, err, errlen, "GET");
    }
    int fenced = 0;
    for (int32_t p = op_shard_next_touched(d, 0); p >= 0; p = op_shard_next_touched(d, p + 1)) {
        redisReply *watch = NULL, *get = NULL;
        if (redisGetReply(r->c, (void **)&watch) != REDIS_OK ||
            redisGetReply(r->c, (void **)&get) != REDIS_OK) {
            freeReplyObject(watch);
            return redis_error(r, err, errlen, "WATCH/GET");
        }
        int64_t have = get->type == REDIS_REPLY_NIL ? -1 : reply_i64(get);
        if (have != expected[p]) {
            if (!fenced)
                op_conf_error(err, errlen,
                              "partition %d: Redis holds offset %" PRId64
                              ", this process expected %" PRId64,
                              (int)p, have, expected[p]);
            fenced = 1;
        }
        freeReplyObject(watch);
        freeReplyObject(get);
    }
    return fenced;
}

int op_redis_flush(op_redis_t *r, const op_shard_t *d, op_intern_t *dict, const int64_t *expected,
                   char *err, size_t errlen)
{
    int rc = ensure_connected(r, err, errlen);
    if (rc < 0)
        return rc;
    rc = check_fence(r, d, expected, err, errlen);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        redisReply *rep = redisCommand(r->c, "UNWATCH");
        if (!rep)
            return redis_error(r, err, errlen, "UNWATCH");
        freeReplyObject(rep);
        return OP_REDIS_FENCED;
    }

    flush_t f = {.r = r};
    cmd_t c;
    cmd_begin(&c, "MULTI");
    put(&f, &c);
    flush_counters(&f, d);
    flush_dim(&f, &d->brands, dict, OP_DIM_BRAND, "brand");
    flush_dim(&f, &d->genders, dict, OP_DIM_GENDER, "gender");
    flush_users(&f, &d->users);
    flush_windows(&f, d, dict);
    char key[KEYLEN];
    for (int32_t p = op_shard_next_touched(d, 0); p >= 0; p = op_shard_next_touched(d, p + 1)) {
        cmd_begin(&c, "SET");
        cmd_str(&c, key, (size_t)offset_key(r, p, key));
        cmd_i64(&c, d->parts[p].next_offset);
        put(&f, &c);
    }
    cmd_begin(&c, "EXEC");
    put(&f, &c);
    if (f.failed)
        return redis_error(r, err, errlen, "appending commands");

    int queued_error = 0;
    redisReply *exec = drain(r, f.queued, err, errlen, &queued_error);
    if (!exec)
        return -ECONNRESET;
    if (exec->type == REDIS_REPLY_NIL) {
        freeReplyObject(exec);
        op_conf_error(err, errlen, "an offset key changed during the flush");
        return OP_REDIS_FENCED;
    }
    if (exec->type != REDIS_REPLY_ARRAY) {
        if (!queued_error)
            op_conf_error(err, errlen, "redis: EXEC: %s",
                          exec->type == REDIS_REPLY_ERROR ? exec->str : "unexpected reply");
        freeReplyObject(exec);
        return -EIO;
    }
    freeReplyObject(exec);
    return 0;
}

/* --- loading ---------------------------------------------------------------------- */

static redisReply *hgetall(op_redis_t *r, const char *key, char *err, size_t errlen)
{
    cmd_t c;
    cmd_begin(&c, "HGETALL");
    cmd_str(&c, key, strlen(key));
    redisReply *rep = call(r, &c);
    if (!rep) {
        redis_error(r, err, errlen, "HGETALL");
        return NULL;
    }
    if (rep->type != REDIS_REPLY_ARRAY) {
        op_conf_error(err, errlen, "redis: HGETALL %s: %s", key,
                      rep->type == REDIS_REPLY_ERROR ? rep->str : "not a hash");
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

static int load_counters(op_redis_t *r, op_state_t *st, char *err, size_t errlen)
{
    char key[KEYLEN];
    snprintf(key, sizeof(key), "%s:totals", r->prefix);
    redisReply *h = hgetall(r, key, err, errlen);
    if (!h)
        return -EIO;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *f = h->element[i]->str;
        int64_t v = reply_i64(h->element[i + 1]);
        if (!strcmp(f, "orders"))
            st->totals.orders = v;
        else if (!strcmp(f, "quantity"))
            st->totals.quantity = v;
        else if (!strcmp(f, "amount"))
            st->totals.amount = v;
        else if (!strcmp(f, "late"))
            st->late = v;
        else if (!strcmp(f, "bad"))
            st->bad_total = v;
    }
    freeReplyObject(h);
    snprintf(key, sizeof(key), "%s:bad", r->prefix);
    if (!(h = hgetall(r, key, err, errlen)))
        return -EIO;
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        for (int reason = 1; reason < OP_BAD_REASON_COUNT; reason++)
            if (!strcmp(h->element[i]->str, op_shard_bad_reason_name(reason)))
                st->bad[reason] = reply_i64(h->element[i + 1]);
    freeReplyObject(h);
    return 0;
}

static int load_dim(op_redis_t *r, op_ktable_t *t, op_intern_cache_t *cache, op_dim_t dim,
                    const char *what, char *err, size_t errlen)
{
    static const char kinds[3] = {'q', 'a', 'o'};
    for (int k = 0; k < 3; k++) {
        char key[KEYLEN];
        snprintf(key, sizeof(key), "%s:%s:%c", r->prefix, what, kinds[k]);
        redisReply *h = hgetall(r, key, err, errlen);
        if (!h)
            return -EIO;
        for (size_t i = 0; i + 1 < h->elements; i += 2) {
            int32_t id = op_intern_cache_id(cache, dim, h->element[i]->str, h->element[i]->len);
            if (id < 0)
                continue;
            op_tally_t *tl = op_ktable_upsert(t, (uint32_t)id);
            int64_t v = reply_i64(h->element[i + 1]);
            if (k == 0)
                tl->quantity = v;
            else if (k == 1)
                tl->amount = v;
            else
                tl->orders = v;
        }
        freeReplyObject(h);
    }
    return 0;
}

static int load_users(op_redis_t *r, op_state_t *st, char *err, size_t errlen)
{
    char key[KEYLEN], ko[KEYLEN];
    snprintf(key, sizeof(key), "%s:users", r->prefix);
    snprintf(ko, sizeof(ko), "%s:user:o", r->prefix);
    redisReply *orders = hgetall(r, ko, err, errlen);
    if (!orders)
        return -EIO;
    /* Orders first, into a scratch table, so each user is offered to the
     * top-K once with both figures. */
    op_users_t tmp;
    op_users_init(&tmp);
    for (size_t i = 0; i + 1 < orders->elements; i += 2) {
        const redisReply *n = orders->element[i];
        if (n->len < 1 || n->len > OP_USERS_MAX_NAME)
            continue;
        uint32_t e = op_users_upsert(&tmp, n->str, n->len, op_users_hash(n->str, n->len));
        op_users_add(&tmp, e, 0, reply_i64(orders->element[i + 1]));
    }
    freeReplyObject(orders);
    cmd_t c;
    cmd_begin(&c, "ZRANGE");
    cmd_str(&c, key, strlen(key));
    cmd_str(&c, "0", 1);
    cmd_str(&c, "-1", 2);
    cmd_str(&c, "WITHSCORES", 10);
    redisReply *z = call(r, &c);
    if (!z || z->type != REDIS_REPLY_ARRAY) {
        op_users_dispose(&tmp);
        freeReplyObject(z);
        return z ? -EIO : redis_error(r, err, errlen, "ZRANGE users");
    }
    for (size_t i = 0; i + 1 < z->elements; i += 2) {
        const redisReply *n = z->element[i];
        if (n->len < 1 || n->len > OP_USERS_MAX_NAME)
            continue;
        /* Scores are sums of integer cents: exact in a double below 2^53. */
        int64_t cents = (int64_t)strtod(z->element[i + 1]->str, NULL);
        uint32_t e = op_users_find(&tmp, n->str, n->len, op_users_hash(n->str, n->len));
        op_state_add_user(st, n->str, n->len, cents,
                          e == UINT32_MAX ? 0 : op_users_orders(&tmp, e));
    }
    freeReplyObject(z);
    op_users_dispose(&tmp);
    return 0;
}

/* Only the k best users (ZREVRANGE) with their order counts: what a
 * snapshot shows, without reading millions of users every tick. */
static int load_top_users(op_redis_t *r, op_state_t *st, int k, char *err, size_t errlen)
{
    char key[KEYLEN], ko[KEYLEN];
    snprintf(key, sizeof(key), "%s:users", r->prefix);
    snprintf(ko, sizeof(ko), "%s:user:o", r->prefix);
    cmd_t c;
    cmd_begin(&c, "ZREVRANGE");
    cmd_str(&c, key, strlen(key));
    cmd_i64(&c, 0);
    cmd_i64(&c, k - 1);
    cmd_str(&c, "WITHSCORES", 10);
    redisReply *z = call(r, &c);
    if (!z || z->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(z);
        return z ? -EIO : redis_error(r, err, errlen, "ZREVRANGE users");
    }
    for (size_t i = 0; i + 1 < z->elements; i += 2) {
        cmd_begin(&c, "HGET");
        cmd_str(&c, ko, strlen(ko));
        cmd_str(&c, z->element[i]->str, z->element[i]->len);
        if (cmd_append(r, &c) < 0) {
            freeReplyObject(z);
            return redis_error(r, err, errlen, "HGET user orders");
        }
    }
    int rc = 0;
    for (size_t i = 0; i + 1 < z->elements; i += 2) {
        redisReply *o = NULL;
        if (redisGetReply(r->c, (void **)&o) != REDIS_OK) {
            rc = redis_error(r, err, errlen, "HGET user orders");
            break;
        }
        const redisReply *n = z->element[i];
        if (n->len >= 1 && n->len <= OP_USERS_MAX_NAME)
            op_state_add_user(st, n->str, n->len, (int64_t)strtod(z->element[i + 1]->str, NULL),
                              o->type == REDIS_REPLY_NIL ? 0 : reply_i64(o));
        freeReplyObject(o);
    }
    freeReplyObject(z);
    return rc;
}

/* Calls fn for every key matching pattern (SCAN). */
static int scan_keys(op_redis_t *r, const char *pattern,
                     int (*fn)(op_redis_t *, const char *, size_t, op_state_t *,
                               op_intern_cache_t *, char *, size_t),
                     op_state_t *st, op_intern_cache_t *cache, char *err, size_t errlen)
{
    char cursor[32] = "0";
    do {
        cmd_t c;
        cmd_begin(&c, "SCAN");
        cmd_str(&c, cursor, strlen(cursor));
        cmd_str(&c, "MATCH", 5);
        cmd_str(&c, pattern, strlen(pattern));
        cmd_str(&c, "COUNT", 5);
        cmd_str(&c, "1000", 4);
        redisReply *rep = call(r, &c);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            freeReplyObject(rep);
            return redis_error(r, err, errlen, "SCAN");
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        const redisReply *keys = rep->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            int rc = fn(r, keys->element[i]->str, keys->element[i]->len, st, cache, err, errlen);
            if (rc < 0) {
                freeReplyObject(rep);
                return rc;
            }
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* The bucket number of a window key "P:kind:<ms>", or -1. */
static int64_t key_bucket(const char *key, int64_t width_ms)
{
    const char *colon = strrchr(key, ':');
    if (!colon)
        return -1;
    int64_t ms = strtoll(colon + 1, NULL, 10);
    return ms >= 0 ? ms / width_ms : -1;
}

static int load_minute(op_redis_t *r, const char *key, size_t klen, op_state_t *st,
                       op_intern_cache_t *cache, char *err, size_t errlen)
{
    (void)klen, (void)cache;
    int64_t m = key_bucket(key, OP_MINUTE_MS);
    redisReply *h = hgetall(r, key, err, errlen);
    if (!h)
        return -EIO;
    if (m >= 0) {
        op_tally_t *t = op_ktable_upsert(&st->minutes, (uint64_t)m);
        for (size_t i = 0; i + 1 < h->elements; i += 2) {
            int64_t v = reply_i64(h->element[i + 1]);
            if (!strcmp(h->element[i]->str, "orders"))
                t->orders = v;
            else if (!strcmp(h->element[i]->str, "quantity"))
                t->quantity = v;
            else if (!strcmp(h->element[i]->str, "amount"))
                t->amount = v;
        }
    }
    freeReplyObject(h);
    return 0;
}

static int load_catmin(op_redis_t *r, const char *key, size_t klen, op_state_t *st,
                       op_intern_cache_t *cache, char *err, size_t errlen)
{
    (void)klen;
    int64_t m = key_bucket(key, OP_MINUTE_MS);
    redisReply *h = hgetall(r, key, err, errlen);
    if (!h)
        return -EIO;
    for (size_t i = 0; m >= 0 && i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i];
        if (f->len < 3 || f->str[f->len - 2] != '\x1f')
            continue;
        int32_t id = op_intern_cache_id(cache, OP_DIM_CATEGORY, f->str, f->len - 2);
        if (id < 0)
            continue;
        op_tally_t *t = op_ktable_upsert(&st->catmin, op_ktable_pair((uint64_t)m, (uint32_t)id));
        int64_t v = reply_i64(h->element[i + 1]);
        char kind = f->str[f->len - 1];
        if (kind == 'q')
            t->quantity = v;
        else if (kind == 'a')
            t->amount = v;
        else if (kind == 'o')
            t->orders = v;
    }
    freeReplyObject(h);
    return 0;
}

static int load_slot(op_redis_t *r, const char *key, size_t klen, op_state_t *st,
                     op_intern_cache_t *cache, char *err, size_t errlen)
{
    (void)klen;
    int64_t s = key_bucket(key, OP_SLOT_MS);
    redisReply *h = hgetall(r, key, err, errlen);
    if (!h)
        return -EIO;
    for (size_t i = 0; s >= 0 && i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i];
        int32_t id = op_intern_cache_id(cache, OP_DIM_GENDER, f->str, f->len);
        if (id >= 0)
            op_ktable_upsert(&st->gslots, op_ktable_pair((uint64_t)s, (uint32_t)id))->quantity =
                reply_i64(h->element[i + 1]);
    }
    freeReplyObject(h);
    return 0;
}

int op_redis_load(op_redis_t *r, op_state_t *st, op_intern_cache_t *cache, int top_users, char *err,
                  size_t errlen)
{
    int rc = ensure_connected(r, err, errlen);
    if (rc < 0)
        return rc;
    char pattern[KEYLEN];
    if ((rc = load_counters(r, st, err, errlen)) < 0 ||
        (rc = load_dim(r, &st->brands, cache, OP_DIM_BRAND, "brand", err, errlen)) < 0 ||
        (rc = load_dim(r, &st->genders, cache, OP_DIM_GENDER, "gender", err, errlen)) < 0 ||
        (rc = top_users > 0 ? load_top_users(r, st, top_users, err, errlen)
                            : load_users(r, st, err, errlen)) < 0)
        return rc;
    snprintf(pattern, sizeof(pattern), "%s:minute:*", r->prefix);
    if ((rc = scan_keys(r, pattern, load_minute, st, cache, err, errlen)) < 0)
        return rc;
    snprintf(pattern, sizeof(pattern), "%s:catmin:*", r->prefix);
    if ((rc = scan_keys(r, pattern, load_catmin, st, cache, err, errlen)) < 0)
        return rc;
    snprintf(pattern, sizeof(pattern), "%s:slot:*", r->prefix);
    return scan_keys(r, pattern, load_slot, st, cache, err, errlen);
}
