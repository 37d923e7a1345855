/* fanout.c — the fork-join team of fanout.h.
 *
 * A job is a generation number: run bumps it under the mutex and
 * broadcasts; the caller and every helper then take the job's parts one
 * at a time, the next one not yet taken, until none is left; the thread
 * that finishes the last part wakes the caller. Taking parts as they come,
 * rather than part i on thread i: a team thread that shares its core with
 * a worker still reading, or with another team thread (the scheduler puts
 * a woken helper beside its waker now and then), takes fewer parts
 * instead of holding up the whole job (seen: a 17 ms merge taking 45 ms
 * with both of its halves on one core).
 */
#include "engine/fanout.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct helper {
    op_fanout_t *team;
    pthread_t thread;
} helper_t;

struct op_fanout {
    int width;
    helper_t helpers[OP_FANOUT_MAX];
    int started; /* helpers running */
    /* Guarded by mu: the job, its generation, the next part to take, and
     * how many parts are not finished. */
    pthread_mutex_t mu;
    pthread_cond_t go;   /* helpers wait here for the next generation */
    pthread_cond_t done; /* the caller waits here for unfinished == 0 */
    unsigned long gen;
    int parts, next, unfinished, stop;
    op_fanout_cb fn;
    void *arg;
};

/* Runs parts of the current job until none is left to take. Called and
 * returns with mu held; runs each part without it. */
static void take_parts(op_fanout_t *f)
{
    while (f->next < f->parts) {
        int part = f->next++;
        op_fanout_cb fn = f->fn;
        void *job = f->arg;
        pthread_mutex_unlock(&f->mu);
        fn(job, part);
        pthread_mutex_lock(&f->mu);
        if (--f->unfinished == 0)
            pthread_cond_signal(&f->done);
    }
}

static void *helper_main(void *arg)
{
    helper_t *h = arg;
    op_fanout_t *f = h->team;
    unsigned long seen = 0;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (f->gen == seen && !f->stop)
            pthread_cond_wait(&f->go, &f->mu);
        if (f->stop)
            break;
        seen = f->gen;
        take_parts(f);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

int op_fanout_create(op_fanout_t **out, int width)
{
    if (width < 1 || width > OP_FANOUT_MAX)
        return -EINVAL;
    op_fanout_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->width = width;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->go, NULL);
    pthread_cond_init(&f->done, NULL);
    for (int i = 1; i < width; i++) {
        f->helpers[i] = (helper_t){.team = f};
        int rc = pthread_create(&f->helpers[i].thread, NULL, helper_main, &f->helpers[i]);
        if (rc) {
            op_fanout_destroy(f);
            return -rc;
        }
        f->started = i;
        char name[16];
        snprintf(name, sizeof(name), "op-merge-%d", i);
        pthread_setname_np(f->helpers[i].thread, name);
    }
    *out = f;
    return 0;
}

void op_fanout_destroy(op_fanout_t *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_cond_broadcast(&f->go);
    pthread_mutex_unlock(&f->mu);
    for (int i = 1; i <= f->started; i++)
        pthread_join(f->helpers[i].thread, NULL);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->go);
    pthread_cond_destroy(&f->done);
    free(f);
}

int op_fanout_width(const op_fanout_t *f)
{
    return f->width;
}

void op_fanout_run(op_fanout_t *f, int parts, op_fanout_cb fn, void *arg)
{
    if (parts <= 1 || f->width == 1) { /* no one to wake */
        for (int p = 0; p < parts; p++)
            fn(arg, p);
        return;
    }
    pthread_mutex_lock(&f->mu);
    f->fn = fn;
    f->arg = arg;
    f->parts = parts;
    f->next = 0;
    f->unfinished = parts;
    f->gen++;
    pthread_cond_broadcast(&f->go);
    take_parts(f);
    while (f->unfinished)
        pthread_cond_wait(&f->done, &f->mu);
    pthread_mutex_unlock(&f->mu);
}
