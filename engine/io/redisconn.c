/* redisconn.c — discovery and routing to the primary holding orderpulse's
 * slot: standalone, Redis Cluster, or through Sentinel (see redisconn.h).
 *
 * Why by hand: hiredis 0.14 knows neither Cluster nor Sentinel, and the
 * protocol needs one primary only (one hash tag), so the whole of a cluster
 * client comes down to "which node owns this one slot", three redirection
 * replies and a second connection while a slot migrates (ASK).
 */
#include "engine/io/redisconn.h"

#include <errno.h>
#include <sds.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "engine/conf.h"
#include "engine/util.h"

#define HOSTLEN       256
#define MAX_SEEDS     16
#define MAX_NODES     64
#define MAX_REDIRECTS 8
#define TRYAGAIN_MS   50 /* between two attempts while a slot migrates */
#define TRYAGAIN_MAX  20 /* then the caller hears of it (and retries later) */
#define CLUSTER_SLOTS 16384
#define DIRECT_MIN    (256 << 10) /* a pipeline this large skips hiredis's buffer */
#define DIRECT_IOV    1024        /* iovecs per sendmsg (IOV_MAX) */

typedef struct addr {
    char host[HOSTLEN];
    int port;
} addr_t;

enum { MODE_UNKNOWN, MODE_STANDALONE, MODE_CLUSTER, MODE_SENTINEL };

struct op_redisconn {
    op_redis_conf_t conf;
    char password[256], sentinel_password[256], master[256];
    int mode;
    int slot;
    addr_t seeds[MAX_SEEDS]; /* the --redis address, or the Sentinels */
    int nseeds, good_seed;
    addr_t nodes[MAX_NODES]; /* Cluster nodes learned from CLUSTER SLOTS */
    int nnodes;
    addr_t target; /* the primary to dial; port 0: look for it */
    redisContext *c;
    addr_t at;         /* where c is connected */
    redisContext *ask; /* to the node importing the slot (ASK), or NULL */
    addr_t ask_at;
    uint64_t serial;
    char where[HOSTLEN + 8];
    op_redisconn_hook_cb hook;
    void *hook_arg;
};

/* --- parsing ----------------------------------------------------------------------- */

static int parse_addr(const char *s, size_t len, addr_t *a)
{
    const char *colon = memrchr(s, ':', len);
    size_t hostlen = colon ? (size_t)(colon - s) : len;
    if (hostlen == 0 || hostlen >= HOSTLEN)
        return -EINVAL;
    memcpy(a->host, s, hostlen);
    a->host[hostlen] = 0;
    a->port = 6379;
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (end != s + len || colon + 1 == end || p < 1 || p > 65535)
            return -EINVAL;
        a->port = (int)p;
    }
    return 0;
}

int op_redisconn_parse(const char *spec, char *buf, size_t buflen, op_redis_conf_t *conf, char *err,
                       size_t errlen)
{
    static const char scheme[] = "sentinel://";
    conf->host = conf->sentinels = conf->master = NULL;
    if (strncmp(spec, scheme, sizeof(scheme) - 1) != 0) {
        addr_t a;
        if (parse_addr(spec, strlen(spec), &a) < 0 || strlen(spec) >= buflen)
            return op_conf_error(err, errlen,
                                 "--redis: expected HOST:PORT, sentinel://HOST:PORT[,HOST:PORT...]/"
                                 "MASTER or none, got '%s'",
                                 spec);
        snprintf(buf, buflen, "%s", a.host);
        conf->host = buf;
        conf->port = a.port;
        return 0;
    }
    const char *list = spec + sizeof(scheme) - 1, *slash = strchr(list, '/');
    if (!slash || slash == list || !slash[1] || strchr(slash + 1, '/') || strlen(list) >= buflen)
        return op_conf_error(err, errlen,
                             "--redis: expected sentinel://HOST:PORT[,HOST:PORT...]/MASTER, got "
                             "'%s'",
                             spec);
    int n = 0;
    for (const char *p = list, *end = list; end < slash; p = end + 1, n++) {
        const char *comma = memchr(p, ',', (size_t)(slash - p));
        end = comma ? comma : slash;
        addr_t a;
        if (n == MAX_SEEDS || parse_addr(p, (size_t)(end - p), &a) < 0)
            return op_conf_error(err, errlen,
                                 "--redis: '%.*s' in '%s' is not a Sentinel's HOST:PORT (at most "
                                 "%d of them)",
                                 (int)(end - p), p, spec, MAX_SEEDS);
    }
    memcpy(buf, list, (size_t)(slash - list));
    buf[slash - list] = 0;
    snprintf(buf + (slash - list) + 1, buflen - (size_t)(slash - list) - 1, "%s", slash + 1);
    conf->sentinels = buf;
    conf->master = buf + (slash - list) + 1;
    conf->port = 0;
    return 0;
}

