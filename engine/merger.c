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

    /* Merger thread only: */
    op_state_t st;
    op_snapshot_pub_t pub;
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
    op_state_init(&m->st, conf->dict);
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
    pthread_mutex_destroy(&m->bell_mu);
    pthread_cond_destroy(&m->bell);
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

static void merge_one(op_merger_t *m, op_shard_t *s)
{
    op_state_merge(&m->st, s, op_now_mono_ms());
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

static void write_snapshot_file(const char *path, const op_snapshot_t *s)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    const op_jarray_t *doc = &s->res[OP_RES_SNAPSHOT];
    int ok = fwrite(doc->buf, 1, doc->len, f) == doc->len;
    ok &= fclose(f) == 0;
    if (ok)
        rename(tmp, path);
}

static void publish(op_merger_t *m, uint64_t tick, int at_end)
{
    int64_t now = op_now_mono_ms();
    op_state_advance_watermark(&m->st, m->conf.lateness_ms, m->conf.idle_ms, now, at_end);
    op_state_evict(&m->st, m->conf.retention_ms);
    op_snapshot_meta_t meta = {
        .tick = tick,
        .as_of_ms = op_now_wall_ms(),
        .lag = m->conf.src ? op_source_lag(m->conf.src) : 0,
        .all_final = at_end,
    };
    op_snapshot_t *s = op_snapshot_render(&m->st, &meta);
    if (m->conf.snapshot_file)
        write_snapshot_file(m->conf.snapshot_file, s);
    op_snapshot_publish(&m->pub, s);
}

static void *merger_main(void *arg)
{
    op_merger_t *m = arg;
    rcu_register_thread();
    int64_t next = op_now_mono_ms() + m->conf.tick_ms;
    while (!stopping(m)) {
        wait_tick(m, next);
        if (stopping(m))
            break;
        uint64_t epoch = __atomic_add_fetch(&m->epoch, 1, __ATOMIC_ACQ_REL);
        collect(m, epoch);
        int at_end = m->conf.once && m->ndone == m->conf.nworkers;
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
