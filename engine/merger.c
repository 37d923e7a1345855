/* merger.c — the tick loop: hand-over, merge, render, publish (see merger.h).
 *
 * The merger sleeps until the next tick (or until a worker's input ends),
 * advances the epoch, then collects one shard from every running worker.
 * Workers notice a new epoch at their next batch boundary, which is at most
 * one batch or one input timeout away, so collecting polls the queue with a
 * short sleep rather than a wake-up per shard: it is off the hot path.
 */
#include "engine/merger.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <urcu.h>
#include <urcu/wfcqueue.h>

#include "engine/io/redis.h"
#include "engine/util.h"

#define COLLECT_POLL_US 200

typedef struct merger_queue {
    struct cds_wfcq_head head;
    struct cds_wfcq_tail tail;
} merger_queue_t;

struct op_merger {
    op_merger_conf_t conf;
    uint64_t epoch; /* see the table in merger.h */
    int stop;       /* __atomic */
    merger_queue_t full;
    merger_queue_t *spare; /* one per worker */
    op_shard_t **first;    /* the shards workers start with */

    /* The doorbell a worker rings with its final shard. */
    pthread_mutex_t bell_mu;
    pthread_cond_t bell;
    int bell_rung;

    pthread_t thread;
    int started;
    int running; /* __atomic: 1 from start until merger_main returns */

    /* __atomic, workers read once per batch: [0] backpressure (merger
     * writes), [1] a rebalance in progress (the source's poll thread). */
    int paused[2];
    /* Sync requests (op_merger_sync), under bell_mu: */
    uint64_t sync_requested, sync_served;
    int sync_result;
    pthread_cond_t synced;
    int fenced;   /* __atomic: merger writes, main reads */
    int redis_ok; /* __atomic: the last flush reached Redis (merger writes, /readyz reads) */

    /* Merger thread only: */
    op_shard_t *pending; /* with Redis: merged shards not yet committed */
    int64_t *committed;  /* with Redis: next offset per partition as Redis holds it */
    int64_t *expected;   /* flush_pending's copy of committed[] */
    int64_t last_error_log_ms;
    int64_t last_flush_ms;
    int snapshot_file_failing; /* the last write of --snapshot-file failed (reported) */
    op_state_t st;
    op_intern_cache_t view_cache; /* --view redis: names read back from Redis */
    op_snapshot_pub_t pub;
    int64_t merge_ns;       /* time spent merging shards since the last publish */
    op_hist_t tick_hist;    /* merge + render time per tick, for /metrics */
    op_hist_t flush_hist;   /* time of each Redis flush, for /metrics */
    uint64_t *handed_epoch; /* per worker: epoch of its last shard */
    int *done;              /* per worker: its final shard was merged */
    int ndone;
};

static void queue_init(merger_queue_t *q)
{
    cds_wfcq_init(&q->head, &q->tail);
}

/* The queue orders the hand-over already; the release/acquire pair on
 * handoff says so in a form ThreadSanitizer can see (liburcu is not
 * instrumented). It costs one store and one load per shard per tick. */
static void queue_put(merger_queue_t *q, op_shard_t *s)
{
    cds_wfcq_node_init(&s->qnode);
    __atomic_store_n(&s->handoff, s->handoff + 1, __ATOMIC_RELEASE);
    cds_wfcq_enqueue(&q->head, &q->tail, &s->qnode);
}

static op_shard_t *queue_take(merger_queue_t *q)
{
    struct cds_wfcq_node *n = cds_wfcq_dequeue_blocking(&q->head, &q->tail);
    if (!n)
        return NULL;
    op_shard_t *s = caa_container_of(n, op_shard_t, qnode);
    (void)__atomic_load_n(&s->handoff, __ATOMIC_ACQUIRE);
    return s;
}

