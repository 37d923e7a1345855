/* redis.c — one Redis connection and the protocol's calls (see redis.h).
 *
 * Every command goes through hiredis's Argv API (binary-safe, no format
 * parsing). The protocol's logic lives in engine/io/redis.lua, linked into
 * the binary below and loaded with FUNCTION LOAD REPLACE on every new
 * connection, so that a Redis restarted without persistence, or a replica
 * promoted after a failover, always runs the functions of this binary.
 */
#include "engine/io/redis.h"

#include <errno.h>
#include <hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conf.h"
#include "engine/util.h"

/* engine/io/redis.lua, NUL-terminated (the Makefile makes this object depend
 * on the file). */
__asm__(".section .rodata\n"
        ".global op_redis_lua\n"
        "op_redis_lua:\n"
        ".incbin \"engine/io/redis.lua\"\n"
        ".byte 0\n"
        ".previous\n");
extern const char op_redis_lua[];

#define KEYLEN      256
#define STAGE_TTL   "3600000" /* ms a staged blob lives without its commit */
#define FETCH_BATCH 16        /* GETs in flight while fetching blobs */

struct op_redis {
    op_redis_conf_t conf;
    char host[256];
    char prefix[64];
    char meta[KEYLEN];
    char gen[64];
    redisContext *c;
};

/* --- argv lists ----------------------------------------------------------------- */

void op_redis_argv_init(op_redis_argv_t *a)
{
    memset(a, 0, sizeof(*a));
}

void op_redis_argv_clear(op_redis_argv_t *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    a->n = 0;
}

void op_redis_argv_dispose(op_redis_argv_t *a)
{
    op_redis_argv_clear(a);
    free(a->v);
    free(a->len);
    memset(a, 0, sizeof(*a));
}

void op_redis_argv_add(op_redis_argv_t *a, const char *s, size_t len)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = op_xrealloc(a->v, a->cap * sizeof(*a->v));
        a->len = op_xrealloc(a->len, a->cap * sizeof(*a->len));
    }
    char *copy = op_xmalloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = 0;
    a->v[a->n] = copy;
    a->len[a->n++] = len;
}

void op_redis_argv_str(op_redis_argv_t *a, const char *s)
{
    op_redis_argv_add(a, s, strlen(s));
}

void op_redis_argv_i64(op_redis_argv_t *a, int64_t v)
{
    char num[24];
    op_redis_argv_add(a, num, (size_t)snprintf(num, sizeof(num), "%" PRId64, v));
}

/* --- connection ------------------------------------------------------------------- */

int op_redis_create(op_redis_t **out, const op_redis_conf_t *conf)
{
    op_redis_t *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->conf = *conf;
    snprintf(r->host, sizeof(r->host), "%s", conf->host ? conf->host : "127.0.0.1");
    snprintf(r->prefix, sizeof(r->prefix), "%s", conf->prefix ? conf->prefix : "{op}");
    snprintf(r->meta, sizeof(r->meta), "%s:meta", r->prefix);
    r->conf.host = r->host;
    r->conf.prefix = r->prefix;
    if (r->conf.timeout_ms <= 0)
        r->conf.timeout_ms = 2000;
    *out = r;
    return 0;
}

static void drop(op_redis_t *r)
{
    if (r->c) {
        redisFree(r->c);
        r->c = NULL;
    }
}

void op_redis_destroy(op_redis_t *r)
{
    if (!r)
        return;
    drop(r);
    free(r);
}

const char *op_redis_generation(const op_redis_t *r)
{
    return r->gen;
}

void op_redis_set_generation(op_redis_t *r, const char *gen)
{
    snprintf(r->gen, sizeof(r->gen), "%s", gen);
}

const char *op_redis_prefix(const op_redis_t *r)
{
    return r->prefix;
}

int op_redis_connected(const op_redis_t *r)
{
    return r->c != NULL;
}

