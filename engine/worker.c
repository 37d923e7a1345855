/* worker.c — the hot path: batch → parse → shard (see worker.h).
 *
 * Per order: one parse, three dimension-id lookups in the worker's private
 * cache, a handful of table updates in the active shard. Lateness is decided
 * here, per partition, from the worker's own record of the partition's
 * largest event time: a partition is read by one worker at a time, in order,
 * so the decision needs nobody else and is the same on every replay.
 */
#include "engine/worker.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu.h>

#include "engine/hash.h"
#include "engine/shard.h"
#include "engine/util.h"

#define INPUT_TIMEOUT_MS 50

#define unlikely(x) __builtin_expect(!!(x), 0)

#define RING 8 /* records in flight in add_batch: a power of two above its ADD */

/* One record between parsing and adding. A name the parser had to unescape
 * lives in its scratch, which the next parse overwrites: such names are
 * copied here (rare: producers seldom escape names). */
typedef struct parsed {
    const op_record_t *r;
    op_order_t o;
    int rc;
    uint64_t user_hash;
    char names[4][OP_PARSE_MAX_NAME];
} parsed_t;

struct op_worker {
    op_worker_conf_t conf;
    pthread_t thread;
    int started;
    int stop; /* __atomic: set by any thread, read once per batch */

    /* Worker thread only: */
    op_parser_t parser;
    parsed_t ring[RING]; /* add_batch's records in flight */
    op_intern_cache_t cache;
    op_shard_t *active;
    uint64_t epoch;
    const uint64_t *merger_epoch;
    const int *merger_paused;
    int64_t part_max[OP_SOURCE_MAX_PARTITIONS];   /* largest event time per partition */
    uint64_t claim_gen[OP_SOURCE_MAX_PARTITIONS]; /* the claims.h gen part_max[p] comes from */
};

int op_worker_create(op_worker_t **out, const op_worker_conf_t *conf)
{
    op_worker_t *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->conf = *conf;
    op_parse_init(&w->parser, conf->tz_offset_s);
    op_intern_cache_init(&w->cache, conf->dict);
    for (int p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++)
        w->part_max[p] = INT64_MIN;
    w->merger_epoch = op_merger_epoch_ptr(conf->merger);
    w->merger_paused = op_merger_paused_ptr(conf->merger);
    w->active = op_merger_first_shard(conf->merger, conf->id);
    *out = w;
    return 0;
}

void op_worker_destroy(op_worker_t *w)
{
    if (!w)
        return;
    op_intern_cache_dispose(&w->cache);
    op_shard_destroy(w->active);
    free(w);
}

/* At a batch boundary: on a new epoch, hand the active shard over if the
 * spare is back (otherwise keep adding and try at the next boundary). */
static void maybe_tick(op_worker_t *w)
{
    uint64_t e = op_merger_epoch(w->merger_epoch);
    if (e == w->epoch)
        return;
    op_shard_t *spare = op_merger_take_spare(w->conf.merger, w->conf.id);
    if (!spare)
        return;
    w->active->epoch = e;
    op_merger_hand_over(w->conf.merger, w->active);
    w->active = spare;
    w->epoch = e;
}

static void reject(op_worker_t *w, op_shard_t *s, int reason, const op_record_t *r)
{
    s->bad[reason]++;
    if (w->conf.dead_letters &&
        op_deadletter_put(w->conf.dead_letters, op_shard_bad_reason_name(reason), r->buf, r->len,
                          r->partition, r->offset) < 0)
        s->dead_letter_errors++;
}

static inline void tally_add(op_tally_t *t, int64_t qty, int64_t amount)
{
    t->orders++;
    t->quantity += qty;
    t->amount += amount;
}

/* A batch goes through three stages, a few records apart, so that the user
 * table's cache misses overlap instead of following one another (at a
 * million users every lookup misses): parse record i and prefetch its index
 * line; for record i - LOCATE, whose index line has arrived, prefetch the
 * entry it points at; add record i - ADD, whose entry has arrived. */