int op_merger_create(op_merger_t **out, const op_merger_conf_t *conf)
{
    op_merger_t *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->conf = *conf;
    m->redis_ok = 1;
    queue_init(&m->full);
    m->spare = calloc((size_t)conf->nworkers, sizeof(*m->spare));
    m->first = calloc((size_t)conf->nworkers, sizeof(*m->first));
    m->handed_epoch = calloc((size_t)conf->nworkers, sizeof(*m->handed_epoch));
    m->done = calloc((size_t)conf->nworkers, sizeof(*m->done));
    if (!m->spare || !m->first || !m->handed_epoch || !m->done) {
        op_merger_destroy(m);
        return -ENOMEM;
    }
    for (int i = 0; i < conf->nworkers; i++) {
        queue_init(&m->spare[i]);
        m->first[i] = op_shard_create(i);
        queue_put(&m->spare[i], op_shard_create(i));
    }
    pthread_mutex_init(&m->bell_mu, NULL);
    pthread_cond_init(&m->bell, NULL);
    pthread_cond_init(&m->synced, NULL);
    op_state_init(&m->st, conf->dict);
    op_intern_cache_init(&m->view_cache, conf->dict);
    if (conf->redis) {
        m->pending = op_shard_create(-1);
        m->committed = malloc(OP_SOURCE_MAX_PARTITIONS * sizeof(*m->committed));
        m->expected = malloc(OP_SOURCE_MAX_PARTITIONS * sizeof(*m->expected));
        if (!m->committed || !m->expected) {
            op_merger_destroy(m);
            return -ENOMEM;
        }
        for (int p = 0; p < OP_SOURCE_MAX_PARTITIONS; p++)
            m->committed[p] = -1;
    }
    *out = m;
    return 0;
}

void op_merger_destroy(op_merger_t *m)
{
    if (!m)
        return;
    op_snapshot_pub_dispose(&m->pub);
    op_shard_t *s;
    while ((s = queue_take(&m->full)))
        op_shard_destroy(s);
    for (int i = 0; m->spare && i < m->conf.nworkers; i++) {
        while ((s = queue_take(&m->spare[i])))
            op_shard_destroy(s);
        cds_wfcq_destroy(&m->spare[i].head, &m->spare[i].tail);
    }
    cds_wfcq_destroy(&m->full.head, &m->full.tail);
    op_state_dispose(&m->st);
    op_intern_cache_dispose(&m->view_cache);
    op_shard_destroy(m->pending);
    free(m->committed);
    free(m->expected);
    pthread_mutex_destroy(&m->bell_mu);
    pthread_cond_destroy(&m->bell);
    pthread_cond_destroy(&m->synced);
    free(m->spare);
    free(m->first);
    free(m->handed_epoch);
    free(m->done);
    free(m);
}

op_snapshot_pub_t *op_merger_pub(op_merger_t *m)
{
    return &m->pub;
}

op_shard_t *op_merger_first_shard(op_merger_t *m, int worker)
{
    op_shard_t *s = m->first[worker];
    m->first[worker] = NULL;
    return s;
}

const uint64_t *op_merger_epoch_ptr(op_merger_t *m)
{
    return &m->epoch;
}

op_shard_t *op_merger_take_spare(op_merger_t *m, int worker)
{
    if (cds_wfcq_empty(&m->spare[worker].head, &m->spare[worker].tail))
        return NULL;
    return queue_take(&m->spare[worker]);
}

static void ring(op_merger_t *m)
{
    pthread_mutex_lock(&m->bell_mu);
    m->bell_rung = 1;
    pthread_cond_signal(&m->bell);
    pthread_mutex_unlock(&m->bell_mu);
}

void op_merger_hand_over(op_merger_t *m, op_shard_t *s)
{
    int last = s->last;
    queue_put(&m->full, s);
    if (last)
        ring(m);
}

void op_merger_stop(op_merger_t *m)
{
    __atomic_store_n(&m->stop, 1, __ATOMIC_RELEASE);
    ring(m);
}

static int stopping(op_merger_t *m)
{
    return __atomic_load_n(&m->stop, __ATOMIC_ACQUIRE);
}

