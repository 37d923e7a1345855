/* redis.c — one Redis connection and the protocol's calls (see redis.h).
 *
 * Every command goes through hiredis's Argv API (binary-safe, no format
 * parsing). The protocol's logic lives in engine/io/redis.lua, linked into
 * the binary below. Every new connection first reads the library back
 * (FUNCTION LIST WITHCODE, a read) and loads it with FUNCTION LOAD REPLACE
 * only when Redis holds other code or none, so that a Redis restarted
 * without persistence, or a replica promoted after a failover, always runs
 * the functions of this binary -- and a reconnection does not need a write:
 * while writes are paused (CLIENT PAUSE WRITE, a failover's hand-over) a
 * load would block past the command timeout, and the connection with it.
 */
#include "engine/io/redis.h"

#include <errno.h>
#include <hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conf.h"
#include "engine/io/redisconn.h"
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
    char prefix[64];
    char meta[KEYLEN], log[KEYLEN], parts[KEYLEN], view[KEYLEN], readers[KEYLEN], garbage[KEYLEN];
    char gen[64];
    op_redisconn_t *conn;
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

static int load_functions(void *arg, redisContext *c, const char *where, char *err, size_t errlen);

int op_redis_create(op_redis_t **out, const op_redis_conf_t *conf)
{
    op_redis_t *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->conf = *conf;
    snprintf(r->prefix, sizeof(r->prefix), "%s", conf->prefix ? conf->prefix : "{op}");
    r->conf.prefix = r->prefix;
    snprintf(r->meta, KEYLEN, "%s:meta", r->prefix);
    snprintf(r->log, KEYLEN, "%s:log", r->prefix);
    snprintf(r->parts, KEYLEN, "%s:parts", r->prefix);
    snprintf(r->view, KEYLEN, "%s:view", r->prefix);
    snprintf(r->readers, KEYLEN, "%s:readers", r->prefix);
    snprintf(r->garbage, KEYLEN, "%s:garbage", r->prefix);
    int rc = op_redisconn_create(&r->conn, &r->conf, r->meta, load_functions, r);
    if (rc < 0) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void op_redis_destroy(op_redis_t *r)
{
    if (!r)
        return;
    op_redisconn_destroy(r->conn);
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
    return op_redisconn_connected(r->conn);
}

uint64_t op_redis_connections(const op_redis_t *r)
{
    return op_redisconn_serial(r->conn);
}

/* An error reply: classified, with Redis's own words. */
static int reply_error(op_redis_t *r, const redisReply *rep, char *err, size_t errlen,
                       const char *what)
{
    op_conf_error(err, errlen, "redis %s: %s: %s", op_redisconn_where(r->conn), what, rep->str);
    if (!strncmp(rep->str, "ORDERPULSE_NOSTATE", 18) ||
        !strncmp(rep->str, "ORDERPULSE_LAYOUT", 17) ||
        !strncmp(rep->str, "ORDERPULSE_GENERATION", 21) ||
        !strncmp(rep->str, "ORDERPULSE_DAMAGED", 18))
        return OP_REDIS_ESTATE;
    if (!strncmp(rep->str, "ORDERPULSE_BLOB", 15))
        return -ESTALE;
    return OP_REDIS_EREPLY;
}

/* The connection hook (redisconn.h): every node this engine talks to runs
 * this binary's functions. */
/* The library's name, from the first line of redis.lua ("#!lua name=NAME"). */
static size_t library_name(const char **name)
{
    const char *p = strstr(op_redis_lua, "name=");
    *name = p ? p + 5 : "";
    return strcspn(*name, " \n");
}

/* 1 if Redis holds exactly this binary's library, 0 if not (or it cannot
 * tell: the load that follows reports what is wrong), -ECONNRESET. */
static int functions_current(redisContext *c, const char *where, char *err, size_t errlen)
{
    const char *name;
    size_t len = library_name(&name);
    const char *argv[] = {"FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", name};
    size_t lens[] = {8, 4, 8, 11, len};
    redisReply *rep = redisCommandArgv(c, 5, argv, lens);
    if (!rep) {
        op_conf_error(err, errlen, "redis %s: FUNCTION LIST: %s", where, c->errstr);
        return -ECONNRESET;
    }
    int same = 0;
    /* An array of libraries, each a flat array of field names and values;
     * LIBRARYNAME matches by pattern, so the name is compared too. */
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const redisReply *lib = rep->element[i];
        const redisReply *lname = NULL, *code = NULL;
        for (size_t f = 0; lib->type == REDIS_REPLY_ARRAY && f + 1 < lib->elements; f += 2) {
            const redisReply *k = lib->element[f];
            if (k->type != REDIS_REPLY_STRING && k->type != REDIS_REPLY_STATUS)
                continue;
            if (!strcmp(k->str, "library_name"))
                lname = lib->element[f + 1];
            else if (!strcmp(k->str, "library_code"))
                code = lib->element[f + 1];
        }
        if (lname && code && lname->type == REDIS_REPLY_STRING && lname->len == len &&
            !memcmp(lname->str, name, len) && code->type == REDIS_REPLY_STRING &&
            code->len == strlen(op_redis_lua) && !memcmp(code->str, op_redis_lua, code->len))
            same = 1;
    }
    freeReplyObject(rep);
    return same;
}