#define LOCATE 2
#define ADD    4

static void keep_name(const op_parser_t *ps, op_str_t *s, char *buf)
{
    const char *scratch = (const char *)ps->scratch;
    if (s->ptr >= scratch && s->ptr < scratch + sizeof(ps->scratch)) {
        memcpy(buf, s->ptr, s->len);
        s->ptr = buf;
    }
}

static inline void parse_record(op_worker_t *w, const op_record_t *r, parsed_t *out)
{
    uint64_t fast = w->parser.fast_accepted;
    out->r = r;
    out->rc = op_parse_order(&w->parser, r->buf, r->len, &out->o);
    if (out->rc == 0) {
        if (unlikely(w->parser.fast_accepted == fast)) { /* the fast path never unescapes */
            keep_name(&w->parser, &out->o.user, out->names[0]);
            keep_name(&w->parser, &out->o.gender, out->names[1]);
            keep_name(&w->parser, &out->o.category, out->names[2]);
            keep_name(&w->parser, &out->o.brand, out->names[3]);
        }
        out->user_hash = op_users_hash(out->o.user.ptr, out->o.user.len);
        op_users_prefetch(&w->active->users, out->user_hash);
    }
}

static inline void locate_record(op_worker_t *w, const parsed_t *pd)
{
    if (pd->rc == 0)
        op_users_prefetch_entry(&w->active->users, pd->user_hash);
}

/* Adds a parsed record, in record order (lateness and offsets depend on it). */
static void add_record(op_worker_t *w, const parsed_t *pd)
{
    op_shard_t *s = w->active;
    const op_record_t *r = pd->r;
    const op_order_t *o = &pd->o;
    int32_t p = r->partition;
    op_shard_part_t *sp = &s->parts[p];
    s->touched[p >> 6] |= 1ULL << (p & 63);
    sp->next_offset = r->offset + 1;
    sp->records++;

    if (pd->rc < 0) {
        reject(w, s, -pd->rc, r);
        return;
    }
    int32_t g = op_intern_cache_id(&w->cache, OP_DIM_GENDER, o->gender.ptr, o->gender.len);
    int32_t c = op_intern_cache_id(&w->cache, OP_DIM_CATEGORY, o->category.ptr, o->category.len);
    int32_t b = op_intern_cache_id(&w->cache, OP_DIM_BRAND, o->brand.ptr, o->brand.len);
    if (g < 0 || c < 0 || b < 0) {
        reject(w, s, OP_BAD_TOO_MANY_NAMES, r);
        return;
    }

    int64_t *pmax = &w->part_max[p];
    if (w->conf.claims) { /* a new claim of p restarts its lateness where Redis has it */
        uint64_t gen = __atomic_load_n(&w->conf.claims->gen[p], __ATOMIC_ACQUIRE);
        if (gen != w->claim_gen[p]) {
            w->claim_gen[p] = gen;
            *pmax = __atomic_load_n(&w->conf.claims->reset_max[p], __ATOMIC_RELAXED);
        }
    }
    int late = *pmax != INT64_MIN && o->event_ms < *pmax - w->conf.lateness_ms;
    if (o->event_ms > *pmax)
        *pmax = o->event_ms;
    sp->max_event_ms = *pmax;

    tally_add(&s->totals, o->num, o->amount);
    tally_add(op_ktable_upsert(&s->brands, (uint32_t)b), o->num, o->amount);
    tally_add(op_ktable_upsert(&s->genders, (uint32_t)g), o->num, o->amount);
    uint32_t e = op_users_upsert(&s->users, o->user.ptr, o->user.len, pd->user_hash);
    op_users_add(&s->users, e, o->amount, 1);
    if (w->conf.days)
        op_shard_add_day(s, o->event_ms, (int64_t)w->conf.tz_offset_s * 1000, e, (uint32_t)g,
                         (uint32_t)b, o->num, o->amount);

    s->late += late;
    if (late && w->conf.late_drop)
        return;
    uint64_t minute = (uint64_t)(o->event_ms / OP_MINUTE_MS);
    uint64_t slot = (uint64_t)(o->event_ms / OP_SLOT_MS);
    tally_add(op_ktable_upsert(&s->minutes, minute), o->num, o->amount);
    tally_add(op_ktable_upsert(&s->catmin, op_ktable_pair(minute, (uint32_t)c)), o->num, o->amount);
    tally_add(op_ktable_upsert(&s->gslots, op_ktable_pair(slot, (uint32_t)g)), o->num, o->amount);
}