/* --- slots ----------------------------------------------------------------------- */

static uint16_t crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

int op_redisconn_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        const char *close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) % CLUSTER_SLOTS;
    }
    return crc16(key, len) % CLUSTER_SLOTS;
}

/* --- life -------------------------------------------------------------------------- */

int op_redisconn_create(op_redisconn_t **out, const op_redis_conf_t *conf, const char *key,
                        op_redisconn_hook_cb hook, void *hook_arg)
{
    op_redisconn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->conf = *conf;
    if (c->conf.timeout_ms <= 0)
        c->conf.timeout_ms = 2000;
    snprintf(c->password, sizeof(c->password), "%s", conf->password ? conf->password : "");
    snprintf(c->sentinel_password, sizeof(c->sentinel_password), "%s",
             conf->sentinel_password ? conf->sentinel_password : "");
    snprintf(c->master, sizeof(c->master), "%s", conf->master ? conf->master : "");
    c->slot = op_redisconn_slot(key, strlen(key));
    c->hook = hook;
    c->hook_arg = hook_arg;
    if (conf->sentinels) {
        c->mode = MODE_SENTINEL;
        const char *p = conf->sentinels;
        while (*p && c->nseeds < MAX_SEEDS) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (parse_addr(p, len, &c->seeds[c->nseeds]) == 0)
                c->nseeds++;
            p += len + (comma ? 1 : 0);
        }
    } else {
        c->mode = MODE_UNKNOWN;
        snprintf(c->seeds[0].host, HOSTLEN, "%s", conf->host ? conf->host : "127.0.0.1");
        c->seeds[0].port = conf->port ? conf->port : 6379;
        c->nseeds = 1;
        c->target = c->seeds[0];
    }
    snprintf(c->where, sizeof(c->where), "%s:%d", c->seeds[0].host, c->seeds[0].port);
    *out = c;
    return 0;
}

static void close_ctx(redisContext **ctx)
{
    if (*ctx) {
        redisFree(*ctx);
        *ctx = NULL;
    }
}

void op_redisconn_drop(op_redisconn_t *c)
{
    close_ctx(&c->c);
    close_ctx(&c->ask);
    /* Standalone: the same address again. Otherwise: ask who the primary is. */
    if (c->mode != MODE_STANDALONE && c->mode != MODE_UNKNOWN)
        c->target.port = 0;
}

void op_redisconn_destroy(op_redisconn_t *c)
{
    if (!c)
        return;
    close_ctx(&c->c);
    close_ctx(&c->ask);
    free(c);
}

const char *op_redisconn_where(const op_redisconn_t *c)
{
    return c->where;
}

uint64_t op_redisconn_serial(const op_redisconn_t *c)
{
    return c->serial;
}

int op_redisconn_connected(const op_redisconn_t *c)
{
    return c->c != NULL;
}

int op_redisconn_cluster(const op_redisconn_t *c)
{
    return c->mode == MODE_CLUSTER;
}

redisContext *op_redisconn_context(op_redisconn_t *c, char *err, size_t errlen)
{
    return op_redisconn_ensure(c, err, errlen) < 0 ? NULL : c->c;
}

