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

#include "engine/fanout.h"
#include "engine/io/archive.h"
#include "engine/io/redis_sink.h"
#include "engine/util.h"

#define COLLECT_POLL_US 200
#define SYNC_GRACE_MS   1000

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
    /* Under bell_mu: sync requests (op_merger_sync) and the reasons to tick
     * before the deadline. Requests are numbered; sync_tick (0: none) is the
     * tick whose commit serves those up to sync_upto. Only a tick whose epoch
     * was advanced after the merger saw a request may serve it: the workers
     * hand over for that epoch only after they took what they read before
     * the request (and, held for a rebalance, nothing after it). An older
     * tick's commit would leave those records pending in their shards. */
    uint64_t sync_requested, sync_served;
    uint64_t sync_tick, sync_upto;
    int sync_result;
    int final_rung; /* a worker handed over its final shard */
    pthread_cond_t synced;
    int verdict;  /* __atomic: OP_MERGER_REWIND / _FATAL (merger writes, main reads) */
    int redis_ok; /* __atomic: for /readyz (merger writes) */

    /* Merger thread only: */
    int64_t last_flush_ms;
    int snapshot_file_failing; /* the last write of --snapshot-file failed (reported) */
    op_state_t st;
    op_fanout_t *team; /* the state's helpers for big merges (NULL: 1 worker); created and
                          destroyed by main, run by the merger */
    op_snapshot_pub_t own_pub;
    op_snapshot_pub_t *pub; /* conf.pub, or own_pub */
    int64_t merge_ns;       /* time spent merging shards since the last publish */
    op_hist_t tick_hist;    /* merge + render time per tick, for /metrics */
    op_hist_t flush_hist;   /* unused since the sink has its own thread; kept for /metrics */
    uint64_t *handed_epoch; /* per worker: epoch of its last shard */
    int *done;              /* per worker: its final shard was merged */
    int ndone;
    int64_t inputs_ended_ms; /* the latest ended_ms of the final shards merged */
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
    m->pub = conf->pub ? conf->pub : &m->own_pub;
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
    m->st.tz_ms = conf->tz_ms;
    /* As many threads as workers for the big merges: their cores are the
     * ones free when the last shards of a run come in. */
    int width = conf->nworkers < OP_FANOUT_MAX ? conf->nworkers : OP_FANOUT_MAX;
    if (width > 1) {
        int rc = op_fanout_create(&m->team, width);
        if (rc < 0) {
            op_merger_destroy(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

void op_merger_destroy(op_merger_t *m)
{
    if (!m)
        return;
    op_snapshot_pub_dispose(&m->own_pub);
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
    op_fanout_destroy(m->team);
    pthread_mutex_destroy(&m->bell_mu);
    pthread_cond_destroy(&m->bell);
    pthread_cond_destroy(&m->synced);
    free(m->spare);
    for (int i = 0; m->first && i < m->conf.nworkers; i++)
        op_shard_destroy(m->first[i]); /* no worker took it */
    free(m->first);
    free(m->handed_epoch);
    free(m->done);
    free(m);
}

op_snapshot_pub_t *op_merger_pub(op_merger_t *m)
{
    return m->pub;
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
    if (last) {
        pthread_mutex_lock(&m->bell_mu);
        m->final_rung = 1;
        pthread_mutex_unlock(&m->bell_mu);
        ring(m);
    }
}

void op_merger_wake(op_merger_t *m)
{
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

static void merge_one(op_merger_t *m, op_shard_t *s, uint64_t tick)
{
    int64_t t0 = mono_ns();
    /* The sink encodes the shard's deltas before the state may take its
     * user table. */
    if (m->conf.sink)
        op_redis_sink_add_shard(m->conf.sink, s, tick);
    op_state_merge_taking(&m->st, s, op_now_mono_ms());
    m->merge_ns += mono_ns() - t0;
    m->handed_epoch[s->worker] = s->epoch;
    if (s->last) {
        if (s->ended_ms > m->inputs_ended_ms)
            m->inputs_ended_ms = s->ended_ms;
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
            merge_one(m, s, epoch);
        int missing = 0;
        for (int i = 0; i < m->conf.nworkers; i++)
            missing += !m->done[i] && m->handed_epoch[i] < epoch;
        if (!missing || stopping(m))
            return;
        usleep(COLLECT_POLL_US);
    }
}

/* --- Redis and rebalances ---------------------------------------------------------- */

op_state_t *op_merger_state(op_merger_t *m)
{
    return &m->st;
}

void op_merger_set_source(op_merger_t *m, op_source_t *src)
{
    m->conf.src = src;
}

int op_merger_redis_ok(op_merger_t *m)
{
    return !m->conf.sink || __atomic_load_n(&m->redis_ok, __ATOMIC_ACQUIRE);
}

int op_merger_verdict(op_merger_t *m)
{
    return __atomic_load_n(&m->verdict, __ATOMIC_ACQUIRE);
}

const int *op_merger_paused_ptr(op_merger_t *m)
{
    return m->paused;
}

void op_merger_set_rebalancing(op_merger_t *m, int on)
{
    __atomic_store_n(&m->paused[1], on, __ATOMIC_RELEASE);
}

int op_merger_sync(op_merger_t *m, int timeout_ms)
{
    int64_t start = op_now_mono_ms();
    pthread_mutex_lock(&m->bell_mu);
    uint64_t mine = ++m->sync_requested;
    m->bell_rung = 1;
    pthread_cond_signal(&m->bell);
    int rc = -ETIMEDOUT;
    for (;;) {
        if (m->sync_served >= mine) {
            rc = m->sync_result;
            break;
        }
        int64_t waited = op_now_mono_ms() - start;
        if (stopping(m) || waited >= timeout_ms)
            break;
        /* With Redis failing there is no point in waiting long for the
         * commit: what is pending stays pending, and the fences decide at
         * the next commit. But not before the tick that collects what the
         * workers took is merged (sync_upto): a claim resumes after what is
         * merged, so a record still in a worker's shard would be read again. */
        if (waited >= SYNC_GRACE_MS && !op_merger_redis_ok(m) && m->sync_upto >= mine) {
            rc = -EIO;
            break;
        }
        int64_t deadline = op_now_wall_ms() + 100;
        struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000};
        pthread_cond_timedwait(&m->synced, &m->bell_mu, &ts);
    }
    pthread_mutex_unlock(&m->bell_mu);
    return rc;
}

/* Merger thread, after tick (0: after only booking the sink's events):
 * covers is the number of requests made before tick's epoch advanced
 * (tick_due); they are served once that tick is in Redis (or right away
 * without Redis). Later requests wait for a later tick. */
static void sync_check(op_merger_t *m, uint64_t tick, uint64_t covers)
{
    pthread_mutex_lock(&m->bell_mu);
    if (tick && covers > m->sync_upto) {
        m->sync_tick = tick; /* collected all the earlier requests want, too */
        m->sync_upto = covers;
    }
    if (m->sync_tick &&
        (!m->conf.sink || op_redis_sink_committed_through(m->conf.sink, m->sync_tick))) {
        m->sync_served = m->sync_upto;
        m->sync_result = 0;
        m->sync_tick = 0;
        pthread_cond_broadcast(&m->synced);
    }
    pthread_mutex_unlock(&m->bell_mu);
}

/* Books the sink's events; submits the next package when the sink is free.
 * Returns 0, or stops the merger when Redis asks for a rewind or a stop. */
static int sink_step(op_merger_t *m, uint64_t tick)
{
    int64_t now = op_now_mono_ms();
    op_redis_sink_need_t need = op_redis_sink_tick(m->conf.sink, &m->st, tick, now);
    if (need != OP_REDIS_SINK_RUN) {
        __atomic_store_n(&m->verdict,
                         need == OP_REDIS_SINK_REWIND ? OP_MERGER_REWIND : OP_MERGER_FATAL,
                         __ATOMIC_RELEASE);
        __atomic_store_n(&m->stop, 1, __ATOMIC_RELEASE);
        return -1;
    }
    op_redis_sink_lag_t lag;
    op_redis_sink_lag(m->conf.sink, now, &lag);
    int paused = m->conf.pending_max_users > 0 && lag.records >= m->conf.pending_max_users;
    __atomic_store_n(&m->paused[0], paused, __ATOMIC_RELEASE);
    int64_t max_lag = m->conf.redis_max_lag_ms > 0 ? m->conf.redis_max_lag_ms : 30000;
    __atomic_store_n(&m->redis_ok, lag.ok && !paused && lag.oldest_ms <= max_lag, __ATOMIC_RELEASE);
    return 0;
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

static void publish(op_merger_t *m, uint64_t tick, int at_end)
{
    int64_t t0 = mono_ns();
    int64_t now = op_now_mono_ms();
    op_state_advance_watermark(&m->st, m->conf.lateness_ms, m->conf.idle_ms, now, at_end);
    if (m->conf.archive) /* the windows that became final, or that late orders changed */
        op_archive_offer(m->conf.archive, &m->st, at_end);
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
    if (m->conf.sink) {
        op_redis_sink_lag_t lag;
        op_redis_sink_lag(m->conf.sink, now, &lag);
        meta.redis = (op_snapshot_redis_t){.on = 1,
                                           .ok = lag.ok,
                                           .behind_ticks = lag.ticks,
                                           .behind_records = lag.records,
                                           .behind_ms = lag.oldest_ms,
                                           .commits = lag.commits,
                                           .rewinds = m->conf.rewinds};
        op_redis_sink_commit_hist(m->conf.sink, &m->flush_hist);
    }
    if (m->conf.archive) {
        op_archive_stats_t as;
        op_archive_stats(m->conf.archive, &as);
        meta.archive = (op_snapshot_archive_t){1, as.connected, as.pending_rows, as.written_rows,
                                               as.dropped_rows};
    }
    op_snapshot_t *s = op_snapshot_render(&m->st, &meta);
    op_hist_observe(&m->tick_hist, (uint64_t)(m->merge_ns + mono_ns() - t0) / 1000);
    m->merge_ns = 0;
    s->tick_hist = m->tick_hist;
    s->flush_hist = m->flush_hist;
    if (m->conf.snapshot_file)
        write_snapshot_file(m, s);
    op_snapshot_publish(m->pub, s);
    if (m->conf.on_publish)
        m->conf.on_publish(m->conf.on_publish_arg);
}

/* The users' days, after the tick's snapshot is out (and after --once's
 * final one was announced): neither the dashboard nor the end of a run
 * waits for them. */
static void after_publish(op_merger_t *m)
{
    if (m->conf.archive)
        op_archive_offer_users(m->conf.archive, &m->st);
    op_state_evict_user_days(&m->st, m->conf.retention_ms);
}

/* Sleeps until the tick is due or something else wakes the merger; returns 1
 * when a tick must run now (deadline, a sync request, a worker's final shard,
 * or every worker done and waiting for Redis), 0 when only the sink's events
 * need booking. *covers: the sync requests made so far, which the tick run
 * next may serve (its epoch advances after this look). */
static int tick_due(op_merger_t *m, int64_t deadline_ms, uint64_t *covers)
{
    wait_tick(m, deadline_ms);
    pthread_mutex_lock(&m->bell_mu);
    int due = m->final_rung || m->sync_requested > m->sync_served;
    m->final_rung = 0;
    *covers = m->sync_requested;
    pthread_mutex_unlock(&m->bell_mu);
    return due || op_now_mono_ms() >= deadline_ms || m->ndone == m->conf.nworkers;
}

static void *merger_main(void *arg)
{
    op_merger_t *m = arg;
    rcu_register_thread();
    /* Here, not at create: a restore from Redis re-initialises the state. */
    op_state_set_fanout(&m->st, m->team, 0);
    op_state_note_tick(&m->st, op_now_mono_ms()); /* the rate's base */
    int64_t next = op_now_mono_ms() + m->conf.tick_ms;
    uint64_t epoch = 0;
    while (!stopping(m)) {
        uint64_t covers;
        int due = tick_due(m, next, &covers);
        if (stopping(m))
            break;
        if (!due) {
            if (m->conf.sink && sink_step(m, epoch) < 0)
                break;
            sync_check(m, 0, 0);
            continue;
        }
        epoch = __atomic_add_fetch(&m->epoch, 1, __ATOMIC_ACQ_REL);
        collect(m, epoch);
        if (stopping(m))
            break;
        int64_t now = op_now_mono_ms();
        op_state_advance_watermark(&m->st, m->conf.lateness_ms, m->conf.idle_ms, now, 0);
        op_state_evict(&m->st, m->conf.retention_ms);
        if (m->conf.sink && sink_step(m, epoch) < 0)
            break;
        sync_check(m, epoch, covers);
        /* With Redis, the input is only finished once it is all in Redis. */
        int at_end = m->conf.once && m->ndone == m->conf.nworkers &&
                     (!m->conf.sink || op_redis_sink_drained(m->conf.sink));
        publish(m, epoch, at_end);
        if (at_end && m->conf.on_final)
            m->conf.on_final(m->conf.on_final_arg, m->inputs_ended_ms);
        after_publish(m);
        if (at_end)
            break;
        now = op_now_mono_ms();
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