/* Records come from one buffer in order (a file mapping, a fetched Kafka
 * message set), so the next batch's bytes most likely follow this batch's
 * last record. Fetching them from memory while this batch is parsed, a
 * record's worth per record, overlaps the DRAM transfer with the parsing
 * instead of leaving the source's line split to wait for it (a guess: a
 * prefetch of a wrong address costs a little bandwidth and never faults).
 * Six lines (384 bytes) per record: a little more than an order. */
static void add_batch(op_worker_t *w, const op_batch_t *batch)
{
    parsed_t *ring = w->ring;
    size_t n = batch->n;
    /* An address, not a pointer into the record: it points past it. */
    uintptr_t ahead = n && batch->recs[n - 1].buf
                          ? (uintptr_t)batch->recs[n - 1].buf + batch->recs[n - 1].len
                          : 0;
    for (size_t i = 0; i < n + ADD; i++) {
        if (i < n) {
            if (ahead) {
                OP_USERS_PREFETCH((const char *)ahead);
                OP_USERS_PREFETCH((const char *)(ahead + 64));
                OP_USERS_PREFETCH((const char *)(ahead + 128));
                OP_USERS_PREFETCH((const char *)(ahead + 192));
                OP_USERS_PREFETCH((const char *)(ahead + 256));
                OP_USERS_PREFETCH((const char *)(ahead + 320));
                ahead += 384;
            }
            parse_record(w, &batch->recs[i], &ring[i & (RING - 1)]);
        }
        if (i >= LOCATE && i - LOCATE < n)
            locate_record(w, &ring[(i - LOCATE) & (RING - 1)]);
        if (i >= ADD)
            add_record(w, &ring[(i - ADD) & (RING - 1)]);
    }
}

static void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    /* Best effort: a container may forbid the CPU; the worker still runs. */
    (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *worker_main(void *arg)
{
    op_worker_t *w = arg;
    pin(w->conf.cpu);
    rcu_register_thread();
    while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
        maybe_tick(w);
        if (op_merger_paused(w->merger_paused)) {
            usleep(INPUT_TIMEOUT_MS * 1000 / 5);
            continue;
        }
        op_batch_t batch;
        int n = op_input_next(w->conf.input, &batch, INPUT_TIMEOUT_MS);
        if (n == OP_INPUT_EOF) {
            w->active->last = 1;
            w->active->ended_ms = op_now_mono_ms();
            w->active->epoch = w->epoch;
            op_merger_hand_over(w->conf.merger, w->active);
            w->active = NULL;
            break;
        }
        for (size_t i = 0; i < batch.nlosses; i++) /* counted with the records after the gap */
            op_shard_add_loss(w->active, &batch.losses[i], w->part_max[batch.losses[i].partition]);
        if (n <= 0)
            continue;
        add_batch(w, &batch);
        op_input_release(w->conf.input, &batch);
    }
    rcu_unregister_thread();
    return NULL;
}

int op_worker_start(op_worker_t *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc)
        return -rc;
    w->started = 1;
    return 0;
}

void op_worker_stop(op_worker_t *w)
{
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
}

void op_worker_join(op_worker_t *w)
{
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = 0;
    }
}