static int same(const addr_t *a, const addr_t *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* --- connections ------------------------------------------------------------------- */

static struct timeval tv_of(int ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* Connects to a and authenticates with password (may be ""). */
static int dial(op_redisconn_t *c, const addr_t *a, const char *password, const char *kind,
                redisContext **out, char *err, size_t errlen)
{
    struct timeval tv = tv_of(c->conf.timeout_ms);
    redisContext *ctx = redisConnectWithTimeout(a->host, a->port, tv);
    if (!ctx || ctx->err) {
        op_conf_error(err, errlen, "redis %s%s:%d: connect: %s", kind, a->host, a->port,
                      ctx ? ctx->errstr : "out of memory");
        if (ctx)
            redisFree(ctx);
        return -ECONNRESET;
    }
    redisSetTimeout(ctx, tv);
    if (password[0]) {
        const char *argv[] = {"AUTH", password};
        size_t lens[] = {4, strlen(password)};
        redisReply *rep = redisCommandArgv(ctx, 2, argv, lens);
        int ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (!ok)
            op_conf_error(err, errlen, "redis %s%s:%d: AUTH: %s", kind, a->host, a->port,
                          !rep                             ? ctx->errstr
                          : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                           : "unexpected reply");
        int rc = ok ? 0 : rep ? -EACCES : -ECONNRESET;
        if (rep)
            freeReplyObject(rep);
        if (rc < 0) {
            redisFree(ctx);
            return rc;
        }
    }
    *out = ctx;
    return 0;
}

static void remember_node(op_redisconn_t *c, const addr_t *a)
{
    for (int i = 0; i < c->nnodes; i++)
        if (same(&c->nodes[i], a))
            return;
    if (c->nnodes < MAX_NODES)
        c->nodes[c->nnodes++] = *a;
}

/* A node's address in CLUSTER SLOTS: its IP, or the one we asked when the
 * node does not know its own ("" or "?"). */
static int slots_addr(const redisReply *node, const addr_t *asked, addr_t *out)
{
    if (node->type != REDIS_REPLY_ARRAY || node->elements < 2 ||
        node->element[0]->type != REDIS_REPLY_STRING ||
        node->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    const char *ip = node->element[0]->str;
    snprintf(out->host, HOSTLEN, "%s", ip[0] && strcmp(ip, "?") ? ip : asked->host);
    out->port = (int)node->element[1]->integer;
    return 0;
}

/* An error reply asking for a password nobody gave: one line saying so. */
static int noauth(const redisReply *rep, const addr_t *a, char *err, size_t errlen)
{
    if (rep->type != REDIS_REPLY_ERROR || strncmp(rep->str, "NOAUTH", 6))
        return 0;
    op_conf_error(err, errlen, "redis %s:%d: AUTH: %s (--redis-password)", a->host, a->port,
                  rep->str);
    return -EACCES;
}

/* Asks the node behind ctx (at a) for the primary of our slot. Returns 1
 * with *owner set, 0 when the node is no cluster node, or an error. */
static int ask_slots(op_redisconn_t *c, redisContext *ctx, const addr_t *a, addr_t *owner,
                     char *err, size_t errlen)
{
    redisReply *rep = redisCommand(ctx, "CLUSTER SLOTS");
    if (!rep) {
        op_conf_error(err, errlen, "redis %s:%d: CLUSTER SLOTS: %s", a->host, a->port, ctx->errstr);
        return -ECONNRESET;
    }
    int rc = noauth(rep, a, err, errlen);
    if (rc < 0) {
        freeReplyObject(rep);
        return rc;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        if (strstr(rep->str, "cluster support disabled")) {
            rc = 0;
        } else {
            op_conf_error(err, errlen, "redis %s:%d: CLUSTER SLOTS: %s", a->host, a->port,
                          rep->str);
            rc = OP_REDIS_EREPLY;
        }
        freeReplyObject(rep);
        return rc;
    }
    rc = OP_REDIS_EREPLY;
    op_conf_error(err, errlen,
                  "redis cluster (asked %s:%d): no primary serves slot %d now (a failover in "
                  "progress?)",
                  a->host, a->port, c->slot);
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const redisReply *r = rep->element[i];
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 3)
            continue;
        for (size_t k = 2; k < r->elements; k++) {
            addr_t n;
            if (slots_addr(r->element[k], a, &n) == 0)
                remember_node(c, &n);
        }
        if (c->slot >= r->element[0]->integer && c->slot <= r->element[1]->integer &&
            slots_addr(r->element[2], a, owner) == 0)
            rc = 1;
    }
    freeReplyObject(rep);
    return rc;
}

/* Sentinel: where the primary named c->master is now. */
static int ask_sentinels(op_redisconn_t *c, char *err, size_t errlen)
{
    int rc = -ECONNRESET;
    for (int k = 0; k < c->nseeds; k++) {
        int i = (c->good_seed + k) % c->nseeds;
        const addr_t *s = &c->seeds[i];
        redisContext *ctx = NULL;
        int r = dial(c, s, c->sentinel_password, "sentinel ", &ctx, err, errlen);
        if (r == -EACCES)
            return r; /* a wrong password is not a reason to try the next */
        if (r < 0) {
            rc = r;
            continue;
        }
        const char *argv[] = {"SENTINEL", "get-master-addr-by-name", c->master};
        size_t lens[] = {8, 23, strlen(c->master)};
        redisReply *rep = redisCommandArgv(ctx, 3, argv, lens);
        rc = rep ? OP_REDIS_EREPLY : -ECONNRESET;
        if (!rep)
            op_conf_error(err, errlen, "redis sentinel %s:%d: %s", s->host, s->port, ctx->errstr);
        else if (rep->type == REDIS_REPLY_ERROR)
            op_conf_error(err, errlen, "redis sentinel %s:%d: %s", s->host, s->port, rep->str);
        else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2)
            op_conf_error(err, errlen, "redis sentinel %s:%d: knows no primary named '%s'", s->host,
                          s->port, c->master);
        else {
            snprintf(c->target.host, HOSTLEN, "%s", rep->element[0]->str);
            c->target.port = atoi(rep->element[1]->str);
            c->good_seed = i;
            rc = 0;
        }
        if (rep)
            freeReplyObject(rep);
        redisFree(ctx);
        if (rc == 0)
            return 0;
    }
    return rc;
}

