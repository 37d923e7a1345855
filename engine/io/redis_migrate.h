/* redis_migrate.h — `orderpulse --redis-migrate`: layout 1 keys to layout 2.
 *
 * Layout 1 kept the cumulative figures in plain keys (a hash of totals, a
 * sorted set of every user, one hash per window) and each partition's offset
 * in its own key. Migration reads all of it into a state, writes that state as
 * the snapshot that starts layout 2's log, with one partition record per
 * offset key, then removes the layout-1 keys. The state record (<prefix>:meta)
 * is written after the log and the partitions, so an interrupted migration is
 * simply run again; the old keys go last.
 *
 * Main thread, before anything else runs (no engine may write meanwhile).
 */
#ifndef OP_REDIS_MIGRATE_H
#define OP_REDIS_MIGRATE_H

#include <stddef.h>

#include "engine/intern.h"
#include "engine/io/redis.h"

/* Migrates the prefix of conf. Returns 0 (and a one-line summary in msg), or
 * a negative error code with a message. */
int op_redis_migrate(const op_redis_conf_t *conf, op_intern_t *dict, char *msg, size_t msglen);

#endif