/* Sleeps until deadline (monotonic ms), a ring, or stop. */
static void wait_tick(op_merger_t *m, int64_t deadline_ms)
{
    int64_t wall_deadline = op_now_wall_ms() + (deadline_ms - op_now_mono_ms());
    struct timespec ts = {.tv_sec = wall_deadline / 1000,
                          .tv_nsec = (wall_deadline % 1000) * 1000000};
    pthread_mutex_lock(&m->bell_mu);
    while (!m->bell_rung && !stopping(m) && op_now_mono_ms() < deadline_ms)
        if (pthread_cond_timedwait(&m->bell, &m->bell_mu, &ts) == ETIMEDOUT)
            break;
    m->bell_rung = 0;
    pthread_mutex_unlock(&m->bell_mu);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void merge_one(op_merger_t *m, op_shard_t *s)
{
    int64_t t0 = mono_ns();
    if (m->pending)
        op_shard_add(m->pending, s);
    else
        op_state_merge(&m->st, s, op_now_mono_ms());
    m->merge_ns += mono_ns() - t0;
    m->handed_epoch[s->worker] = s->epoch;
    if (s->last) {
        m->done[s->worker] = 1;
        m->ndone++;
        op_shard_destroy(s);
        return;
    }
    op_shard_clear(s);
    queue_put(&m->spare[s->worker], s);
}

/* Merges shards until every running worker has handed over for epoch. */
static void collect(op_merger_t *m, uint64_t epoch)
{
    for (;;) {
        op_shard_t *s;
        while ((s = queue_take(&m->full)))
            merge_one(m, s);
        int missing = 0;
        for (int i = 0; i < m->conf.nworkers; i++)
            missing += !m->done[i] && m->handed_epoch[i] < epoch;
        if (!missing || stopping(m))
            return;
        usleep(COLLECT_POLL_US);
    }
}

/* --- Redis --------------------------------------------------------------------- */

int op_merger_load(op_merger_t *m, char *err, size_t errlen)
{
    op_intern_cache_t cache;
    op_intern_cache_init(&cache, m->conf.dict);
    int rc = op_redis_load(m->conf.redis, &m->st, &cache, 0, err, errlen);
    op_intern_cache_dispose(&cache);
    if (rc < 0)
        return rc;
    return op_redis_offsets(m->conf.redis, OP_SOURCE_MAX_PARTITIONS, m->committed, err, errlen);
}

void op_merger_set_source(op_merger_t *m, op_source_t *src)
{
    m->conf.src = src;
}

int op_merger_redis_ok(op_merger_t *m)
{
    return !m->conf.redis || __atomic_load_n(&m->redis_ok, __ATOMIC_ACQUIRE);
}

int op_merger_fenced(op_merger_t *m)
{
    return __atomic_load_n(&m->fenced, __ATOMIC_ACQUIRE);
}

const int *op_merger_paused_ptr(op_merger_t *m)
{
    return m->paused;
}

void op_merger_set_rebalancing(op_merger_t *m, int on)
{
    __atomic_store_n(&m->paused[1], on, __ATOMIC_RELEASE);
}

void op_merger_set_committed(op_merger_t *m, int32_t p, int64_t offset)
{
    if (m->committed && p >= 0 && p < OP_SOURCE_MAX_PARTITIONS)
        __atomic_store_n(&m->committed[p], offset, __ATOMIC_RELEASE);
}

int op_merger_sync(op_merger_t *m, int timeout_ms)
{
    int64_t deadline = op_now_wall_ms() + timeout_ms;
    struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000};
    pthread_mutex_lock(&m->bell_mu);
    uint64_t mine = ++m->sync_requested;
    m->bell_rung = 1;
    pthread_cond_signal(&m->bell);
    int rc = 0;
    while (m->sync_served < mine && !stopping(m) && rc == 0)
        rc = pthread_cond_timedwait(&m->synced, &m->bell_mu, &ts);
    int result = m->sync_served >= mine ? m->sync_result : -ETIMEDOUT;
    pthread_mutex_unlock(&m->bell_mu);
    return result;
}

/* Called by the merger after a tick's flush: answers the sync requests
 * made before the tick began. */
static void sync_answer(op_merger_t *m, uint64_t served, int result)
{
    pthread_mutex_lock(&m->bell_mu);
    if (served > m->sync_served) {
        m->sync_served = served;
        m->sync_result = result;
        pthread_cond_broadcast(&m->synced);
    }
    pthread_mutex_unlock(&m->bell_mu);
}

static int pending_empty(const op_shard_t *p)
{
    return op_shard_next_touched(p, 0) < 0;
}

/* The pending deltas are in Redis: they become part of the state. */
static void commit_pending(op_merger_t *m)
{
    op_shard_t *p = m->pending;
    op_state_merge(&m->st, p, op_now_mono_ms());
    for (int32_t q = op_shard_next_touched(p, 0); q >= 0; q = op_shard_next_touched(p, q + 1))
        __atomic_store_n(&m->committed[q], p->parts[q].next_offset, __ATOMIC_RELEASE);
    op_shard_clear(p);
    __atomic_store_n(&m->paused[0], 0, __ATOMIC_RELEASE);
}