/* Standalone or Cluster: asks the known nodes (the last primary first, the
 * --redis address last) who owns the slot. May leave c->c connected to it. */
static int find_owner(op_redisconn_t *c, char *err, size_t errlen)
{
    addr_t cand[MAX_NODES + 2];
    int n = 0;
    if (c->target.port)
        cand[n++] = c->target;
    for (int i = 0; i < c->nnodes; i++)
        cand[n++] = c->nodes[i];
    cand[n++] = c->seeds[0];
    int rc = -ECONNRESET;
    for (int i = 0; i < n; i++) {
        if (i > 0 && same(&cand[i], &cand[0]) && c->target.port)
            continue;
        redisContext *ctx = NULL;
        addr_t owner;
        rc = dial(c, &cand[i], c->password, "", &ctx, err, errlen);
        if (rc == -EACCES)
            return rc;
        if (rc < 0)
            continue;
        rc = ask_slots(c, ctx, &cand[i], &owner, err, errlen);
        if (rc == 0) { /* not a cluster: the node itself */
            c->mode = MODE_STANDALONE;
            c->target = cand[i];
            c->c = ctx;
            c->at = cand[i];
            return 0;
        }
        if (rc == 1) {
            c->mode = MODE_CLUSTER;
            c->target = owner;
            if (same(&owner, &cand[i])) {
                c->c = ctx;
                c->at = owner;
            } else {
                redisFree(ctx);
            }
            return 0;
        }
        redisFree(ctx);
    }
    return rc;
}

/* Runs the hook on a fresh connection; 1 when the node turned out to be a
 * replica (READONLY). */
static int run_hook(op_redisconn_t *c, redisContext *ctx, const addr_t *a, char *err, size_t errlen)
{
    char where[HOSTLEN + 8];
    snprintf(where, sizeof(where), "%s:%d", a->host, a->port);
    if (!c->hook)
        return 0;
    int rc = c->hook(c->hook_arg, ctx, where, err, errlen);
    if (rc < 0 && strstr(err, "READONLY"))
        return 1;
    return rc;
}

