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
 * Window states: a minute (10-minute slot) is closed once the watermark
 * has passed its end. Orders that reach a closed window afterwards (late
 * orders with --late apply, or a partition that was left out of the
 * watermark while idle) are added to it as to any window, and also to
 * `revised`, so that the snapshot can say "revised" instead of "final".
 * The check is made against the watermark of the last published snapshot:
 * a window counts as revised only if some reader could have seen it closed.
 * Revisions are this process's knowledge: they are not in Redis, so after
 * a restart a window reads "final" until a late order revises it again.
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
    int worker;             /* the worker that read it last, -1 if unknown */
    int finished;           /* its worker's input ended: it holds the watermark back no more */
    int64_t lost;           /* records the broker deleted before they were read */
} op_state_part_t;

/* Orders per second over the last few published ticks (wall time). */
#define OP_STATE_RATE_SAMPLES   32
#define OP_STATE_RATE_WINDOW_MS 5000
typedef struct op_state_sample {
    int64_t at_ms; /* monotonic */
    int64_t orders;
} op_state_sample_t;

/* Keys of windows a merge changed after they were final (their end at or
 * before watermark_ms): what --archive must write again. Filled by
 * op_state_merge only while track_rewrites is set, emptied by the archive's
 * offer (engine/io/archive.h); keys as in the state's tables, values
 * unused. Transient bookkeeping, not part of the figures. */
typedef struct op_state_rewrite {
    op_ktable_t minutes, catmin, gslots, brand_days, gender_days, user_days;
} op_state_rewrite_t;

/* One merge's user-day figures, waiting for op_state_settle_days. */
typedef struct op_state_dayq {
    uint32_t day, n;
    int rw;        /* the day was final at the merge: note the keys in rewrite too */
    uint32_t *ent; /* the users' entries in the state; NULL: 0 .. n-1 */
    int64_t *amount;
    uint32_t *orders;
} op_state_dayq_t;

typedef struct op_state {
    op_intern_t *dict; /* names of the dimension ids (shared, read-only here) */

    op_tally_t totals;
    op_ktable_t minutes, catmin, brands, genders, gslots; /* keys as in op_shard_t */
    /* What reached a window after it closed (see "Window states" above):
     * key minute number, resp. 10-minute slot number. */
    op_ktable_t revised_minutes, revised_slots;
    op_users_t users;
    /* The merger's team for big users' merges (op_state_set_fanout), or NULL. */
    struct op_fanout *fanout;
    uint32_t par_min_users;
    uint64_t team_merges; /* merges the team did (for the tests) */

    /* Per calendar day in --timezone, filled only from shards that carry
     * days (--archive; shard.h). Kept for --retention, like the windows. */
    int64_t tz_ms;                /* the time zone of the days, east of UTC */
    op_ktable_t brand_days;       /* key: op_ktable_pair(day, brand id) */
    op_ktable_t gender_days;      /* key: op_ktable_pair(day, gender id) */
    op_ktable_t user_days;        /* key: op_shard_user_day(day, entry in users); no quantity */
    uint32_t days_kept_from;      /* op_state_evict: the first day it kept */
    uint32_t user_days_kept_from; /* op_state_evict_user_days: the same for user_days */
    /* The user-day figures of the merges since the last op_state_settle_days,
     * not yet in user_days: a merge only copies them out, because adding
     * them is a walk over every user the tick touched, which the tick's
     * snapshot does not need (only the archive and a compaction snapshot
     * read user_days, and they settle first). */
    op_state_dayq_t *dayq;
    uint32_t ndayq, dayq_cap;
    int track_rewrites; /* --archive: fill rewrite */
    op_state_rewrite_t rewrite;

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
    int64_t lost; /* over all partitions */

    op_state_part_t parts[OP_SOURCE_MAX_PARTITIONS];
    int nparts_seen; /* 1 + highest partition number seen */

    int64_t watermark_ms; /* global event-time watermark, INT64_MIN until known */
    int64_t max_event_ms; /* over all partitions */

    op_state_sample_t rate[OP_STATE_RATE_SAMPLES]; /* ring, oldest at rate_first */
    int rate_first, rate_n;
} op_state_t;

/* The tallies a shard and the state both keep (op_ktable_t members of the
 * same name in op_shard_t and op_state_t), described once so that code which
 * walks every table -- the Redis serialisation above all -- needs no list of
 * its own. A key is a bucket number (minute, slot), a dimension id, or
 * op_ktable_pair(bucket, dimension id). The id is part of the Redis format:
 * never renumber one; a new table takes a new id. */
