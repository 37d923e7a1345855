/* delta.h — the binary form of aggregates in Redis: a tick's deltas, or a
 * whole state (a compaction snapshot).
 *
 * Redis keeps orderpulse's truth as a log of such blobs (docs/REDIS.md):
 * every commit appends the deltas it carries, a compaction replaces a prefix
 * of the log by a snapshot. Users -- millions of them -- are why this is a
 * packed binary form and not one Redis field per user: a blob costs Redis a
 * memcpy, where HINCRBY/ZINCRBY per user cost it microseconds each.
 *
 * A blob is a sequence of chunks of at most about OP_DELTA_CHUNK bytes, each
 * self-contained (its own name table), so each chunk is one Redis string and
 * can be decoded alone. Decoding adds into a shard: deltas and snapshots
 * both fold by addition (a snapshot is folded into an empty state).
 *
 * Chunk layout (little-endian; varint = LEB128, svarint = zigzag LEB128):
 *   "OPD" '2' kind('D' delta | 'S' snapshot)
 *   records, each a tag byte then:
 *     NAME   dim(u8) len(varint) bytes        -- next name index of this chunk
 *     TOTALS orders quantity amount (svarint)
 *     BAD    len(varint) reason-bytes count(svarint)
 *     LATE   count(svarint)
 *     TALLY  table-id(u8) [bucket(varint)] [name-index(varint)] orders quantity amount
 *     USER   len(u8) bytes amount(svarint) orders(svarint)
 *     PART   partition(varint) next_offset max_event_ms records lost (svarint)
 * A TALLY has a bucket when its table is keyed by bucket (op_table_desc_t
 * dim < 0 or paired) and a name index when it has a dimension.
 *
 * Thread safety: an op_delta_buf_t belongs to one thread at a time (built by
 * the merger, handed whole to the Redis sink); a chunk given to on_full
 * belongs to its taker. Decoding needs an intern cache
 * of the calling thread. Out of memory aborts (hot path).
 */
#ifndef OP_DELTA_H
#define OP_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "engine/intern.h"
#include "engine/ktable.h"
#include "engine/shard.h"
#include "engine/state.h"

#define OP_DELTA_CHUNK (1u << 20) /* a new chunk starts past this many bytes */

typedef struct op_delta_chunk {
    char *buf;
    size_t len, cap;
} op_delta_chunk_t;

typedef struct op_delta_buf {
    char kind; /* 'D' or 'S' */
    op_delta_chunk_t *chunks;
    uint32_t n, cap;
    size_t bytes;          /* over every chunk */
    uint64_t user_records; /* USER records written (the pending bound counts these) */
    op_ktable_t names;     /* this chunk's name table: op_ktable_pair(dim, id) -> index + 1 */
    uint32_t nnames;
    int sealed; /* the last chunk's name table is not this one's: start a new chunk */
    /* Optional. When a chunk is full and the next one starts, every chunk
     * so far is handed to on_full, which takes its buffer: the Redis sink
     * stages a big tick's first chunks while the rest is being encoded.
     * bytes and user_records go on counting what was handed over. */
    void (*on_full)(void *arg, op_delta_chunk_t chunk);
    void *on_full_arg;
} op_delta_buf_t;

void op_delta_buf_init(op_delta_buf_t *b, char kind);
void op_delta_buf_dispose(op_delta_buf_t *b);
/* Empties b for reuse, keeping one chunk's allocation. */
void op_delta_buf_reset(op_delta_buf_t *b);
/* Puts chunk (a complete one, handed over by on_full: b's bytes and
 * user_records already count it) in b at index at, moving the chunks from
 * at on up by one; b owns its buffer from now on. */
void op_delta_buf_insert(op_delta_buf_t *b, uint32_t at, op_delta_chunk_t chunk);
/* Moves every chunk of src to the end of dst; src is left empty. */
void op_delta_buf_append(op_delta_buf_t *dst, op_delta_buf_t *src);

/* Appends a shard's deltas (every table, user, counter and touched
 * partition). */
void op_delta_encode_shard(op_delta_buf_t *b, const op_shard_t *s, op_intern_t *dict);

/* Appends a whole state, for a snapshot: folding it into an empty state gives
 * back every tally, user, counter and partition's progress. Settles st's
 * waiting user-day figures first (op_state_settle_days). */
void op_delta_encode_state(op_delta_buf_t *b, op_state_t *st);

/* Adds one chunk's records into s (names interned through cache). Returns 0,
 * or -EINVAL with a message when the chunk is not a valid blob of this
 * version (s may then hold part of it). */
int op_delta_decode(const char *buf, size_t len, op_shard_t *s, op_intern_cache_t *cache, char *err,
                    size_t errlen);

#endif