static int load_functions(void *arg, redisContext *c, const char *where, char *err, size_t errlen)
{
    (void)arg;
    int current = functions_current(c, where, err, errlen);
    if (current != 0)
        return current < 0 ? current : 0;
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", op_redis_lua};
    size_t lens[] = {8, 4, 7, strlen(op_redis_lua)};
    redisReply *rep = redisCommandArgv(c, 4, argv, lens);
    if (!rep) {
        op_conf_error(err, errlen, "redis %s: FUNCTION LOAD: %s", where, c->errstr);
        return -ECONNRESET;
    }
    int rc = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        if (!strncmp(rep->str, "NOAUTH", 6))
            op_conf_error(err, errlen, "redis %s: AUTH: %s (--redis-password)", where, rep->str);
        else
            op_conf_error(err, errlen,
                          "redis %s: loading orderpulse's functions: %s (Redis 7 or later is "
                          "needed)",
                          where, rep->str);
        rc = strncmp(rep->str, "NOAUTH", 6) ? OP_REDIS_EREPLY : -EACCES;
    }
    freeReplyObject(rep);
    return rc;
}

/* Runs one command (redirections followed). Returns the reply (caller
 * frees), or NULL with rc set: a connection error, or an error reply. */
static redisReply *call(op_redis_t *r, int argc, const char **argv, const size_t *lens, int *rc,
                        char *err, size_t errlen, const char *what)
{
    redisReply *rep = op_redisconn_call(r->conn, argc, argv, lens, rc, err, errlen, what);
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        *rc = reply_error(r, rep, err, errlen, what);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/* FCALL name <numkeys> <meta> <keys...> <args...>: keys are the other keys
 * the call touches, declared so that a Cluster refuses the call whole while
 * the slot migrates (redis.lua). */
static redisReply *fcall(op_redis_t *r, const char *name, const op_redis_argv_t *keys,
                         const op_redis_argv_t *a, int *rc, char *err, size_t errlen)
{
    size_t argc = 4 + keys->n + a->n;
    const char **argv = op_xmalloc(argc * sizeof(*argv));
    size_t *lens = op_xmalloc(argc * sizeof(*lens));
    char numkeys[24];
    snprintf(numkeys, sizeof(numkeys), "%zu", 1 + keys->n);
    argv[0] = "FCALL";
    argv[1] = name;
    argv[2] = numkeys;
    argv[3] = r->meta;
    for (size_t i = 0; i < 4; i++)
        lens[i] = strlen(argv[i]);
    for (size_t i = 0; i < keys->n; i++) {
        argv[4 + i] = keys->v[i];
        lens[4 + i] = keys->len[i];
    }
    for (size_t i = 0; i < a->n; i++) {
        argv[4 + keys->n + i] = a->v[i];
        lens[4 + keys->n + i] = a->len[i];
    }
    redisReply *rep = call(r, (int)argc, argv, lens, rc, err, errlen, name);
    free(argv);
    free(lens);
    return rep;
}

/* The keys every function reads (its integrity check), then extra ones. */
static void keys_of(op_redis_t *r, op_redis_argv_t *k, const char *const *extra, int n)
{
    op_redis_argv_init(k);
    op_redis_argv_str(k, r->log);
    op_redis_argv_str(k, r->parts);
    for (int i = 0; i < n; i++)
        op_redis_argv_str(k, extra[i]);
}

/* Adds the keys named in a commit's view operations (redis.lua view_walk). */
static void view_keys(const op_redis_argv_t *view, op_redis_argv_t *k)
{
    for (size_t i = 0; view && i + 1 < view->n;) {
        char op = view->v[i][0];
        op_redis_argv_add(k, view->v[i + 1], view->len[i + 1]);
        if (op == 'X') {
            i += 2;
        } else if (op == 'E' || op == 'C') {
            i += 3;
        } else {
            size_t n = i + 2 < view->n ? strtoull(view->v[i + 2], NULL, 10) : 0;
            i += 3 + n * (op == 'D' ? 1 : 2);
        }
    }
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
    op_conf_error(err, errlen, "redis %s: %s: unexpected reply", op_redisconn_where(r->conn), what);
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
    if (op_redisconn_cluster(r->conn) &&
        op_redisconn_slot(r->meta, strlen(r->meta)) != op_redisconn_slot(r->log, strlen(r->log))) {
        op_conf_error(err, errlen,
                      "redis %s: --redis-prefix '%s' is no hash tag: in a Redis Cluster its keys "
                      "would fall in many slots, and every commit is one atomic call on one node "
                      "(use a prefix in braces, like {op})",
                      op_redisconn_where(r->conn), r->prefix);
        return OP_REDIS_ESTATE;
    }
    if (!exists) {
        char found[KEYLEN];
        if ((rc = leftovers(r, found, sizeof(found), err, errlen)) < 0)
            return rc;
        if (found[0]) {
            char v1[KEYLEN];
            snprintf(v1, sizeof(v1), "%s:schema", r->prefix);
            if (!strcmp(found, v1) || strstr(found, ":offset:"))
                op_conf_error(err, errlen,
                              "redis %s: %s holds orderpulse's layout 1, which this engine "
                              "no longer writes: run `orderpulse --redis-migrate` once (it "
                              "converts the keys), or use another --redis-prefix",
                              op_redisconn_where(r->conn), r->prefix);
            else
                op_conf_error(err, errlen,
                              "redis %s: %s exists but %s does not: the state's log and "
                              "offsets were evicted or deleted; starting from zero on top of "
                              "what is left would count again (check maxmemory-policy: it must "
                              "be noeviction)",
                              op_redisconn_where(r->conn), found, r->meta);
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
    op_redis_argv_t k;
    keys_of(r, &k, NULL, 0);
    rep = fcall(r, "op_init", &k, &a, &rc, err, errlen);
    op_redis_argv_dispose(&k);
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
    op_redis_argv_t k;
    keys_of(r, &k, NULL, 0);
    redisReply *rep = fcall(r, "op_claim", &k, &a, &rc, err, errlen);
    op_redis_argv_dispose(&k);
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

static int stage_reply(void *arg, int i, const redisReply *rep, char *err, size_t errlen)
{
    (void)i;
    if (rep->type == REDIS_REPLY_ERROR)
        return reply_error(arg, rep, err, errlen, "SET blob");
    return 0;
}

int op_redis_stage(op_redis_t *r, int n, const char *const *keys, const char *const *bufs,
                   const size_t *lens, char *err, size_t errlen)
{
    const char **argv = op_xmalloc((size_t)n * 5 * sizeof(*argv));
    size_t *l = op_xmalloc((size_t)n * 5 * sizeof(*l));
    for (int i = 0; i < n; i++) {
        const char *one[] = {"SET", keys[i], bufs[i], "PX", STAGE_TTL};
        size_t onel[] = {3, strlen(keys[i]), lens[i], 2, strlen(STAGE_TTL)};
        memcpy(argv + i * 5, one, sizeof(one));
        memcpy(l + i * 5, onel, sizeof(onel));
    }
    int rc = op_redisconn_pipeline(r->conn, n, 5, argv, l, stage_reply, r, err, errlen, "SET blob");
    free(argv);
    free(l);
    return rc;
}

int op_redis_commit(op_redis_t *r, const char *writer, uint64_t cseq, int64_t expect_pos,
                    const char *expect_last, int nparts, const op_redis_commit_part_t *parts,
                    int nblobs, const char *const *blobs, size_t bytes, const op_redis_argv_t *view,
                    op_redis_commit_result_t *res, char *err, size_t errlen)
{
    op_redis_argv_t a, k;
    op_redis_argv_init(&a);
    op_redis_argv_str(&a, r->gen);
    op_redis_argv_str(&a, writer);
    op_redis_argv_i64(&a, (int64_t)cseq);
    op_redis_argv_i64(&a, expect_pos);
    op_redis_argv_str(&a, expect_last ? expect_last : "");
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
    const char *extra[] = {r->view, r->readers};
    keys_of(r, &k, extra, 2);
    for (int i = 0; i < nblobs; i++)
        op_redis_argv_str(&k, blobs[i]);
    view_keys(view, &k);
    int rc;
    redisReply *rep = fcall(r, "op_commit", &k, &a, &rc, err, errlen);
    op_redis_argv_dispose(&k);
    op_redis_argv_dispose(&a);
    if (!rep)
        return rc;
    memset(res, 0, sizeof(*res));
    rc = 0;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) {
        rc = protocol_error(r, err, errlen, "op_commit");
    } else if (is_str(rep->element[0], "OK") && rep->elements == 3 &&
               rep->element[2]->type == REDIS_REPLY_STRING) {
        res->verdict = OP_REDIS_OK;
        res->pos = i64_of(rep->element[1]);
        snprintf(res->last, sizeof(res->last), "%s", rep->element[2]->str);
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

int op_redis_read_log(op_redis_t *r, int64_t from, const char *from_last, op_redis_log_t *log,
                      char *err, size_t errlen)
{
    memset(log, 0, sizeof(*log));
    op_redis_argv_t a, k;
    op_redis_argv_init(&a);
    op_redis_argv_str(&a, r->gen);
    if (from < 0) {
        op_redis_argv_str(&a, "load");
    } else {
        op_redis_argv_i64(&a, from);
        if (from_last)
            op_redis_argv_str(&a, from_last);
    }
    keys_of(r, &k, NULL, 0);
    int rc;
    redisReply *rep = fcall(r, "op_log", &k, &a, &rc, err, errlen);
    op_redis_argv_dispose(&k);
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
    } else if (is_str(rep->element[0], "LOG") && rep->elements >= 4 &&
               rep->element[3]->type == REDIS_REPLY_STRING) {
        log->base = i64_of(rep->element[1]);
        log->end = i64_of(rep->element[2]);
        snprintf(log->last, sizeof(log->last), "%s", rep->element[3]->str);
        log->n = (int)(rep->elements - 4);
        log->from = log->end - log->n;
        log->entries = op_xcalloc((size_t)log->n + 1, sizeof(*log->entries));
        for (int i = 0; i < log->n && !rc; i++)
            if (parse_entry(rep->element[4 + i]->str, &log->entries[i]) < 0)
                rc = protocol_error(r, err, errlen, "op_log entry");
    } else {
        rc = protocol_error(r, err, errlen, "op_log");
    }
    freeReplyObject(rep);
    if (rc < 0)
        op_redis_log_dispose(log);
    return rc;
}

typedef struct fetch_ctx {
    op_redis_t *r;
    char *const *keys;
    int (*fn)(void *arg, const char *buf, size_t len);
    void *arg;
} fetch_ctx_t;

static int fetch_reply(void *arg, int i, const redisReply *rep, char *err, size_t errlen)
{
    fetch_ctx_t *f = arg;
    if (rep->type == REDIS_REPLY_STRING)
        return f->fn(f->arg, rep->str, rep->len);
    if (rep->type == REDIS_REPLY_NIL) {
        op_conf_error(err, errlen, "redis: blob %s is gone (compacted?)", f->keys[i]);
        return -ENOENT;
    }
    return reply_error(f->r, rep, err, errlen, "GET blob");
}

int op_redis_fetch(op_redis_t *r, int n, char *const *keys,
                   int (*fn)(void *arg, const char *buf, size_t len), void *arg, char *err,
                   size_t errlen)
{
    const char *argv[FETCH_BATCH * 2];
    size_t lens[FETCH_BATCH * 2];
    for (int i = 0; i < n; i += FETCH_BATCH) {
        int m = n - i < FETCH_BATCH ? n - i : FETCH_BATCH;
        for (int k = 0; k < m; k++) {
            argv[2 * k] = "GET";
            lens[2 * k] = 3;
            argv[2 * k + 1] = keys[i + k];
            lens[2 * k + 1] = strlen(keys[i + k]);
        }
        fetch_ctx_t f = {r, keys + i, fn, arg};
        int rc = op_redisconn_pipeline(r->conn, m, 2, argv, lens, fetch_reply, &f, err, errlen,
                                       "GET blob");
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* --- compaction and garbage ------------------------------------------------------- */

int op_redis_compact(op_redis_t *r, const char *writer, uint64_t cseq, int64_t upto, int nblobs,
                     const char *const *blobs, size_t bytes, char *err, size_t errlen)
{
    op_redis_argv_t a, k;
    op_redis_argv_init(&a);
    op_redis_argv_str(&a, r->gen);
    op_redis_argv_str(&a, writer);
    op_redis_argv_i64(&a, (int64_t)cseq);
    op_redis_argv_i64(&a, upto);
    op_redis_argv_i64(&a, nblobs);
    for (int i = 0; i < nblobs; i++)
        op_redis_argv_str(&a, blobs[i]);
    op_redis_argv_i64(&a, (int64_t)bytes);
    int rc;
    const char *extra[] = {r->readers, r->garbage};
    keys_of(r, &k, extra, 2);
    for (int i = 0; i < nblobs; i++)
        op_redis_argv_str(&k, blobs[i]);
    redisReply *rep = fcall(r, "op_compact", &k, &a, &rc, err, errlen);
    op_redis_argv_dispose(&k);
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
    op_redis_argv_t k;
    const char *extra[] = {r->readers};
    keys_of(r, &k, extra, 1);
    redisReply *rep = fcall(r, "op_reader", &k, &a, &rc, err, errlen);
    op_redis_argv_dispose(&k);
    op_redis_argv_dispose(&a);
    if (!rep)
        return rc;
    freeReplyObject(rep);
    return 0;
}

int op_redis_collect_garbage(op_redis_t *r, int max, char *err, size_t errlen)
{
    char count[16];
    snprintf(count, sizeof(count), "%d", max);
    const char *argv[] = {"LPOP", r->garbage, count};
    size_t lens[] = {4, strlen(r->garbage), strlen(count)};
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

int op_redis_wait(op_redis_t *r, int replicas, int timeout_ms, char *err, size_t errlen)
{
    char n[16], ms[16];
    snprintf(n, sizeof(n), "%d", replicas);
    snprintf(ms, sizeof(ms), "%d", timeout_ms);
    const char *argv[] = {"WAIT", n, ms};
    size_t lens[] = {4, strlen(n), strlen(ms)};
    int rc;
    redisReply *rep = call(r, 3, argv, lens, &rc, err, errlen, "WAIT");
    if (!rep)
        return rc;
    int got = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
    freeReplyObject(rep);
    if (got < 0)
        return protocol_error(r, err, errlen, "WAIT");
    if (got < replicas)
        op_conf_error(err, errlen,
                      "redis %s: WAIT: %d of the %d replicas (--redis-min-replicas) have the "
                      "last commit after %d ms",
                      op_redisconn_where(r->conn), got, replicas, timeout_ms);
    return got;
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