/* Sentinel: the node must say it is a primary (Sentinel may answer with the
 * old one for a moment during a failover). */
static int check_role(redisContext *ctx, const addr_t *a, char *err, size_t errlen)
{
    redisReply *rep = redisCommand(ctx, "ROLE");
    if (!rep) {
        op_conf_error(err, errlen, "redis %s:%d: ROLE: %s", a->host, a->port, ctx->errstr);
        return -ECONNRESET;
    }
    int rc = noauth(rep, a, err, errlen);
    if (rc == 0 &&
        (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
         rep->element[0]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "master"))) {
        op_conf_error(err, errlen,
                      "redis %s:%d: Sentinel names it the primary but it is %s (a failover in "
                      "progress?)",
                      a->host, a->port,
                      rep->type == REDIS_REPLY_ARRAY && rep->elements ? rep->element[0]->str
                      : rep->type == REDIS_REPLY_ERROR                ? rep->str
                                                                      : "no primary");
        rc = -ECONNRESET;
    }
    freeReplyObject(rep);
    return rc;
}

int op_redisconn_ensure(op_redisconn_t *c, char *err, size_t errlen)
{
    if (c->c)
        return 0;
    int rc = 0;
    if (c->mode == MODE_SENTINEL)
        rc = ask_sentinels(c, err, errlen);
    else if (c->mode == MODE_UNKNOWN || (c->mode == MODE_CLUSTER && !c->target.port))
        rc = find_owner(c, err, errlen);
    if (rc < 0)
        return rc;
    snprintf(c->where, sizeof(c->where), "%s:%d", c->target.host, c->target.port);
    if (!c->c) {
        if ((rc = dial(c, &c->target, c->password, "", &c->c, err, errlen)) < 0) {
            if (c->mode != MODE_STANDALONE)
                c->target.port = 0;
            return rc;
        }
        c->at = c->target;
    }
    if (c->mode == MODE_SENTINEL && (rc = check_role(c->c, &c->at, err, errlen)) < 0) {
        op_redisconn_drop(c);
        return rc;
    }
    rc = run_hook(c, c->c, &c->at, err, errlen);
    if (rc != 0) {
        op_redisconn_drop(c);
        if (c->mode != MODE_STANDALONE)
            c->target.port = 0;
        return rc == 1 ? -ECONNRESET : rc;
    }
    c->serial++;
    return 0;
}

/* --- commands ---------------------------------------------------------------------- */

enum { REP_OK, REP_MOVED, REP_ASK, REP_TRYAGAIN, REP_READONLY };

/* What an error reply asks the client to do; *to is the node named by MOVED
 * or ASK. */
static int classify(const redisReply *rep, const addr_t *at, addr_t *to)
{
    if (rep->type != REDIS_REPLY_ERROR)
        return REP_OK;
    const char *s = rep->str;
    int moved = !strncmp(s, "MOVED ", 6), ask = !strncmp(s, "ASK ", 4);
    if (moved || ask) {
        const char *a = strchr(s + (moved ? 6 : 4), ' ');
        if (!a || parse_addr(a + 1, strlen(a + 1), to) < 0)
            return REP_OK;
        if (to->host[0] == 0 || !strcmp(to->host, "?"))
            snprintf(to->host, HOSTLEN, "%s", at->host);
        return moved ? REP_MOVED : REP_ASK;
    }
    /* TRYAGAIN: a multi-key command met a slot half migrated. A function
     * touching a key that already left (or not yet arrived) fails before
     * its first write (redis.lua checks every key first): the same. */
    if (!strncmp(s, "TRYAGAIN", 8) || strstr(s, "non local key") || !strncmp(s, "CLUSTERDOWN", 11))
        return REP_TRYAGAIN;
    if (!strncmp(s, "READONLY", 8))
        return REP_READONLY;
    return REP_OK;
}