/* After a rejected flush: was it rejected because an earlier attempt did
 * commit, and only its reply was lost? Then Redis holds our new offsets. */
static int flush_already_committed(op_merger_t *m)
{
    char err[256];
    int64_t *now = malloc(OP_SOURCE_MAX_PARTITIONS * sizeof(*now));
    int yes = now &&
              op_redis_offsets(m->conf.redis, OP_SOURCE_MAX_PARTITIONS, now, err, sizeof(err)) == 0;
    const op_shard_t *p = m->pending;
    for (int32_t q = op_shard_next_touched(p, 0); yes && q >= 0;
         q = op_shard_next_touched(p, q + 1))
        yes = now[q] == p->parts[q].next_offset;
    free(now);
    return yes;
}

static void flush_pending(op_merger_t *m)
{
    /* The poll thread updates committed[] at assignments: a copy, so the
     * flush sees one consistent set of fences. */
    int64_t *expected = m->expected;
    for (int q = 0; q < OP_SOURCE_MAX_PARTITIONS; q++)
        expected[q] = __atomic_load_n(&m->committed[q], __ATOMIC_ACQUIRE);
    if (pending_empty(m->pending))
        return;
    char err[512];
    int64_t t0 = op_now_mono_ms();
    int64_t f0 = mono_ns();
    int rc = op_redis_flush(m->conf.redis, m->pending, m->conf.dict, expected, err, sizeof(err));
    op_hist_observe(&m->flush_hist, (uint64_t)(mono_ns() - f0) / 1000);
    m->last_flush_ms = op_now_mono_ms() - t0;
    __atomic_store_n(&m->redis_ok, rc >= 0, __ATOMIC_RELEASE);
    if (rc == 0) {
        commit_pending(m);
        return;
    }
    if (rc == OP_REDIS_FENCED) {
        if (flush_already_committed(m)) {
            commit_pending(m);
            return;
        }
        fprintf(stderr,
                "orderpulse: redis rejected a flush (%s): the partitions belong to another "
                "process now; stopping so that a restart resumes from Redis\n",
                err);
        __atomic_store_n(&m->fenced, 1, __ATOMIC_RELEASE);
        __atomic_store_n(&m->stop, 1, __ATOMIC_RELEASE);
        return;
    }
    /* Redis unreachable: keep the deltas, retry next tick; past the bound,
     * make the workers wait rather than grow without limit. */
    int64_t now = op_now_mono_ms();
    if (now - m->last_error_log_ms >= 5000) {
        fprintf(stderr, "orderpulse: %s; keeping %u pending users, retrying every tick\n", err,
                m->pending->users.count);
        m->last_error_log_ms = now;
    }
    if (m->conf.pending_max_users > 0 && m->pending->users.count >= m->conf.pending_max_users)
        __atomic_store_n(&m->paused[0], 1, __ATOMIC_RELEASE);
}

/* A failed write is reported once, and once more when writes work again:
 * one line per change, not one per tick. */
static void write_snapshot_file(op_merger_t *m, const op_snapshot_t *s)
{
    const char *path = m->conf.snapshot_file;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int err = f ? 0 : errno;
    if (f) {
        const op_jarray_t *doc = &s->res[OP_RES_SNAPSHOT];
        if (fwrite(doc->buf, 1, doc->len, f) != doc->len)
            err = errno ? errno : EIO;
        if (fclose(f) != 0 && !err)
            err = errno;
        if (!err && rename(tmp, path) != 0)
            err = errno;
    }
    if (err && !m->snapshot_file_failing)
        fprintf(stderr, "orderpulse: --snapshot-file: cannot write %s: %s (reported once)\n", path,
                strerror(err));
    else if (!err && m->snapshot_file_failing)
        fprintf(stderr, "orderpulse: --snapshot-file: writing %s again\n", path);
    m->snapshot_file_failing = err != 0;
}

/* --view redis: the global figures as Redis holds them, with this process's
 * event-time view (watermark) on top. NULL if Redis cannot be read: the
 * caller then shows the local state rather than nothing. */