/* The connection failed: one line naming the server and what was being done. */
static int conn_error(op_redis_t *r, char *err, size_t errlen, const char *what)
{
    op_conf_error(err, errlen, "redis %s:%d: %s: %s", r->host, r->conf.port, what,
                  r->c && r->c->err ? r->c->errstr : "no connection");
    drop(r);
    return -ECONNRESET;
}

/* An error reply: classified, with Redis's own words. */
static int reply_error(op_redis_t *r, const redisReply *rep, char *err, size_t errlen,
                       const char *what)
{
    op_conf_error(err, errlen, "redis %s:%d: %s: %s", r->host, r->conf.port, what, rep->str);
    if (!strncmp(rep->str, "ORDERPULSE_NOSTATE", 18) ||
        !strncmp(rep->str, "ORDERPULSE_LAYOUT", 17) ||
        !strncmp(rep->str, "ORDERPULSE_GENERATION", 21) ||
        !strncmp(rep->str, "ORDERPULSE_DAMAGED", 18))
        return OP_REDIS_ESTATE;
    if (!strncmp(rep->str, "ORDERPULSE_BLOB", 15))
        return -ESTALE;
    return OP_REDIS_EREPLY;
}

static redisReply *command(op_redis_t *r, int argc, const char **argv, const size_t *lens)
{
    return redisCommandArgv(r->c, argc, argv, lens);
}

static int load_functions(op_redis_t *r, char *err, size_t errlen)
{
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", op_redis_lua};
    size_t lens[] = {8, 4, 7, strlen(op_redis_lua)};
    redisReply *rep = command(r, 4, argv, lens);
    if (!rep)
        return conn_error(r, err, errlen, "FUNCTION LOAD");
    int rc = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        op_conf_error(err, errlen,
                      "redis %s:%d: loading orderpulse's functions: %s (Redis 7 or later is "
                      "needed)",
                      r->host, r->conf.port, rep->str);
        rc = OP_REDIS_EREPLY;
    }
    freeReplyObject(rep);
    return rc;
}