/* The connection to the node importing the slot (ASK), made on demand. */
static int ensure_ask(op_redisconn_t *c, const addr_t *to, char *err, size_t errlen)
{
    if (c->ask && same(&c->ask_at, to))
        return 0;
    close_ctx(&c->ask);
    int rc = dial(c, to, c->password, "", &c->ask, err, errlen);
    if (rc < 0)
        return rc;
    c->ask_at = *to;
    if ((rc = run_hook(c, c->ask, to, err, errlen)) != 0) {
        close_ctx(&c->ask);
        return rc == 1 ? -ECONNRESET : rc;
    }
    return 0;
}

/* Follows MOVED to `to`: the next ensure() dials it (or adopts the ASK
 * connection already open to it). */
static void follow_moved(op_redisconn_t *c, const addr_t *to)
{
    if (c->mode != MODE_SENTINEL)
        c->mode = MODE_CLUSTER;
    remember_node(c, to);
    close_ctx(&c->c);
    c->target = *to;
    if (c->ask && same(&c->ask_at, to)) {
        c->c = c->ask;
        c->at = c->ask_at;
        c->ask = NULL;
        c->serial++; /* a new node for the caller, though not a new socket */
    }
}

redisReply *op_redisconn_call(op_redisconn_t *c, int argc, const char **argv, const size_t *lens,
                              int *rc, char *err, size_t errlen, const char *what)
{
    addr_t to;
    int asking = 0, redirects = 0, tries = 0;
    for (;;) {
        if ((*rc = op_redisconn_ensure(c, err, errlen)) < 0)
            return NULL;
        redisContext *ctx = c->c;
        const addr_t *at = &c->at;
        if (asking) {
            if ((*rc = ensure_ask(c, &to, err, errlen)) < 0)
                return NULL;
            ctx = c->ask;
            at = &c->ask_at;
            redisAppendCommand(ctx, "ASKING");
        }
        redisReply *rep = NULL;
        int ok = redisAppendCommandArgv(ctx, argc, argv, lens) == REDIS_OK;
        if (ok && asking) { /* ASKING's own reply */
            ok = redisGetReply(ctx, (void **)&rep) == REDIS_OK;
            if (rep)
                freeReplyObject(rep);
            rep = NULL;
        }
        if (ok)
            ok = redisGetReply(ctx, (void **)&rep) == REDIS_OK;
        if (!ok) {
            op_conf_error(err, errlen, "redis %s:%d: %s: %s", at->host, at->port, what,
                          ctx->errstr[0] ? ctx->errstr : "connection lost");
            if (asking)
                close_ctx(&c->ask);
            else
                op_redisconn_drop(c);
            *rc = -ECONNRESET;
            return NULL;
        }
        int kind = classify(rep, at, &to);
        if (kind == REP_OK)
            return rep;
        op_conf_error(err, errlen, "redis %s:%d: %s: %s", at->host, at->port, what, rep->str);
        freeReplyObject(rep);
        asking = 0;
        if (kind == REP_TRYAGAIN) {
            if (++tries > TRYAGAIN_MAX) {
                *rc = OP_REDIS_EREPLY;
                return NULL;
            }
            op_sleep_ms(TRYAGAIN_MS);
            continue;
        }
        if (++redirects > MAX_REDIRECTS) {
            *rc = OP_REDIS_EREPLY;
            return NULL;
        }
        if (kind == REP_MOVED)
            follow_moved(c, &to);
        else if (kind == REP_ASK)
            asking = 1;
        else /* READONLY: demoted; whoever is primary now is asked for */
            op_redisconn_drop(c);
    }
}

/* Sends n commands of argc arguments straight from the caller's buffers:
 * hiredis formats a command into a fresh buffer and appends that to its
 * output buffer, two copies of every byte -- for a commit of 1 M users,
 * 26 MB twice and their page faults, most of the sink's time. Only while
 * hiredis holds no output of its own (the replies are then read through it
 * as usual). A failed or timed-out send (SO_SNDTIMEO, set by hiredis) is
 * an I/O error in ctx->errstr. */