static op_snapshot_t *render_redis_view(op_merger_t *m, const op_snapshot_meta_t *meta)
{
    char err[512];
    op_state_t v;
    op_state_init(&v, m->conf.dict);
    int rc = op_redis_load(m->conf.redis, &v, &m->view_cache, OP_STATE_TOPK, err, sizeof(err));
    op_snapshot_t *s = NULL;
    if (rc == 0) {
        op_state_copy_progress(&v, &m->st);
        op_state_evict(&v, m->conf.retention_ms);
        s = op_snapshot_render(&v, meta);
    } else {
        int64_t now = op_now_mono_ms();
        if (now - m->last_error_log_ms >= 5000) {
            fprintf(stderr, "orderpulse: --view redis: %s; showing the local state\n", err);
            m->last_error_log_ms = now;
        }
    }
    op_state_dispose(&v);
    return s;
}

static void publish(op_merger_t *m, uint64_t tick, int at_end)
{
    int64_t t0 = mono_ns();
    int64_t now = op_now_mono_ms();
    op_state_advance_watermark(&m->st, m->conf.lateness_ms, m->conf.idle_ms, now, at_end);
    op_state_evict(&m->st, m->conf.retention_ms);
    op_state_note_tick(&m->st, now);
    op_snapshot_meta_t meta = {
        .tick = tick,
        .as_of_ms = op_now_wall_ms(),
        .lag = m->conf.src ? op_source_lag(m->conf.src) : 0,
        .all_final = at_end,
        .tick_ms = m->conf.tick_ms,
        .display_tz_offset_s = m->conf.display_tz_offset_s,
        .src = m->conf.src,
    };
    op_snapshot_t *s = m->conf.view_redis ? render_redis_view(m, &meta) : NULL;
    if (!s)
        s = op_snapshot_render(&m->st, &meta);
    op_hist_observe(&m->tick_hist, (uint64_t)(m->merge_ns + mono_ns() - t0) / 1000);
    m->merge_ns = 0;
    s->tick_hist = m->tick_hist;
    s->flush_hist = m->flush_hist;
    if (m->conf.snapshot_file)
        write_snapshot_file(m, s);
    op_snapshot_publish(&m->pub, s);
    if (m->conf.on_publish)
        m->conf.on_publish(m->conf.on_publish_arg);
}

static void *merger_main(void *arg)
{
    op_merger_t *m = arg;
    rcu_register_thread();
    op_state_note_tick(&m->st, op_now_mono_ms()); /* the rate's base */
    int64_t next = op_now_mono_ms() + m->conf.tick_ms;
    while (!stopping(m)) {
        wait_tick(m, next);
        if (stopping(m))
            break;
        pthread_mutex_lock(&m->bell_mu);
        uint64_t serving = m->sync_requested;
        pthread_mutex_unlock(&m->bell_mu);
        uint64_t epoch = __atomic_add_fetch(&m->epoch, 1, __ATOMIC_ACQ_REL);
        collect(m, epoch);
        if (m->pending)
            flush_pending(m);
        sync_answer(m, serving, !m->pending || pending_empty(m->pending) ? 0 : -EIO);
        if (stopping(m))
            break;
        /* With Redis, the input is only finished once its deltas are in. */
        int at_end = m->conf.once && m->ndone == m->conf.nworkers &&
                     (!m->pending || pending_empty(m->pending));
        publish(m, epoch, at_end);
        if (at_end) {
            if (m->conf.on_final)
                m->conf.on_final(m->conf.on_final_arg);
            break;
        }
        int64_t now = op_now_mono_ms();
        next += m->conf.tick_ms;
        if (next <= now)
            next = now + m->conf.tick_ms;
    }
    rcu_unregister_thread();
    __atomic_store_n(&m->running, 0, __ATOMIC_RELEASE);
    return NULL;
}

int op_merger_running(op_merger_t *m)
{
    return __atomic_load_n(&m->running, __ATOMIC_ACQUIRE);
}

int op_merger_start(op_merger_t *m)
{
    __atomic_store_n(&m->running, 1, __ATOMIC_RELEASE);
    int rc = pthread_create(&m->thread, NULL, merger_main, m);
    if (rc) {
        __atomic_store_n(&m->running, 0, __ATOMIC_RELEASE);
        return -rc;
    }
    m->started = 1;
    return 0;
}

void op_merger_join(op_merger_t *m)
{
    if (m->started) {
        pthread_join(m->thread, NULL);
        m->started = 0;
    }
}