static int ensure(op_redis_t *r, char *err, size_t errlen)
{
    if (r->c)
        return 0;
    struct timeval tv = {.tv_sec = r->conf.timeout_ms / 1000,
                         .tv_usec = (r->conf.timeout_ms % 1000) * 1000};
    r->c = redisConnectWithTimeout(r->host, r->conf.port, tv);
    if (!r->c || r->c->err)
        return conn_error(r, err, errlen, "connect");
    redisSetTimeout(r->c, tv);
    if (r->conf.password) {
        const char *argv[] = {"AUTH", r->conf.password};
        size_t lens[] = {4, strlen(r->conf.password)};
        redisReply *rep = command(r, 2, argv, lens);
        if (!rep)
            return conn_error(r, err, errlen, "AUTH");
        int ok = rep->type == REDIS_REPLY_STATUS;
        if (!ok)
            op_conf_error(err, errlen, "redis %s:%d: AUTH: %s", r->host, r->conf.port,
                          rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        freeReplyObject(rep);
        if (!ok) {
            drop(r);
            return -EACCES;
        }
    }
    int rc = load_functions(r, err, errlen);
    if (rc < 0)
        drop(r);
    return rc;
}

/* Runs one command on a live connection. Returns the reply (caller frees), or
 * NULL with rc set: a connection error, or an error reply. */
static redisReply *call(op_redis_t *r, int argc, const char **argv, const size_t *lens, int *rc,
                        char *err, size_t errlen, const char *what)
{
    *rc = ensure(r, err, errlen);
    if (*rc < 0)
        return NULL;
    redisReply *rep = command(r, argc, argv, lens);
    if (!rep) {
        *rc = conn_error(r, err, errlen, what);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        *rc = reply_error(r, rep, err, errlen, what);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/* FCALL name 1 <meta> args... with the args of a. */
static redisReply *fcall(op_redis_t *r, const char *name, const op_redis_argv_t *a, int *rc,
                         char *err, size_t errlen)
{
    size_t argc = 4 + a->n;
    const char **argv = op_xmalloc(argc * sizeof(*argv));
    size_t *lens = op_xmalloc(argc * sizeof(*lens));
    argv[0] = "FCALL";
    argv[1] = name;
    argv[2] = "1";
    argv[3] = r->meta;
    for (size_t i = 0; i < 4; i++)
        lens[i] = strlen(argv[i]);
    for (size_t i = 0; i < a->n; i++) {
        argv[4 + i] = a->v[i];
        lens[4 + i] = a->len[i];
    }
    redisReply *rep = call(r, (int)argc, argv, lens, rc, err, errlen, name);
    free(argv);
    free(lens);
    return rep;
}

static int64_t i64_of(const redisReply *e)
{
    if (!e)
        return 0;
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS)
        return strtoll(e->str, NULL, 10);
    return 0;
}

static int is_str(const redisReply *e, const char *s)
{
    return e && (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) &&
           strcmp(e->str, s) == 0;
}

static int protocol_error(op_redis_t *r, char *err, size_t errlen, const char *what)
{
    op_conf_error(err, errlen, "redis %s:%d: %s: unexpected reply", r->host, r->conf.port, what);
    return OP_REDIS_EREPLY;
}

/* --- opening the state ----------------------------------------------------------- */

/* Keys of this prefix that exist without <prefix>:meta: their names. */
static int leftovers(op_redis_t *r, char *found, size_t foundlen, char *err, size_t errlen)
{
    /* Layout 1's own keys first, so that its message wins. */
    static const char *const names[] = {"schema", "log", "parts", "totals", "users", "minutes"};
    found[0] = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char key[KEYLEN];
        snprintf(key, sizeof(key), "%s:%s", r->prefix, names[i]);
        const char *argv[] = {"EXISTS", key};
        size_t lens[] = {6, strlen(key)};
        int rc;
        redisReply *rep = call(r, 2, argv, lens, &rc, err, errlen, "EXISTS");
        if (!rep)
            return rc;
        if (rep->integer && !found[0])
            snprintf(found, foundlen, "%s", key);
        freeReplyObject(rep);
    }
    char pattern[KEYLEN];
    snprintf(pattern, sizeof(pattern), "%s:offset:*", r->prefix);
    const char *argv[] = {"SCAN", "0", "MATCH", pattern, "COUNT", "1000"};
    size_t lens[] = {4, 1, 5, strlen(pattern), 5, 4};
    int rc;
    redisReply *rep = call(r, 6, argv, lens, &rc, err, errlen, "SCAN");
    if (!rep)
        return rc;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[1]->elements &&
        !found[0])
        snprintf(found, foundlen, "%s", rep->element[1]->element[0]->str);
    freeReplyObject(rep);
    return 0;
}

