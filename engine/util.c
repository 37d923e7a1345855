/* util.c — aborting allocators and clocks (see util.h). */
#include "engine/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void oom(size_t n)
{
    fprintf(stderr, "orderpulse: out of memory allocating %zu bytes\n", n);
    abort();
}

void *op_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *op_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *op_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t op_now_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t op_now_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

void op_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}