static int send_direct(redisContext *ctx, int n, int argc, const char **argv, const size_t *lens)
{
    size_t nargs = (size_t)n * (size_t)argc;
    size_t niov = (size_t)n + 3 * nargs;
    struct iovec *iov = op_xcalloc(niov, sizeof(*iov));
    char *heads = op_xmalloc((size_t)n * 16 + nargs * 24);
    size_t h = 0, k = 0;
    for (int i = 0; i < n; i++) {
        int len = sprintf(heads + h, "*%d\r\n", argc);
        iov[k++] = (struct iovec){heads + h, (size_t)len};
        h += (size_t)len;
        for (int a = 0; a < argc; a++) {
            size_t j = (size_t)i * (size_t)argc + (size_t)a;
            len = sprintf(heads + h, "$%zu\r\n", lens[j]);
            iov[k++] = (struct iovec){heads + h, (size_t)len};
            h += (size_t)len;
            iov[k++] = (struct iovec){(void *)argv[j], lens[j]};
            iov[k++] = (struct iovec){(void *)"\r\n", 2};
        }
    }
    int rc = 0;
    for (size_t at = 0; at < k && rc == 0;) {
        struct msghdr msg = {.msg_iov = iov + at,
                             .msg_iovlen = k - at < DIRECT_IOV ? k - at : DIRECT_IOV};
        ssize_t sent = sendmsg(ctx->fd, &msg, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0) {
            snprintf(ctx->errstr, sizeof(ctx->errstr), "%s",
                     sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? "send timed out"
                     : sent < 0                                            ? strerror(errno)
                                                                           : "connection closed");
            ctx->err = REDIS_ERR_IO;
            rc = -1;
            break;
        }
        for (size_t left = (size_t)sent; left > 0;) { /* past what went out */
            if (left >= iov[at].iov_len) {
                left -= iov[at].iov_len;
                at++;
            } else {
                iov[at].iov_base = (char *)iov[at].iov_base + left;
                iov[at].iov_len -= left;
                left = 0;
            }
        }
    }
    free(heads);
    free(iov);
    return rc;
}

int op_redisconn_pipeline(op_redisconn_t *c, int n, int argc, const char **argv, const size_t *lens,
                          int (*fn)(void *arg, int i, const redisReply *rep, char *err,
                                    size_t errlen),
                          void *arg, char *err, size_t errlen, const char *what)
{
    int rc = op_redisconn_ensure(c, err, errlen);
    if (rc < 0)
        return rc;
    size_t bytes = 0;
    for (size_t j = 0; j < (size_t)n * (size_t)argc; j++)
        bytes += lens[j];
    if (bytes >= DIRECT_MIN && sdslen(c->c->obuf) == 0) {
        if (send_direct(c->c, n, argc, argv, lens) < 0)
            goto broken;
    } else {
        for (int i = 0; i < n; i++)
            if (redisAppendCommandArgv(c->c, argc, argv + (size_t)i * argc,
                                       lens + (size_t)i * argc) != REDIS_OK)
                goto broken;
    }
    rc = 0;
    for (int i = 0; i < n; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(c->c, (void **)&rep) != REDIS_OK)
            goto broken;
        addr_t to;
        if (classify(rep, &c->at, &to) != REP_OK) {
            /* Read the rest first: the stream must stay in step. */
            freeReplyObject(rep);
            rep = NULL;
            int k = i + 1;
            for (; k < n; k++) {
                redisReply *r2 = NULL;
                if (redisGetReply(c->c, (void **)&r2) != REDIS_OK)
                    goto broken;
                freeReplyObject(r2);
            }
            /* ... and send this one and the rest one by one. */
            for (k = i; k < n && rc == 0; k++) {
                int crc;
                redisReply *r3 =
                    op_redisconn_call(c, argc, argv + (size_t)k * argc, lens + (size_t)k * argc,
                                      &crc, err, errlen, what);
                if (!r3)
                    return crc;
                rc = fn(arg, k, r3, err, errlen);
                freeReplyObject(r3);
            }
            return rc;
        }
        if (rc == 0)
            rc = fn(arg, i, rep, err, errlen);
        freeReplyObject(rep);
    }
    return rc;
broken:
    op_conf_error(err, errlen, "redis %s:%d: %s: %s", c->at.host, c->at.port, what,
                  c->c->errstr[0] ? c->c->errstr : "connection lost");
    op_redisconn_drop(c);
    return -ECONNRESET;
}