int op_redis_open(op_redis_t *r, char *err, size_t errlen)
{
    int rc;
    const char *argv[] = {"EXISTS", r->meta};
    size_t lens[] = {6, strlen(r->meta)};
    redisReply *rep = call(r, 2, argv, lens, &rc, err, errlen, "EXISTS");
    if (!rep)
        return rc;
    int exists = rep->integer != 0;
    freeReplyObject(rep);
    if (!exists) {
        char found[KEYLEN];
        if ((rc = leftovers(r, found, sizeof(found), err, errlen)) < 0)
            return rc;
        if (found[0]) {
            char v1[KEYLEN];
            snprintf(v1, sizeof(v1), "%s:schema", r->prefix);
            if (!strcmp(found, v1) || strstr(found, ":offset:"))
                op_conf_error(err, errlen,
                              "redis %s:%d: %s holds orderpulse's layout 1, which this engine "
                              "no longer writes: run `orderpulse --redis-migrate` once (it "
                              "converts the keys), or use another --redis-prefix",
                              r->host, r->conf.port, r->prefix);
            else
                op_conf_error(err, errlen,
                              "redis %s:%d: %s exists but %s does not: the state's log and "
                              "offsets were evicted or deleted; starting from zero on top of "
                              "what is left would count again (check maxmemory-policy: it must "
                              "be noeviction)",
                              r->host, r->conf.port, found, r->meta);
            return OP_REDIS_ESTATE;
        }
    }
    unsigned char raw[12];
    char id[32];
    FILE *u = fopen("/dev/urandom", "rb");
    size_t got = u ? fread(raw, 1, sizeof(raw), u) : 0;
    if (u)
        fclose(u);
    if (got != sizeof(raw)) {
        op_conf_error(err, errlen, "cannot read /dev/urandom");
        return -EIO;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(id + 2 * i, 3, "%02x", raw[i]);
    op_redis_argv_t a;
    op_redis_argv_init(&a);
    op_redis_argv_str(&a, id);
    op_redis_argv_i64(&a, op_now_wall_ms());
    rep = fcall(r, "op_init", &a, &rc, err, errlen);
    op_redis_argv_dispose(&a);
    if (!rep)
        return rc;
    if (rep->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        return protocol_error(r, err, errlen, "op_init");
    }
    snprintf(r->gen, sizeof(r->gen), "%s", rep->str);
    freeReplyObject(rep);
    return 0;
}

/* --- claims, staging, commits ----------------------------------------------------- */

int op_redis_claim(op_redis_t *r, const char *writer, int n, const char *const *fields,
                   op_redis_part_t *out, char *err, size_t errlen)
{
    op_redis_argv_t a;
    op_redis_argv_init(&a);
    op_redis_argv_str(&a, r->gen);
    op_redis_argv_str(&a, writer);
    for (int i = 0; i < n; i++)
        op_redis_argv_str(&a, fields[i]);
    int rc;
    redisReply *rep = fcall(r, "op_claim", &a, &rc, err, errlen);
    op_redis_argv_dispose(&a);
    if (!rep)
        return rc;
    rc = 0;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != (size_t)n)
        rc = protocol_error(r, err, errlen, "op_claim");
    for (int i = 0; !rc && i < n; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 4) {
            rc = protocol_error(r, err, errlen, "op_claim");
            break;
        }
        out[i] = (op_redis_part_t){.epoch = i64_of(e->element[0]),
                                   .next_offset = i64_of(e->element[1]),
                                   .max_event_ms = i64_of(e->element[2]),
                                   .lost = i64_of(e->element[3])};
    }
    freeReplyObject(rep);
    return rc;
}

int op_redis_stage(op_redis_t *r, int n, const char *const *keys, const char *const *bufs,
                   const size_t *lens, char *err, size_t errlen)
{
    int rc = ensure(r, err, errlen);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i++) {
        const char *argv[] = {"SET", keys[i], bufs[i], "PX", STAGE_TTL};
        size_t l[] = {3, strlen(keys[i]), lens[i], 2, strlen(STAGE_TTL)};
        if (redisAppendCommandArgv(r->c, 5, argv, l) != REDIS_OK)
            return conn_error(r, err, errlen, "SET blob");
    }
    rc = 0;
    for (int i = 0; i < n; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(r->c, (void **)&rep) != REDIS_OK)
            return conn_error(r, err, errlen, "SET blob");
        if (rep->type == REDIS_REPLY_ERROR && !rc)
            rc = reply_error(r, rep, err, errlen, "SET blob");
        freeReplyObject(rep);
    }
    return rc;
}

