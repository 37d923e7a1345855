/* shard.h — a worker's private aggregates for one tick.
 *
 * A worker adds every order it accepts to its active shard; at a tick it
 * hands the shard to the merger and continues with a fresh one. Because a
 * shard has exactly one owner at a time, nothing in it is synchronised:
 *
 *   Owner: worker i while active. Handed to the merger through the merger's
 *   full queue (release/acquire by the queue); the worker never touches it
 *   again until the merger, having merged and cleared it, returns it through
 *   the worker's free queue.
 *
 * Windows are keyed by event-time bucket (minute, 10-minute slot) so a shard
 * holds whatever minutes its orders fell into, late ones included.
 */
#ifndef OP_SHARD_H
#define OP_SHARD_H

#include <stdint.h>
#include <urcu/wfcqueue.h>

#include "engine/ktable.h"
#include "engine/parse.h"
#include "engine/source.h"
#include "engine/users.h"

#define OP_MINUTE_MS 60000LL
#define OP_SLOT_MS   600000LL

/* Reasons a record is bad beyond the parser's: */
enum {
    OP_BAD_TOO_MANY_NAMES = OP_PARSE_REASON_COUNT, /* "too_many_names" (see intern.h) */
    OP_BAD_REASON_COUNT
};
const char *op_shard_bad_reason_name(int reason);

/* What the shard knows of one partition it read this tick. */
typedef struct op_shard_part {
    int64_t max_event_ms; /* largest event time seen so far (cumulative, not per tick) */
    int64_t next_offset;  /* offset after the last record consumed */
    int64_t records;      /* records consumed this tick (good and bad) */
    int64_t lost;         /* records the broker deleted before they were read, this tick */
} op_shard_part_t;

typedef struct op_shard {
    struct cds_wfcq_node qnode; /* link in the merger's full queue / a worker's free queue */
    uint64_t handoff;           /* bumped (release) at each enqueue, read (acquire) at dequeue */
    int worker;
    uint64_t epoch; /* the tick this shard was handed over for */
    int last;       /* the worker's input is exhausted: this is its final shard */

    op_tally_t totals;
    op_ktable_t minutes; /* key: minute number (event_ms / OP_MINUTE_MS) */
    op_ktable_t catmin;  /* key: op_ktable_pair(minute number, category id) */
    op_ktable_t brands;  /* key: brand id */
    op_ktable_t genders; /* key: gender id */
    op_ktable_t gslots;  /* key: op_ktable_pair(slot number, gender id) */
    op_users_t users;    /* user deltas of this tick */

    int64_t bad[OP_BAD_REASON_COUNT];
    int64_t late;
    int64_t dead_letter_errors;

    /* Partitions touched this tick: parts[p] is meaningful when bit p of
     * touched is set. */
    uint64_t touched[OP_SOURCE_MAX_PARTITIONS / 64];
    op_shard_part_t parts[OP_SOURCE_MAX_PARTITIONS];
} op_shard_t;

op_shard_t *op_shard_create(int worker);
void op_shard_destroy(op_shard_t *s);

/* Empties the shard for reuse, keeping its allocations. */
void op_shard_clear(op_shard_t *s);

/* Adds src's deltas into dst (the merger's pending tick). Per-partition
 * progress takes src's values, which are the newer. */
void op_shard_add(op_shard_t *dst, const op_shard_t *src);

static inline int op_shard_touched(const op_shard_t *s, int32_t p)
{
    return (s->touched[p >> 6] >> (p & 63)) & 1;
}

/* Counts a loss the source reported with a batch (source.h op_loss_t), so
 * that it travels with the offsets past the gap. max_event_ms: the
 * partition's largest event time so far (the worker's). Worker only. */
static inline void op_shard_add_loss(op_shard_t *s, const op_loss_t *l, int64_t max_event_ms)
{
    op_shard_part_t *sp = &s->parts[l->partition];
    if (!op_shard_touched(s, l->partition)) {
        s->touched[l->partition >> 6] |= 1ULL << (l->partition & 63);
        sp->next_offset = l->to;
        sp->max_event_ms = max_event_ms;
    } else if (sp->next_offset < l->to) {
        sp->next_offset = l->to;
    }
    sp->lost += l->to - l->from;
}

/* The first partition >= from that the shard touched, or -1. Iterate with
 *   for (int32_t p = op_shard_next_touched(s, 0); p >= 0; p = op_shard_next_touched(s, p + 1)) */
static inline int32_t op_shard_next_touched(const op_shard_t *s, int32_t from)
{
    for (int32_t w = from >> 6; w < OP_SOURCE_MAX_PARTITIONS / 64; w++) {
        uint64_t bits = s->touched[w];
        if (w == from >> 6)
            bits &= ~0ULL << (from & 63);
        if (bits)
            return w * 64 + __builtin_ctzll(bits);
    }
    return -1;
}

#endif
