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
 *
 * Calendar days (only with --archive, which stores brands, genders and
 * users per day): a table per day would cost the hot path three more
 * upserts per order, so the shard's first order fixes its base day instead;
 * brands, genders and users hold every order as always, and an order of any
 * other day is also added to an off-day table. A day's figures are then
 *
 *   per_day[(d, k)] = [d == day] * (total[k] - sum over d' of offday[(d', k)])
 *                     + offday[(d, k)]
 *
 * which op_state_merge and op_shard_add apply. (After op_shard_add of a
 * shard with another base day an off-day table may hold the base day too;
 * the formula still holds.)
 */
#ifndef OP_SHARD_H
#define OP_SHARD_H

#include <stdint.h>
#include <urcu/wfcqueue.h>

#include "engine/hash.h"
#include "engine/ktable.h"
#include "engine/parse.h"
#include "engine/source.h"
#include "engine/users.h"

#define OP_MINUTE_MS 60000LL
#define OP_SLOT_MS   600000LL
#define OP_DAY_MS    86400000LL

/* The calendar day of an event time in a time zone tz_ms east of UTC, as
 * days since 1969-12-31 there: never negative for the event times (>= 1 ms)
 * and offsets (within a day) the parser accepts. */
static inline uint32_t op_shard_day(int64_t event_ms, int64_t tz_ms)
{
    return (uint32_t)((event_ms + tz_ms + OP_DAY_MS) / OP_DAY_MS);
}

/* When day starts, in epoch ms (UTC). */
static inline int64_t op_shard_day_start(uint32_t day, int64_t tz_ms)
{
    return ((int64_t)day - 1) * OP_DAY_MS - tz_ms;
}

/* Key of a user's figures of one day: the user is an entry number of the
 * users table beside the key's table (the shard's, or the state's). */
static inline uint64_t op_shard_user_day(uint32_t day, uint32_t entry)
{
    return (uint64_t)day << 32 | entry;
}

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
    uint64_t epoch;   /* the tick this shard was handed over for */
    int last;         /* the worker's input is exhausted: this is its final shard */
    int64_t ended_ms; /* last: when the worker found its input ended (monotonic) */

    op_tally_t totals;
    op_ktable_t minutes; /* key: minute number (event_ms / OP_MINUTE_MS) */
    op_ktable_t catmin;  /* key: op_ktable_pair(minute number, category id) */
    op_ktable_t brands;  /* key: brand id */
    op_ktable_t genders; /* key: gender id */
    op_ktable_t gslots;  /* key: op_ktable_pair(slot number, gender id) */
    op_users_t users;    /* user deltas of this tick */

    /* Calendar days (--archive only; see above). */
    int64_t day;          /* base day (op_shard_day), -1 until the first order */
    int days_exact;       /* the off-day tables hold every day's figures exactly and the base day
                             takes nothing (a shard decoded from Redis, engine/io/delta.h) */
    int64_t day_start_ms; /* its start (UTC), INT64_MIN until the first order */
    op_ktable_t brand_offday;  /* key: op_ktable_pair(day, brand id) */
    op_ktable_t gender_offday; /* key: op_ktable_pair(day, gender id) */
    op_ktable_t user_offday;   /* key: op_shard_user_day(day, entry in users); no quantity */

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

/* The entry in `to` of user e of `from`, found by name (it must be there:
 * `from`'s users were added to `to`). For the keys of user_offday. */
static inline uint32_t op_shard_user_in(const op_users_t *to, const op_users_t *from, uint32_t e)
{
    size_t len;
    const char *name = op_users_name(from, e, &len);
    return op_users_find(to, name, len, op_hash_bytes(name, len));
}

/* Notes the calendar day of an order already added to the totals (users
 * entry e, gender g, brand b): only an order outside the base day costs
 * more than one compare. Worker i on its active shard, --archive only. */
static inline void op_shard_add_day(op_shard_t *s, int64_t event_ms, int64_t tz_ms, uint32_t e,
                                    uint32_t g, uint32_t b, int64_t num, int64_t amount)
{
    if ((uint64_t)event_ms - (uint64_t)s->day_start_ms < (uint64_t)OP_DAY_MS)
        return;
    uint32_t day = op_shard_day(event_ms, tz_ms);
    if (s->day < 0) {
        s->day = day;
        s->day_start_ms = op_shard_day_start(day, tz_ms);
        return;
    }
    op_tally_t one = {1, num, amount};
    op_tally_add(op_ktable_upsert(&s->brand_offday, op_ktable_pair(day, b)), &one);
    op_tally_add(op_ktable_upsert(&s->gender_offday, op_ktable_pair(day, g)), &one);
    one.quantity = 0;
    op_tally_add(op_ktable_upsert(&s->user_offday, op_shard_user_day(day, e)), &one);
}

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