int op_redis_commit(op_redis_t *r, const char *writer, uint64_t cseq, int64_t expect_pos,
                    int nparts, const op_redis_commit_part_t *parts, int nblobs,
                    const char *const *blobs, size_t bytes, const op_redis_argv_t *view,
                    op_redis_commit_result_t *res, char *err, size_t errlen)
{
    op_redis_argv_t a;
    op_redis_argv_init(&a);
    op_redis_argv_str(&a, r->gen);
    op_redis_argv_str(&a, writer);
    op_redis_argv_i64(&a, (int64_t)cseq);
    op_redis_argv_i64(&a, expect_pos);
    op_redis_argv_i64(&a, nparts);
    for (int i = 0; i < nparts; i++) {
        op_redis_argv_str(&a, parts[i].field);
        op_redis_argv_i64(&a, parts[i].epoch);
        op_redis_argv_i64(&a, parts[i].expect_next);
        op_redis_argv_i64(&a, parts[i].next);
        op_redis_argv_i64(&a, parts[i].max_event_ms);
        op_redis_argv_i64(&a, parts[i].lost);
    }
    op_redis_argv_i64(&a, nblobs);
    for (int i = 0; i < nblobs; i++)
        op_redis_argv_str(&a, blobs[i]);
    op_redis_argv_i64(&a, (int64_t)bytes);
    for (size_t i = 0; view && i < view->n; i++)
        op_redis_argv_add(&a, view->v[i], view->len[i]);
    int rc;
    redisReply *rep = fcall(r, "op_commit", &a, &rc, err, errlen);
    op_redis_argv_dispose(&a);
    if (!rep)
        return rc;
    memset(res, 0, sizeof(*res));
    rc = 0;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) {
        rc = protocol_error(r, err, errlen, "op_commit");
    } else if (is_str(rep->element[0], "OK")) {
        res->verdict = OP_REDIS_OK;
        res->pos = i64_of(rep->element[1]);
    } else if (is_str(rep->element[0], "BEHIND")) {
        res->verdict = OP_REDIS_BEHIND;
        res->pos = i64_of(rep->element[1]);
    } else if (is_str(rep->element[0], "BACK")) {
        res->verdict = OP_REDIS_BACK;
        res->pos = i64_of(rep->element[1]);
    } else if (is_str(rep->element[0], "FENCED") && rep->elements == 5) {
        res->verdict = OP_REDIS_FENCED;
        snprintf(res->fence_field, sizeof(res->fence_field), "%s", rep->element[1]->str);
        snprintf(res->fence_owner, sizeof(res->fence_owner), "%s", rep->element[2]->str);
        res->fence_epoch = i64_of(rep->element[3]);
        res->fence_next = i64_of(rep->element[4]);
    } else {
        rc = protocol_error(r, err, errlen, "op_commit");
    }
    freeReplyObject(rep);
    return rc;
}

/* --- reading the log ------------------------------------------------------------- */

static void entry_dispose(op_redis_entry_t *e)
{
    for (int i = 0; i < e->nblobs; i++)
        free(e->blobs[i]);
    free(e->blobs);
}

void op_redis_log_dispose(op_redis_log_t *log)
{
    for (int i = 0; i < log->n; i++)
        entry_dispose(&log->entries[i]);
    free(log->entries);
    memset(log, 0, sizeof(*log));
}

/* "D <writer> <cseq> <bytes> <blob>..." */
static int parse_entry(const char *s, op_redis_entry_t *e)
{
    memset(e, 0, sizeof(*e));
    char *copy = strdup(s), *save = NULL;
    if (!copy)
        return -ENOMEM;
    char *kind = strtok_r(copy, " ", &save), *writer = strtok_r(NULL, " ", &save);
    char *cseq = strtok_r(NULL, " ", &save), *bytes = strtok_r(NULL, " ", &save);
    int rc = 0;
    if (!kind || !writer || !cseq || !bytes || (kind[0] != 'D' && kind[0] != 'S')) {
        rc = -EINVAL;
        goto out;
    }
    e->kind = kind[0];
    snprintf(e->writer, sizeof(e->writer), "%s", writer);
    e->cseq = strtoull(cseq, NULL, 10);
    for (char *b; (b = strtok_r(NULL, " ", &save));) {
        e->blobs = op_xrealloc(e->blobs, (size_t)(e->nblobs + 1) * sizeof(*e->blobs));
        e->blobs[e->nblobs++] = strdup(b);
    }
out:
    free(copy);
    return rc;
}

