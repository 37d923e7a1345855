/* rdkafka_tsan.h — lets ThreadSanitizer see librdkafka's threads and locks.
 *
 * Debian's librdkafka 2.0.2 uses C11 threads (thrd_create, mtx_lock,
 * cnd_wait...), which glibc implements by calling its internal pthread
 * functions directly, so gcc 12's TSan runtime never sees them: librdkafka's
 * threads have no TSan state and crash on their first malloc, and its locks
 * order nothing. In TSan builds only, the modules that create librdkafka
 * handles (source_kafka.c, deadletter.c) include this header, which defines
 * those C11 functions on top of the pthread ones that TSan intercepts; the
 * executable's definitions take precedence over glibc's for librdkafka.so.
 * glibc's C11 types are the pthread ones underneath, so the casts are exact.
 * Weak, so that the copies in several objects resolve to one (a test or
 * binary that needs other TSan suppressions should define its own
 * __tsan_default_suppressions including this one). Release and ASan builds
 * compile nothing from here.
 */
#ifndef OP_RDKAFKA_TSAN_H
#define OP_RDKAFKA_TSAN_H

#if defined(__SANITIZE_THREAD__)
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

struct op_tsan_thrd {
    thrd_start_t fn;
    void *arg;
};

static void *op_tsan_thrd_main(void *p)
{
    struct op_tsan_thrd t = *(struct op_tsan_thrd *)p;
    free(p);
    return (void *)(intptr_t)t.fn(t.arg);
}

static int op_tsan_thrd_rc(int rc)
{
    return rc == 0           ? thrd_success
           : rc == ETIMEDOUT ? thrd_timedout
           : rc == EBUSY     ? thrd_busy
           : rc == ENOMEM    ? thrd_nomem
                             : thrd_error;
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg) __attribute__((weak));
int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
    struct op_tsan_thrd *t = malloc(sizeof(*t));
    if (!t)
        return thrd_nomem;
    t->fn = fn;
    t->arg = arg;
    int rc = pthread_create(thr, NULL, op_tsan_thrd_main, t);
    if (rc)
        free(t);
    return op_tsan_thrd_rc(rc);
}

int thrd_join(thrd_t thr, int *res) __attribute__((weak));
int thrd_join(thrd_t thr, int *res)
{
    void *r;
    int rc = pthread_join(thr, &r);
    if (rc == 0 && res)
        *res = (int)(intptr_t)r;
    return op_tsan_thrd_rc(rc);
}

int mtx_lock(mtx_t *m) __attribute__((weak));
int mtx_lock(mtx_t *m)
{
    return op_tsan_thrd_rc(pthread_mutex_lock((pthread_mutex_t *)m));
}

int mtx_unlock(mtx_t *m) __attribute__((weak));
int mtx_unlock(mtx_t *m)
{
    return op_tsan_thrd_rc(pthread_mutex_unlock((pthread_mutex_t *)m));
}

int cnd_wait(cnd_t *c, mtx_t *m) __attribute__((weak));
int cnd_wait(cnd_t *c, mtx_t *m)
{
    return op_tsan_thrd_rc(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}

int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m, const struct timespec *restrict ts)
    __attribute__((weak));
int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m, const struct timespec *restrict ts)
{
    return op_tsan_thrd_rc(pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, ts));
}

int cnd_signal(cnd_t *c) __attribute__((weak));
int cnd_signal(cnd_t *c)
{
    return op_tsan_thrd_rc(pthread_cond_signal((pthread_cond_t *)c));
}

/* What TSan still cannot see are librdkafka's own atomics (its reference
 * counts), so it reports librdkafka freeing its objects after a count
 * dropped on another thread. Reports with a librdkafka frame are silenced;
 * races between two stacks of our code are still reported. */
const char *__tsan_default_suppressions(void) __attribute__((weak));
const char *__tsan_default_suppressions(void)
{
    return "race:librdkafka.so\n";
}

int cnd_broadcast(cnd_t *c) __attribute__((weak));
int cnd_broadcast(cnd_t *c)
{
    return op_tsan_thrd_rc(pthread_cond_broadcast((pthread_cond_t *)c));
}
#endif

#endif
