/* tsan.c — thrd_create over pthread_create, for ThreadSanitizer builds only.
 *
 * The exported symbols without an op_ prefix are deliberate: thrd_create must
 * have that name to interpose glibc's (the executable's definition wins in
 * the dynamic lookup of librdkafka.so). glibc's thrd_join and thrd_detach are
 * thin wrappers over pthread_join/pthread_detach and keep working, since
 * glibc's thrd_t is a pthread_t and the exit value travels as (void *)(intptr_t).
 * __tsan_default_suppressions is a hook the TSan runtime looks up by name.
 */
#include "sim/tsan.h"

#if defined(__SANITIZE_THREAD__)
#define OP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define OP_TSAN 1
#endif
#endif

#ifdef OP_TSAN
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

/* Owner: handed from the creating thread to the new one, which frees it. */
struct start {
    thrd_start_t fn;
    void *arg;
};

static void *trampoline(void *p)
{
    struct start s = *(struct start *)p;
    free(p);
    return (void *)(intptr_t)s.fn(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg)
{
    struct start *s = malloc(sizeof(*s));
    if (!s)
        return thrd_nomem;
    s->fn = fn;
    s->arg = arg;
    int rc = pthread_create(thr, NULL, trampoline, s);
    if (rc) {
        free(s);
        return rc == EAGAIN ? thrd_nomem : thrd_error;
    }
    return thrd_success;
}

/* librdkafka is not instrumented: TSan sees the memcpy/free it makes from
 * its own threads but not the C11 mutexes and atomics that order them, and
 * reports (and slowly re-reports) races that are not there. Ignore what the
 * library does through intercepted calls; our own code stays checked. A
 * weak hook of the TSan runtime, so no TSAN_OPTIONS are needed to run. */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "called_from_lib:librdkafka.so.1\n";
}

int op_tsan_link(void)
{
    return 1;
}
#else
int op_tsan_link(void)
{
    return 0;
}
#endif