int op_redis_read_log(op_redis_t *r, int64_t from, op_redis_log_t *log, char *err, size_t errlen)
{
    memset(log, 0, sizeof(*log));
    op_redis_argv_t a;
    op_redis_argv_init(&a);
    op_redis_argv_str(&a, r->gen);
    if (from < 0)
        op_redis_argv_str(&a, "load");
    else
        op_redis_argv_i64(&a, from);
    int rc;
    redisReply *rep = fcall(r, "op_log", &a, &rc, err, errlen);
    op_redis_argv_dispose(&a);
    if (!rep)
        return rc;
    rc = 0;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) {
        rc = protocol_error(r, err, errlen, "op_log");
    } else if (is_str(rep->element[0], "RELOAD")) {
        log->verdict = OP_REDIS_RELOAD;
        log->base = i64_of(rep->element[1]);
    } else if (is_str(rep->element[0], "BACK")) {
        log->verdict = OP_REDIS_BACK;
        log->end = i64_of(rep->element[1]);
    } else if (is_str(rep->element[0], "LOG") && rep->elements >= 3) {
        log->base = i64_of(rep->element[1]);
        log->end = i64_of(rep->element[2]);
        log->n = (int)(rep->elements - 3);
        log->from = log->end - log->n;
        log->entries = op_xcalloc((size_t)log->n + 1, sizeof(*log->entries));
        for (int i = 0; i < log->n && !rc; i++)
            if (parse_entry(rep->element[3 + i]->str, &log->entries[i]) < 0)
                rc = protocol_error(r, err, errlen, "op_log entry");
    } else {
        rc = protocol_error(r, err, errlen, "op_log");
    }
    freeReplyObject(rep);
    if (rc < 0)
        op_redis_log_dispose(log);
    return rc;
}

