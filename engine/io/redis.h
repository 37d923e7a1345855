/* redis.h — the exactly-once store of the cumulative state (DESIGN §4).
 *
 * Each tick's deltas and the next offset of every partition they cover are
 * written in one pipelined WATCH … MULTI … EXEC, fenced by the per-partition
 * offset keys: the transaction commits only if every offset key still holds
 * the offset this process started the tick from. A process that lost a
 * partition (rebalance, or a zombie that was frozen past its session) thus
 * cannot apply stale deltas, and a restarted process resumes exactly at the
 * offsets Redis holds: nothing is lost or counted twice.
 *
 * Key schema (prefix configurable, default "{op}" — one hash tag, so the
 * transaction is legal on Redis Cluster); documented in docs/REDIS.md:
 *
 *   P:schema                    "1"
 *   P:totals                    hash orders, quantity, amount (cents), bad, late
 *   P:bad                       hash reason -> count
 *   P:brand:q, P:brand:a        hash brand -> quantity / amount (cents)
 *   P:brand:o                   hash brand -> orders
 *   P:gender:q, P:gender:a      hash gender -> quantity / amount (cents)
 *   P:gender:o                  hash gender -> orders
 *   P:users                     sorted set user -> amount (cents)
 *   P:user:o                    hash user -> orders
 *   P:minute:<ms>               hash orders, quantity, amount      (TTL = retention)
 *   P:catmin:<ms>               hash <category>\x1fq|a|o -> value  (TTL = retention)
 *   P:slot:<ms>                 hash gender -> quantity            (TTL = retention)
 *   P:offset:<topic>:<p>        next offset of partition p
 *
 * Owner: one thread (the merger). Not thread-safe.
 */
#ifndef OP_REDIS_H
#define OP_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/intern.h"
#include "engine/shard.h"
#include "engine/state.h"

#define OP_REDIS_FENCED 1 /* op_redis_flush: the offsets moved; nothing was written */

typedef struct op_redis_conf {
    const char *host;
    int port;
    const char *password; /* AUTH, or NULL */
    const char *prefix;   /* default "{op}" */
    const char *topic;    /* names the offset keys */
    int64_t retention_ms; /* TTL of the window keys */
    int timeout_ms;       /* connect and command timeout */
} op_redis_conf_t;

typedef struct op_redis op_redis_t;

/* Connects (and authenticates). Returns 0 or a negative error code with a
 * message. The connection is re-established by the calls below when lost. */
int op_redis_connect(op_redis_t **out, const op_redis_conf_t *conf, char *err, size_t errlen);
void op_redis_close(op_redis_t *r);

/* The next offset Redis holds for partitions 0..n-1, or -1 where it holds
 * none. Returns 0 or a negative error code. */
int op_redis_offsets(op_redis_t *r, int32_t n, int64_t *offsets, char *err, size_t errlen);

/* Writes one tick: the deltas in d (dimension names from dict) and, for each
 * partition touched in d, the new next offset d->parts[p].next_offset —
 * provided Redis still holds expected[p] for it (-1: no key yet). Returns 0
 * when committed, OP_REDIS_FENCED when the fence failed (nothing written),
 * or a negative error code (connection trouble; nothing or everything was
 * written — the caller retries with the same expected offsets, and the
 * fence makes the retry safe). */
int op_redis_flush(op_redis_t *r, const op_shard_t *d, op_intern_t *dict, const int64_t *expected,
                   char *err, size_t errlen);

/* Loads the cumulative state (totals, brands, genders, users, windows, bad
 * and late counts) into an empty st, interning names through cache. With
 * top_users > 0 only that many best users are read (--view redis: what a
 * snapshot shows, every tick), otherwise every user (start-up). */
int op_redis_load(op_redis_t *r, op_state_t *st, op_intern_cache_t *cache, int top_users, char *err,
                  size_t errlen);

#endif
