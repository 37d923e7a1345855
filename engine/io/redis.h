/* redis.h — orderpulse's Redis client: one connection and the calls of the
 * exactly-once protocol (layout 2, docs/REDIS.md).
 *
 * The truth in Redis is a log of delta blobs (engine/io/delta.h) and one
 * record per partition (owner, epoch, next offset, largest event time, lost
 * records). The protocol's decisions are taken inside Redis, by the functions
 * of engine/io/redis.lua, each of which is atomic and checks everything before
 * it writes anything:
 *
 *   claim    at assignment: become the owner of partitions (a new epoch when
 *            the owner changes), learn where they resume;
 *   stage    SET each blob chunk under a fresh key (with a TTL until its commit);
 *   commit   fence every partition (this writer, this epoch, this next offset),
 *            require the log to be exactly where the writer read it (its
 *            position and the id of the entry there), append the entry,
 *            advance the partitions, write the readable view;
 *   log      the entries from a position on (tailing other engines' commits);
 *   compact  replace a prefix of the log by a snapshot.
 *
 * Which node: engine/io/redisconn.h (standalone, Cluster, Sentinel); a call
 * that meets a failover fails with a connection error and the next one finds
 * the new primary.
 *
 * Owner: one thread per op_redis_t (the sink thread, the Kafka poll thread and
 * main each have their own connection). Not thread-safe.
 */
#ifndef OP_REDIS_H
#define OP_REDIS_H

#include <stddef.h>
#include <stdint.h>

#define OP_REDIS_LAYOUT 2

/* Where Redis is (engine/io/redisconn.h): host and port of a standalone
 * Redis or of any Cluster node, or sentinels and master. */
typedef struct op_redis_conf {
    const char *host; /* NULL with sentinels */
    int port;
    const char *sentinels;         /* "H:P,H:P..." (Sentinel), or NULL */
    const char *master;            /* Sentinel's name of the primary */
    const char *password;          /* AUTH, or NULL */
    const char *sentinel_password; /* AUTH to the Sentinels, or NULL */
    const char *prefix;            /* default "{op}" */
    int timeout_ms;                /* connect and command timeout (--redis-timeout) */
    int min_replicas;              /* a commit counts once this many replicas have it (WAIT) */
} op_redis_conf_t;

typedef struct op_redis op_redis_t;

/* Error codes beyond errno values: Redis answered, with an error. */
#define OP_REDIS_EREPLY (-1000) /* an error reply (WRONGTYPE, OOM, READONLY ...): retry later */
#define OP_REDIS_ESTATE (-1001) /* the state is missing, replaced or of another layout: stop */

/* Creates the client (no connection yet: every call connects when needed). */
int op_redis_create(op_redis_t **out, const op_redis_conf_t *conf);
void op_redis_destroy(op_redis_t *r);

/* Connects if needed, loads the functions, and opens the state: creates it
 * when Redis holds nothing of this prefix, else checks its layout. Refuses
 * (OP_REDIS_ESTATE, with the reason) keys of this prefix without their state
 * record: the log and offsets were evicted or deleted, and starting from zero
 * on top of what survived would count again. Sets the state's generation id,
 * which every later call checks. */
int op_redis_open(op_redis_t *r, char *err, size_t errlen);

/* The generation id of the opened state ("" before op_redis_open). */
const char *op_redis_generation(const op_redis_t *r);
/* Adopts a generation read by another connection (no round trip). */
void op_redis_set_generation(op_redis_t *r, const char *gen);
const char *op_redis_prefix(const op_redis_t *r);

/* What Redis holds of one partition. */
typedef struct op_redis_part {
    int64_t epoch;
    int64_t next_offset; /* -1: nothing of it was ever counted */
    int64_t max_event_ms;
    int64_t lost;
} op_redis_part_t;

/* Makes writer the owner of the n partition fields ("kafka:orders:3").
 * Returns 0 and fills out[n], or a negative error code. */
int op_redis_claim(op_redis_t *r, const char *writer, int n, const char *const *fields,
                   op_redis_part_t *out, char *err, size_t errlen);

/* Stages blobs: SET keys[i] to bufs[i] with a TTL (pipelined). */
int op_redis_stage(op_redis_t *r, int n, const char *const *keys, const char *const *bufs,
                   const size_t *lens, char *err, size_t errlen);

/* One partition of a commit. */
typedef struct op_redis_commit_part {
    const char *field;
    int64_t epoch, expect_next, next, max_event_ms, lost;
} op_redis_commit_part_t;

/* A flat list of strings (the view operations of a commit). */
typedef struct op_redis_argv {
    char **v;
    size_t *len;
    size_t n, cap;
} op_redis_argv_t;

void op_redis_argv_init(op_redis_argv_t *a);
void op_redis_argv_dispose(op_redis_argv_t *a);
void op_redis_argv_clear(op_redis_argv_t *a);
void op_redis_argv_add(op_redis_argv_t *a, const char *s, size_t len);
void op_redis_argv_str(op_redis_argv_t *a, const char *s);
void op_redis_argv_i64(op_redis_argv_t *a, int64_t v);