int op_redis_fetch(op_redis_t *r, int n, char *const *keys,
                   int (*fn)(void *arg, const char *buf, size_t len), void *arg, char *err,
                   size_t errlen)
{
    int rc = ensure(r, err, errlen);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i += FETCH_BATCH) {
        int m = n - i < FETCH_BATCH ? n - i : FETCH_BATCH;
        for (int k = 0; k < m; k++) {
            const char *argv[] = {"GET", keys[i + k]};
            size_t lens[] = {3, strlen(keys[i + k])};
            if (redisAppendCommandArgv(r->c, 2, argv, lens) != REDIS_OK)
                return conn_error(r, err, errlen, "GET blob");
        }
        rc = 0;
        for (int k = 0; k < m; k++) {
            redisReply *rep = NULL;
            if (redisGetReply(r->c, (void **)&rep) != REDIS_OK)
                return conn_error(r, err, errlen, "GET blob");
            if (!rc) {
                if (rep->type == REDIS_REPLY_STRING)
                    rc = fn(arg, rep->str, rep->len);
                else if (rep->type == REDIS_REPLY_NIL) {
                    op_conf_error(err, errlen, "redis: blob %s is gone (compacted?)", keys[i + k]);
                    rc = -ENOENT;
                } else
                    rc = reply_error(r, rep, err, errlen, "GET blob");
            }
            freeReplyObject(rep);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* --- compaction and garbage ------------------------------------------------------- */

int op_redis_compact(op_redis_t *r, const char *writer, int64_t upto, int nblobs,
                     const char *const *blobs, size_t bytes, char *err, size_t errlen)
{
    op_redis_argv_t a;
    op_redis_argv_init(&a);
    op_redis_argv_str(&a, r->gen);
    op_redis_argv_str(&a, writer);
    op_redis_argv_i64(&a, upto);
    op_redis_argv_i64(&a, nblobs);
    for (int i = 0; i < nblobs; i++)
        op_redis_argv_str(&a, blobs[i]);
    op_redis_argv_i64(&a, (int64_t)bytes);
    int rc;
    redisReply *rep = fcall(r, "op_compact", &a, &rc, err, errlen);
    op_redis_argv_dispose(&a);
    if (!rep)
        return rc;
    rc = rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 && is_str(rep->element[0], "OK");
    freeReplyObject(rep);
    return rc;
}

int op_redis_reader(op_redis_t *r, const char *writer, int64_t pos, char *err, size_t errlen)
{
    op_redis_argv_t a;
    op_redis_argv_init(&a);
    op_redis_argv_str(&a, r->gen);
    op_redis_argv_str(&a, writer);
    op_redis_argv_i64(&a, pos);
    int rc;
    redisReply *rep = fcall(r, "op_reader", &a, &rc, err, errlen);
    op_redis_argv_dispose(&a);
    if (!rep)
        return rc;
    freeReplyObject(rep);
    return 0;
}

int op_redis_collect_garbage(op_redis_t *r, int max, char *err, size_t errlen)
{
    char key[KEYLEN], count[16];
    snprintf(key, sizeof(key), "%s:garbage", r->prefix);
    snprintf(count, sizeof(count), "%d", max);
    const char *argv[] = {"LPOP", key, count};
    size_t lens[] = {4, strlen(key), strlen(count)};
    int rc;
    redisReply *rep = call(r, 3, argv, lens, &rc, err, errlen, "LPOP garbage");
    if (!rep)
        return rc;
    int n = 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements) {
        size_t argc = rep->elements + 1;
        const char **uargv = op_xmalloc(argc * sizeof(*uargv));
        size_t *ulens = op_xmalloc(argc * sizeof(*ulens));
        uargv[0] = "UNLINK";
        ulens[0] = 6;
        for (size_t i = 0; i < rep->elements; i++) {
            uargv[i + 1] = rep->element[i]->str;
            ulens[i + 1] = rep->element[i]->len;
        }
        redisReply *u = call(r, (int)argc, uargv, ulens, &rc, err, errlen, "UNLINK");
        free(uargv);
        free(ulens);
        if (!u) {
            freeReplyObject(rep);
            return rc;
        }
        freeReplyObject(u);
        n = (int)rep->elements;
    }
    freeReplyObject(rep);
    return n;
}

int op_redis_meta(op_redis_t *r, int64_t *snap_bytes, int64_t *delta_bytes, char *err,
                  size_t errlen)
{
    const char *argv[] = {"HMGET", r->meta, "snap_bytes", "delta_bytes"};
    size_t lens[] = {5, strlen(r->meta), 10, 11};
    int rc;
    redisReply *rep = call(r, 4, argv, lens, &rc, err, errlen, "HMGET meta");
    if (!rep)
        return rc;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        *snap_bytes = i64_of(rep->element[0]);
        *delta_bytes = i64_of(rep->element[1]);
    }
    freeReplyObject(rep);
    return 0;
}

int op_redis_file_chunks(op_redis_t *r, const char *fp, int proposed, int *chunks, char *err,
                         size_t errlen)
{
    char key[KEYLEN], num[16];
    snprintf(key, sizeof(key), "%s:files", r->prefix);
    snprintf(num, sizeof(num), "%d", proposed);
    const char *set[] = {"HSETNX", key, fp, num};
    size_t setl[] = {6, strlen(key), strlen(fp), strlen(num)};
    int rc;
    redisReply *rep = call(r, 4, set, setl, &rc, err, errlen, "HSETNX files");
    if (!rep)
        return rc;
    freeReplyObject(rep);
    const char *get[] = {"HGET", key, fp};
    size_t getl[] = {4, strlen(key), strlen(fp)};
    if (!(rep = call(r, 3, get, getl, &rc, err, errlen, "HGET files")))
        return rc;
    int64_t n = i64_of(rep);
    freeReplyObject(rep);
    if (n < 1 || n > 1024)
        return protocol_error(r, err, errlen, "HGET files");
    *chunks = (int)n;
    return 0;
}
