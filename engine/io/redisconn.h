/* redisconn.h — finding the Redis primary that holds orderpulse's keys, and
 * talking to it whatever happens to it (docs/REDIS.md, "Sentinel and Cluster").
 *
 * Every key of the protocol shares one hash tag, so one node holds them all:
 *
 *   HOST:PORT        a standalone Redis, or any node of a Redis Cluster: the
 *                    first connection asks CLUSTER SLOTS; in a cluster the
 *                    primary owning the tag's slot is dialled, and MOVED, ASK,
 *                    TRYAGAIN and CLUSTERDOWN are followed;
 *   sentinel://H:P[,H:P...]/NAME
 *                    Sentinel says where the primary named NAME is; every new
 *                    connection asks again and checks ROLE.
 *
 * The primary is looked for again after any connection error, READONLY (the
 * node was demoted), MOVED, or a command that found no primary: nothing is
 * cached beyond the live connection, so a failover is followed on the next
 * call. Whether a failover lost writes is the protocol's business (redis.h:
 * positions and entry ids), not this layer's.
 *
 * Owner: one thread per op_redisconn_t (like op_redis_t, which holds one).
 */
#ifndef OP_REDISCONN_H
#define OP_REDISCONN_H

#include <hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/io/redis.h"

typedef struct op_redisconn op_redisconn_t;

/* Called on every new connection to a data node (after AUTH, before its
 * first command): checks the functions and loads them if needed. A
 * READONLY error reply makes the connection count as one to a replica (a
 * replica that already holds them is found at the first write instead). */
typedef int (*op_redisconn_hook_cb)(void *arg, redisContext *c, const char *where, char *err,
                                    size_t errlen);

/* --redis: "HOST:PORT", "HOST" (port 6379) or "sentinel://H:P[,H:P...]/NAME".
 * Fills conf's endpoint fields (host, port or sentinels, master) with
 * pointers into buf. Returns 0 or -EINVAL with one line in err. */
int op_redisconn_parse(const char *spec, char *buf, size_t buflen, op_redis_conf_t *conf, char *err,
                       size_t errlen);

/* No connection yet; key_tag is a key of the protocol (its slot is the one
 * followed in a cluster). */
int op_redisconn_create(op_redisconn_t **out, const op_redis_conf_t *conf, const char *key,
                        op_redisconn_hook_cb hook, void *hook_arg);
void op_redisconn_destroy(op_redisconn_t *c);

/* One command, following redirections. Returns the reply (caller frees;
 * error replies other than redirections included), or NULL with *rc:
 * -ECONNRESET (no connection, or it broke: the command may have run),
 * -EACCES (AUTH refused), OP_REDIS_EREPLY (the cluster cannot serve the slot
 * now: retry later). err names the node and what was being done. */
redisReply *op_redisconn_call(op_redisconn_t *c, int argc, const char **argv, const size_t *lens,
                              int *rc, char *err, size_t errlen, const char *what);

/* n commands of argc arguments each (argv and lens hold n * argc entries),
 * sent at once; fn gets each reply in order (a redirected command is sent
 * again on its own first). Only for commands that may run twice (SET of a
 * fresh key, GET). Returns 0, fn's negative code, or an error as above. */
int op_redisconn_pipeline(op_redisconn_t *c, int n, int argc, const char **argv, const size_t *lens,
                          int (*fn)(void *arg, int i, const redisReply *rep, char *err,
                                    size_t errlen),
                          void *arg, char *err, size_t errlen, const char *what);

/* Connects now if not connected (for callers that check the address at
 * start). */
int op_redisconn_ensure(op_redisconn_t *c, char *err, size_t errlen);

/* "HOST:PORT" of the node last dialled (for messages). */
const char *op_redisconn_where(const op_redisconn_t *c);
/* Connections made so far: a new value means a new node, or the same one
 * again after an error (time to check what it holds). */
uint64_t op_redisconn_serial(const op_redisconn_t *c);
int op_redisconn_connected(const op_redisconn_t *c);
/* 1 once the node turned out to be part of a Redis Cluster. */
int op_redisconn_cluster(const op_redisconn_t *c);
/* The live connection to the primary (connecting first), for a caller that
 * runs its own commands on that one node (--redis-migrate); NULL with err. */
redisContext *op_redisconn_context(op_redisconn_t *c, char *err, size_t errlen);
/* Drops the connection: the next call looks for the primary again. */
void op_redisconn_drop(op_redisconn_t *c);

/* The Cluster hash slot of key (CRC16 of its hash tag, modulo 16384). */
int op_redisconn_slot(const char *key, size_t len);

#endif