typedef enum op_redis_verdict {
    OP_REDIS_OK = 0, /* committed at pos */
    OP_REDIS_BEHIND, /* the log grew past expect_pos: read it, then commit again */
    OP_REDIS_BACK,   /* the log is shorter than expect_pos: Redis lost commits */
    OP_REDIS_FENCED, /* a partition belongs to someone else now (fence_* say which) */
} op_redis_verdict_t;

/* Every log entry has an id, "<writer>:<cseq>"; a position and the id of
 * the entry ending there ("" at 0) tell whether Redis still holds the history
 * a writer read, even after it went back and forward again (a failover). */
#define OP_REDIS_IDLEN 64

typedef struct op_redis_commit_result {
    op_redis_verdict_t verdict;
    int64_t pos;               /* OK: the log's end after the commit; BEHIND/BACK: its end now */
    char last[OP_REDIS_IDLEN]; /* OK: the id of the entry at pos */
    char fence_field[128];
    char fence_owner[64];
    int64_t fence_epoch, fence_next;
} op_redis_commit_result_t;

/* Commits: see redis.lua op_commit; expect_last is the id of the entry at
 * expect_pos. Returns 0 with *res, or a negative error code (connection
 * trouble: nothing or everything was applied -- retrying with the same cseq
 * is safe, the log tells which). */
int op_redis_commit(op_redis_t *r, const char *writer, uint64_t cseq, int64_t expect_pos,
                    const char *expect_last, int nparts, const op_redis_commit_part_t *parts,
                    int nblobs, const char *const *blobs, size_t bytes, const op_redis_argv_t *view,
                    op_redis_commit_result_t *res, char *err, size_t errlen);

/* WAIT: how many replicas have everything this connection wrote, after at
 * most timeout_ms (fewer than replicas: err says so). Negative: an error. */
int op_redis_wait(op_redis_t *r, int replicas, int timeout_ms, char *err, size_t errlen);

/* One log entry. */
typedef struct op_redis_entry {
    char kind; /* 'D' delta, 'S' snapshot */
    char writer[32];
    uint64_t cseq;
    int nblobs;
    char **blobs;
} op_redis_entry_t;

typedef struct op_redis_log {
    int verdict; /* 0: entries below; OP_REDIS_BACK; or 1 = RELOAD */
    int64_t base, end;
    char last[OP_REDIS_IDLEN]; /* the id of the entry at end */
    int64_t from;              /* the position of entries[0] */
    op_redis_entry_t *entries;
    int n;
} op_redis_log_t;

#define OP_REDIS_RELOAD 1

/* The log from position from on (from < 0: all of it, for loading); with
 * from_last (the id of the entry at from), BACK when Redis holds another
 * history there. Returns 0 and fills *log (op_redis_log_dispose), or a
 * negative error code. */
int op_redis_read_log(op_redis_t *r, int64_t from, const char *from_last, op_redis_log_t *log,
                      char *err, size_t errlen);
void op_redis_log_dispose(op_redis_log_t *log);

/* Calls fn for each blob's bytes, in order (pipelined GETs, a window at a
 * time). A missing blob is -ENOENT (compacted away meanwhile: read again). */
int op_redis_fetch(op_redis_t *r, int n, char *const *keys,
                   int (*fn)(void *arg, const char *buf, size_t len), void *arg, char *err,
                   size_t errlen);

/* Compaction: the snapshot blobs hold everything up to position upto, where
 * writer's commit cseq ends. Returns 1 when done, 0 when stale (the log
 * moved, or is another history: nothing done), or a negative error code. */
int op_redis_compact(op_redis_t *r, const char *writer, uint64_t cseq, int64_t upto, int nblobs,
                     const char *const *blobs, size_t bytes, char *err, size_t errlen);

/* Tells Redis this writer has read the log up to pos: compaction waits for
 * live readers (silent for 30 s: dead). */
int op_redis_reader(op_redis_t *r, const char *writer, int64_t pos, char *err, size_t errlen);

/* Deletes up to max blobs waiting in the garbage list. Returns how many, or
 * a negative error code. */
int op_redis_collect_garbage(op_redis_t *r, int max, char *err, size_t errlen);

/* How many chunks the file source cuts the file fp ("file:...") into: the
 * count the first run chose (proposed, if this is the first), so that every
 * replay resumes the same chunks whatever its --workers. */
int op_redis_file_chunks(op_redis_t *r, const char *fp, int proposed, int *chunks, char *err,
                         size_t errlen);

/* The state's meta record, for the sink's compaction policy. */
int op_redis_meta(op_redis_t *r, int64_t *snap_bytes, int64_t *delta_bytes, char *err,
                  size_t errlen);

/* 1 while the last call reached Redis. */
int op_redis_connected(const op_redis_t *r);
/* Connections made so far (to the same node again, or to another): a change
 * is the moment to check that Redis did not go back in time. */
uint64_t op_redis_connections(const op_redis_t *r);

#endif