typedef struct op_table_desc {
    uint8_t id;
    int8_t dim;     /* op_dim_t of the key's name part, or -1 (a plain bucket) */
    uint8_t paired; /* key = op_ktable_pair(bucket, name id) */
    const char *name;
    size_t shard_off, state_off;
} op_table_desc_t;

extern const op_table_desc_t op_tables[];
extern const int op_ntables;

static inline op_ktable_t *op_table_in_shard(const op_table_desc_t *d, op_shard_t *s)
{
    return (op_ktable_t *)((char *)s + d->shard_off);
}
static inline const op_ktable_t *op_table_in_state(const op_table_desc_t *d, const op_state_t *st)
{
    return (const op_ktable_t *)((const char *)st + d->state_off);
}

void op_state_init(op_state_t *st, op_intern_t *dict);
void op_state_dispose(op_state_t *st);

/* Lets merges of at least min_users users (0: the default, 65 536) spread
 * over the threads of f (fanout.h), which the caller owns and keeps alive
 * while the state merges; NULL: every merge on the caller's thread. */
void op_state_set_fanout(op_state_t *st, struct op_fanout *f, uint32_t min_users);

/* Adds a shard's deltas. now_ms: monotonic clock, for partition idleness.
 * A shard with `last` set marks the partitions its worker read finished. */
void op_state_merge(op_state_t *st, const op_shard_t *s, int64_t now_ms);
/* The same for a shard the caller owns and clears next: into a state
 * without users yet (the first tick, a replay) it takes the shard's user
 * table rather than copying it, and leaves the shard an empty one. */
void op_state_merge_taking(op_state_t *st, op_shard_t *s, int64_t now_ms);

/* Adds to one user's cumulative amount and orders (loading from Redis),
 * keeping the top-K exact. amount must be >= 0. */
void op_state_add_user(op_state_t *st, const char *name, size_t len, int64_t amount,
                       int64_t orders);

/* Recomputes the global watermark: the minimum over partitions active within
 * idle_ms and not finished of (max event time - lateness_ms). When no
 * partition is left to hold it back -- every one idle or finished, or at_end
 * (the input is exhausted) -- it becomes max event time - lateness. It never
 * moves back. */
void op_state_advance_watermark(op_state_t *st, int64_t lateness_ms, int64_t idle_ms,
                                int64_t now_ms, int at_end);

/* Drops minute, slot and day windows that end before watermark - retention_ms,
 * but for the users' days (op_state_evict_user_days). */
void op_state_evict(op_state_t *st, int64_t retention_ms);

/* Adds the waiting user-day figures of merges into user_days (and their keys
 * into rewrite.user_days where the day was final at the merge). Whoever
 * reads user_days calls it first. */
void op_state_settle_days(op_state_t *st);

/* op_state_evict for user_days: the merger calls it after the archive took
 * the tick's user-day rows (op_archive_offer_users), which come after the
 * tick's snapshot. */
void op_state_evict_user_days(op_state_t *st, int64_t retention_ms);

/* Window states, as the snapshot shows them. */
typedef enum op_window_state {
    OP_WINDOW_OPEN = 0, /* the watermark has not passed its end */
    OP_WINDOW_FINAL,    /* closed, and unchanged since */
    OP_WINDOW_REVISED,  /* closed, then changed by orders that came later */
} op_window_state_t;

/* The state of the window [start_ms, start_ms + len_ms) (len_ms: a minute
 * or a slot). all_closed: the input is exhausted (--once): nothing is open. */
op_window_state_t op_state_window(const op_state_t *st, int64_t start_ms, int64_t len_ms,
                                  int all_closed);

/* Remembers (now_ms, orders) for the rate: called when the merger starts
 * (the base, after the state was loaded) and once per published snapshot.
 * now_ms: monotonic. */
void op_state_note_tick(op_state_t *st, int64_t now_ms);

/* Orders per second, in hundredths, over the samples of the last
 * OP_STATE_RATE_WINDOW_MS (at least the last tick). 0 before two samples. */
int64_t op_state_rate_centi(const op_state_t *st);

/* Top-K users, best first. out must have room for OP_STATE_TOPK entries;
 * returns min(k, users in the top-K). */
uint32_t op_state_top_users(const op_state_t *st, uint32_t *out, uint32_t k);

/* Ranking order of two user entries: negative if a ranks before b. */
int op_state_user_cmp(const op_state_t *st, uint32_t a, uint32_t b);

#endif
