/* redis_migrate.c — layout 1 to layout 2 (see redis_migrate.h). */
#include "engine/io/redis_migrate.h"

#include <errno.h>
#include <hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conf.h"
#include "engine/hash.h"
#include "engine/io/delta.h"
#include "engine/io/redisconn.h"
#include "engine/state.h"
#include "engine/util.h"

#define KEYLEN 512

typedef struct mig {
    redisContext *c;
    const char *prefix;
    char *msg;
    size_t msglen;
    op_intern_cache_t cache;
    op_state_t st;
    /* layout-1 keys to delete at the end */
    char **old;
    size_t nold, capold;
    /* partitions: "kafka:<topic>:<p>" and next offset */
    char **fields;
    int64_t *next;
    size_t nparts;
} mig_t;

static int fail(mig_t *m, const char *what)
{
    op_conf_error(m->msg, m->msglen, "redis --redis-migrate: %s: %s", what,
                  m->c && m->c->err ? m->c->errstr : "unexpected reply");
    return -EIO;
}

static redisReply *run(mig_t *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(m->c, fmt, ap);
    va_end(ap);
    if (!rep) {
        fail(m, fmt);
        return NULL;
    }
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        op_conf_error(m->msg, m->msglen, "redis --redis-migrate: %s", rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

static void remember(mig_t *m, const char *key)
{
    if (m->nold == m->capold) {
        m->capold = m->capold ? m->capold * 2 : 64;
        m->old = op_xrealloc(m->old, m->capold * sizeof(*m->old));
    }
    m->old[m->nold++] = strdup(key);
}

static int64_t num(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
}

/* Every key matching pattern. */
static int scan(mig_t *m, const char *pattern, int (*fn)(mig_t *, const char *))
{
    char cursor[32] = "0";
    do {
        redisReply *rep = run(m, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            freeReplyObject(rep);
            return fail(m, "SCAN");
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++) {
            int rc = fn(m, rep->element[1]->element[i]->str);
            if (rc < 0) {
                freeReplyObject(rep);
                return rc;
            }
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

static redisReply *hgetall(mig_t *m, const char *key)
{
    redisReply *rep = run(m, "HGETALL %s", key);
    if (rep && rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        op_conf_error(m->msg, m->msglen, "redis --redis-migrate: %s is not a hash", key);
        return NULL;
    }
    if (rep)
        remember(m, key);
    return rep;
}

static int64_t bucket_of(const char *key, int64_t width)
{
    const char *colon = strrchr(key, ':');
    return colon ? strtoll(colon + 1, NULL, 10) / width : -1;
}

static int load_minute(mig_t *m, const char *key)
{
    redisReply *h = hgetall(m, key);
    if (!h)
        return -EIO;
    op_tally_t *t = op_ktable_upsert(&m->st.minutes, (uint64_t)bucket_of(key, OP_MINUTE_MS));
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        int64_t v = num(h->element[i + 1]);
        if (!strcmp(h->element[i]->str, "orders"))
            t->orders = v;
        else if (!strcmp(h->element[i]->str, "quantity"))
            t->quantity = v;
        else if (!strcmp(h->element[i]->str, "amount"))
            t->amount = v;
    }
    freeReplyObject(h);
    return 0;
}

static int load_catmin(mig_t *m, const char *key)
{
    redisReply *h = hgetall(m, key);
    if (!h)
        return -EIO;
    uint64_t minute = (uint64_t)bucket_of(key, OP_MINUTE_MS);
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i];
        if (f->len < 3 || f->str[f->len - 2] != '\x1f')
            continue;
        int32_t id = op_intern_cache_id(&m->cache, OP_DIM_CATEGORY, f->str, f->len - 2);
        if (id < 0)
            continue;
        op_tally_t *t = op_ktable_upsert(&m->st.catmin, op_ktable_pair(minute, (uint32_t)id));
        int64_t v = num(h->element[i + 1]);
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

static int load_slot(mig_t *m, const char *key)
{
    redisReply *h = hgetall(m, key);
    if (!h)
        return -EIO;
    uint64_t slot = (uint64_t)bucket_of(key, OP_SLOT_MS);
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i];
        int32_t id = op_intern_cache_id(&m->cache, OP_DIM_GENDER, f->str, f->len);
        if (id < 0)
            continue;
        op_tally_t *t = op_ktable_upsert(&m->st.gslots, op_ktable_pair(slot, (uint32_t)id));
        t->quantity = num(h->element[i + 1]);
        t->orders = 1; /* layout 1 kept quantities only: the slot had orders */
    }
    freeReplyObject(h);
    return 0;
}

static int load_offset(mig_t *m, const char *key)
{
    /* "<prefix>:offset:<topic>:<p>" */
    size_t plen = strlen(m->prefix) + strlen(":offset:");
    const char *rest = key + plen, *colon = strrchr(key, ':');
    if (strlen(key) <= plen || colon < rest)
        return 0;
    redisReply *rep = run(m, "GET %s", key);
    if (!rep)
        return -EIO;
    char field[KEYLEN];
    snprintf(field, sizeof(field), "kafka:%.*s:%s", (int)(colon - rest), rest, colon + 1);
    m->fields = op_xrealloc(m->fields, (m->nparts + 1) * sizeof(*m->fields));
    m->next = op_xrealloc(m->next, (m->nparts + 1) * sizeof(*m->next));
    m->fields[m->nparts] = strdup(field);
    m->next[m->nparts++] = num(rep);
    freeReplyObject(rep);
    remember(m, key);
    return 0;
}

static int load_dim(mig_t *m, op_ktable_t *t, op_dim_t dim, const char *what)
{
    static const char kinds[3] = {'q', 'a', 'o'};
    for (int k = 0; k < 3; k++) {
        char key[KEYLEN];
        snprintf(key, sizeof(key), "%s:%s:%c", m->prefix, what, kinds[k]);
        redisReply *h = hgetall(m, key);
        if (!h)
            return -EIO;
        for (size_t i = 0; i + 1 < h->elements; i += 2) {
            int32_t id = op_intern_cache_id(&m->cache, dim, h->element[i]->str, h->element[i]->len);
            if (id < 0)
                continue;
            op_tally_t *tl = op_ktable_upsert(t, (uint32_t)id);
            int64_t v = num(h->element[i + 1]);
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

static int load_users(mig_t *m)
{
    char key[KEYLEN], ko[KEYLEN];
    snprintf(key, sizeof(key), "%s:users", m->prefix);
    snprintf(ko, sizeof(ko), "%s:user:o", m->prefix);
    redisReply *o = hgetall(m, ko);
    if (!o)
        return -EIO;
    op_users_t orders;
    op_users_init(&orders);
    for (size_t i = 0; i + 1 < o->elements; i += 2) {
        const redisReply *n = o->element[i];
        if (n->len < 1 || n->len > OP_USERS_MAX_NAME)
            continue;
        uint32_t e = op_users_upsert(&orders, n->str, n->len, op_hash_bytes(n->str, n->len));
        orders.ent[e].orders = (uint32_t)num(o->element[i + 1]);
    }
    freeReplyObject(o);
    redisReply *z = run(m, "ZRANGE %s 0 -1 WITHSCORES", key);
    if (!z || z->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(z);
        op_users_dispose(&orders);
        return fail(m, "ZRANGE users");
    }
    remember(m, key);
    for (size_t i = 0; i + 1 < z->elements; i += 2) {
        const redisReply *n = z->element[i];
        if (n->len < 1 || n->len > OP_USERS_MAX_NAME)
            continue;
        int64_t cents = (int64_t)strtod(z->element[i + 1]->str, NULL); /* exact below 2^53 */
        uint32_t e = op_users_find(&orders, n->str, n->len, op_hash_bytes(n->str, n->len));
        op_state_add_user(&m->st, n->str, n->len, cents,
                          e == UINT32_MAX ? 0 : (int64_t)orders.ent[e].orders);
    }
    freeReplyObject(z);
    op_users_dispose(&orders);
    return 0;
}

static int load_counters(mig_t *m)
{
    char key[KEYLEN];
    snprintf(key, sizeof(key), "%s:totals", m->prefix);
    redisReply *h = hgetall(m, key);
    if (!h)
        return -EIO;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *f = h->element[i]->str;
        int64_t v = num(h->element[i + 1]);
        if (!strcmp(f, "orders"))
            m->st.totals.orders = v;
        else if (!strcmp(f, "quantity"))
            m->st.totals.quantity = v;
        else if (!strcmp(f, "amount"))
            m->st.totals.amount = v;
        else if (!strcmp(f, "late"))
            m->st.late = v;
    }
    freeReplyObject(h);
    snprintf(key, sizeof(key), "%s:bad", m->prefix);
    if (!(h = hgetall(m, key)))
        return -EIO;
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        for (int r = 1; r < OP_BAD_REASON_COUNT; r++)
            if (!strcmp(h->element[i]->str, op_shard_bad_reason_name(r)))
                m->st.bad_total += (m->st.bad[r] = num(h->element[i + 1]));
    freeReplyObject(h);
    return 0;
}

/* The new layout: blobs, log, partitions, then the state record. */
static int write_layout2(mig_t *m, size_t *bytes_out)
{
    op_delta_buf_t b;
    op_delta_buf_init(&b, 'S');
    op_delta_encode_state(&b, &m->st);
    char entry[65536];
    size_t n = (size_t)snprintf(entry, sizeof(entry), "S migrate 0 %zu", b.bytes);
    int rc = 0;
    char key[KEYLEN];
    for (uint32_t i = 0; i < b.n && rc == 0; i++) {
        snprintf(key, sizeof(key), "%s:b:migrate:%u", m->prefix, i + 1);
        redisReply *rep = run(m, "SET %s %b", key, b.chunks[i].buf, b.chunks[i].len);
        rc = rep ? 0 : fail(m, "SET blob");
        freeReplyObject(rep);
        if (n + strlen(key) + 2 < sizeof(entry))
            n += (size_t)snprintf(entry + n, sizeof(entry) - n, " %s", key);
        else
            rc = op_conf_error(m->msg, m->msglen, "redis --redis-migrate: state too large");
    }
    *bytes_out = b.bytes;
    op_delta_buf_dispose(&b);
    if (rc)
        return rc;
    redisReply *rep;
    snprintf(key, sizeof(key), "%s:log", m->prefix);
    if (!(rep = run(m, "DEL %s", key)))
        return -EIO;
    freeReplyObject(rep);
    if (!(rep = run(m, "RPUSH %s %s", key, entry)))
        return -EIO;
    freeReplyObject(rep);
    snprintf(key, sizeof(key), "%s:parts", m->prefix);
    for (size_t i = 0; i < m->nparts; i++) {
        char rec[128];
        snprintf(rec, sizeof(rec), "1 - %" PRId64 " %" PRId64 " 0", m->next[i], INT64_MIN);
        if (!(rep = run(m, "HSET %s %s %s", key, m->fields[i], rec)))
            return -EIO;
        freeReplyObject(rep);
    }
    unsigned char raw[12];
    char id[32] = "";
    FILE *u = fopen("/dev/urandom", "rb");
    if (!u || fread(raw, 1, sizeof(raw), u) != sizeof(raw)) {
        if (u)
            fclose(u);
        return op_conf_error(m->msg, m->msglen, "cannot read /dev/urandom");
    }
    fclose(u);
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(id + 2 * i, 3, "%02x", raw[i]);
    snprintf(key, sizeof(key), "%s:meta", m->prefix);
    rep = run(m,
              "HSET %s layout 2 id %s created %lld base 0 pos 1 nparts %lld snap_bytes %lld "
              "delta_bytes 0",
              key, id, (long long)op_now_wall_ms(), (long long)m->nparts, (long long)*bytes_out);
    if (!rep)
        return fail(m, "HSET meta");
    freeReplyObject(rep);
    return 0;
}

int op_redis_migrate(const op_redis_conf_t *conf, op_intern_t *dict, char *msg, size_t msglen)
{
    mig_t m = {.prefix = conf->prefix ? conf->prefix : "{op}", .msg = msg, .msglen = msglen};
    op_redis_conf_t cc = *conf;
    cc.timeout_ms = (conf->timeout_ms ? conf->timeout_ms : 2000) + 5000;
    int rc = -EIO;
    op_intern_cache_init(&m.cache, dict);
    op_state_init(&m.st, dict);
    char key[KEYLEN];
    snprintf(key, sizeof(key), "%s:meta", m.prefix);
    /* The node holding the prefix's slot (a Cluster's, or Sentinel's primary). */
    op_redisconn_t *conn = NULL;
    if (op_redisconn_create(&conn, &cc, key, NULL, NULL) < 0 ||
        !(m.c = op_redisconn_context(conn, msg, msglen)))
        goto out;
    redisReply *rep;
    snprintf(key, sizeof(key), "%s:meta", m.prefix);
    if (!(rep = run(&m, "EXISTS %s", key)))
        goto out;
    int done = rep->integer != 0;
    freeReplyObject(rep);
    snprintf(key, sizeof(key), "%s:schema", m.prefix);
    if (!(rep = run(&m, "GET %s", key)))
        goto out;
    int v1 = rep->type == REDIS_REPLY_STRING && !strcmp(rep->str, "1");
    freeReplyObject(rep);
    if (!v1) {
        snprintf(msg, msglen, "%s",
                 done ? "nothing to migrate: the keys are in layout 2 already"
                      : "nothing to migrate: no layout-1 keys of this prefix");
        rc = 0;
        goto out;
    }
    if (!done) {
        char pattern[KEYLEN];
        if ((rc = load_counters(&m)) < 0 ||
            (rc = load_dim(&m, &m.st.brands, OP_DIM_BRAND, "brand")) < 0 ||
            (rc = load_dim(&m, &m.st.genders, OP_DIM_GENDER, "gender")) < 0 ||
            (rc = load_users(&m)) < 0)
            goto out;
        snprintf(pattern, sizeof(pattern), "%s:minute:*", m.prefix);
        if ((rc = scan(&m, pattern, load_minute)) < 0)
            goto out;
        snprintf(pattern, sizeof(pattern), "%s:catmin:*", m.prefix);
        if ((rc = scan(&m, pattern, load_catmin)) < 0)
            goto out;
        snprintf(pattern, sizeof(pattern), "%s:slot:*", m.prefix);
        if ((rc = scan(&m, pattern, load_slot)) < 0)
            goto out;
        snprintf(pattern, sizeof(pattern), "%s:offset:*", m.prefix);
        if ((rc = scan(&m, pattern, load_offset)) < 0)
            goto out;
        size_t bytes;
        if ((rc = write_layout2(&m, &bytes)) < 0)
            goto out;
    } else {
        /* Interrupted after the state record: only the old keys remain to go
         * (those whose names layout 2 does not use; a catmin key of layout 1
         * is a hash named by its minute alone). */
        char pattern[KEYLEN];
        const char *const kinds[] = {"minute:*", "catmin:*", "slot:*", "offset:*",
                                     "brand:*",  "user:o",   "users"};
        for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
            snprintf(pattern, sizeof(pattern), "%s:%s", m.prefix, kinds[i]);
            redisReply *k = run(&m, "KEYS %s", pattern);
            for (size_t j = 0; k && j < k->elements; j++) {
                const char *name = k->element[j]->str, *c = strstr(name, ":catmin:");
                if (c && name[strspn(c + 8, "0123456789") + (size_t)(c + 8 - name)] != 0)
                    continue; /* :a / :o of layout 2 */
                if (c && !(rep = run(&m, "TYPE %s", name)))
                    continue;
                int zset = c && strcmp(rep->str, "zset") == 0;
                if (c)
                    freeReplyObject(rep);
                if (!zset)
                    remember(&m, name);
            }
            freeReplyObject(k);
        }
    }
    remember(&m, key); /* <prefix>:schema, last */
    for (size_t i = 0; i < m.nold; i++) {
        if (!(rep = run(&m, "UNLINK %s", m.old[i]))) {
            rc = -EIO;
            goto out;
        }
        freeReplyObject(rep);
    }
    snprintf(msg, msglen,
             "migrated %s to layout 2: %lld orders, %u users, %zu partitions (%zu layout-1 keys "
             "removed)",
             m.prefix, (long long)m.st.totals.orders, m.st.users.count, m.nparts, m.nold);
    rc = 0;
out:
    for (size_t i = 0; i < m.nold; i++)
        free(m.old[i]);
    free(m.old);
    for (size_t i = 0; i < m.nparts; i++)
        free(m.fields[i]);
    free(m.fields);
    free(m.next);
    op_state_dispose(&m.st);
    op_intern_cache_dispose(&m.cache);
    op_redisconn_destroy(conn); /* closes m.c */
    return rc;
}
