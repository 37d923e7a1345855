/* state.h — the merger's cumulative state: everything the snapshot shows.
 *
 * Totals, per-brand and per-gender tallies, the minute, category-minute and
 * 10-minute windows, every user's cumulative amount with an exact top-K, the
 * bad/late counters and each partition's event-time progress. Shards are
 * added into it one by one (op_state_merge); nothing else writes it.
 *
 * Owner: the merger thread. Not shared: readers see it only through the
 * immutable snapshots rendered from it (snapshot.h).
 *
 * Exact top-K: a user's cumulative amount only grows, so keeping a min-heap
 * of the K best (amount desc, then name asc) and offering every user whose
 * amount changed is exact: a user outside the heap never ranks above its
 * minimum, and the heap minimum never decreases.
 */
#ifndef OP_STATE_H
#define OP_STATE_H

#include <stdint.h>

#include "engine/intern.h"
#include "engine/ktable.h"
#include "engine/shard.h"
#include "engine/users.h"

#define OP_STATE_TOPK       100 /* the largest ?n= of /api/v1/users/top */
#define OP_STATE_HEAP_SLOTS 256 /* a power of two above 2 * OP_STATE_TOPK */

typedef struct op_state_part {
    int64_t max_event_ms;   /* INT64_MIN until the first record */
    int64_t next_offset;    /* -1 until the first record */
    int64_t last_active_ms; /* monotonic time the merger last saw records of it */
} op_state_part_t;

typedef struct op_state {
    op_intern_t *dict; /* names of the dimension ids (shared, read-only here) */

    op_tally_t totals;
    op_ktable_t minutes, catmin, brands, genders, gslots; /* keys as in op_shard_t */
    op_users_t users;
    uint32_t heap[OP_STATE_TOPK]; /* user entry numbers, min-heap by rank */
    uint32_t heap_len;
    /* Where each user of the heap sits in it (entries carry no heap
     * position: that would cost every user 4 bytes for the sake of 100):
     * open addressing on the entry number; heap_key holds entry + 1. */
    uint32_t heap_key[OP_STATE_HEAP_SLOTS];
    uint8_t heap_at[OP_STATE_HEAP_SLOTS];

    int64_t bad[OP_BAD_REASON_COUNT];
    int64_t bad_total;
    int64_t late;
    int64_t dead_letter_errors;

    op_state_part_t parts[OP_SOURCE_MAX_PARTITIONS];
    int nparts_seen; /* 1 + highest partition number seen */

    int64_t watermark_ms; /* global event-time watermark, INT64_MIN until known */
    int64_t max_event_ms; /* over all partitions */
} op_state_t;

void op_state_init(op_state_t *st, op_intern_t *dict);
void op_state_dispose(op_state_t *st);

/* Adds a shard's deltas. now_ms: monotonic clock, for partition idleness. */
void op_state_merge(op_state_t *st, const op_shard_t *s, int64_t now_ms);

/* Adds to one user's cumulative amount and orders (loading from Redis),
 * keeping the top-K exact. amount must be >= 0. */
void op_state_add_user(op_state_t *st, const char *name, size_t len, int64_t amount,
                       int64_t orders);

/* Recomputes the global watermark: the minimum over partitions active within
 * idle_ms of (max event time - lateness_ms). It never moves back. With
 * at_end (the input is exhausted) every partition counts as done and the
 * watermark becomes max event time - lateness. */
void op_state_advance_watermark(op_state_t *st, int64_t lateness_ms, int64_t idle_ms,
                                int64_t now_ms, int at_end);

/* Drops minute and slot windows that end before watermark - retention_ms. */
void op_state_evict(op_state_t *st, int64_t retention_ms);

/* Top-K users, best first. out must have room for OP_STATE_TOPK entries;
 * returns min(k, users in the top-K). */
uint32_t op_state_top_users(const op_state_t *st, uint32_t *out, uint32_t k);

/* Ranking order of two user entries: negative if a ranks before b. */
int op_state_user_cmp(const op_state_t *st, uint32_t a, uint32_t b);

#endif
