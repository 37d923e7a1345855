/* fanout.c — the fork-join team of fanout.h.
 *
 * A job is a generation number: run bumps it under the mutex and
 * broadcasts; helper i runs part i if the job has that many parts, then
 * counts itself done and the last one wakes the caller.
 */
#include "engine/fanout.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct helper {
    op_fanout_t *team;
    int part;
    pthread_t thread;
} helper_t;

struct op_fanout {
    int width;
    helper_t helpers[OP_FANOUT_MAX];
    int started; /* helpers running */
    /* Guarded by mu: the job, its generation, and how many parts are still
     * running. */
    pthread_mutex_t mu;
    pthread_cond_t go;   /* helpers wait here for the next generation */
    pthread_cond_t done; /* the caller waits here for running == 0 */
    unsigned long gen;
    int parts, running, stop;
    op_fanout_cb fn;
    void *arg;
};

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
        if (h->part >= f->parts)
            continue;
        op_fanout_cb fn = f->fn;
        void *job = f->arg;
        pthread_mutex_unlock(&f->mu);
        fn(job, h->part);
        pthread_mutex_lock(&f->mu);
        if (--f->running == 0)
            pthread_cond_signal(&f->done);
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
        f->helpers[i] = (helper_t){.team = f, .part = i};
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
    if (parts > f->width)
        parts = f->width;
    if (parts > 1) {
        pthread_mutex_lock(&f->mu);
        f->fn = fn;
        f->arg = arg;
        f->parts = parts;
        f->running = parts - 1;
        f->gen++;
        pthread_cond_broadcast(&f->go);
        pthread_mutex_unlock(&f->mu);
    }
    fn(arg, 0);
    if (parts > 1) {
        pthread_mutex_lock(&f->mu);
        while (f->running)
            pthread_cond_wait(&f->done, &f->mu);
        pthread_mutex_unlock(&f->mu);
    }
}
