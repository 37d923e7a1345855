/* lines.c — see lines.h. */
#include "bench/lines.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int op_bench_lines_load(op_bench_lines_t *l, const char *path)
{
    memset(l, 0, sizeof(*l));
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    l->buf = calloc((size_t)size + OP_BENCH_PADDING, 1);
    if (!l->buf || fread(l->buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", path);
        fclose(f);
        return -1;
    }
    fclose(f);
    l->size = (size_t)size;
    size_t cap = 1024;
    l->off = malloc(cap * sizeof(size_t));
    l->len = malloc(cap * sizeof(size_t));
    for (size_t pos = 0; pos < l->size;) {
        char *nl = memchr(l->buf + pos, '\n', l->size - pos);
        size_t end = nl ? (size_t)(nl - l->buf) : l->size;
        if (l->n == cap) {
            cap *= 2;
            l->off = realloc(l->off, cap * sizeof(size_t));
            l->len = realloc(l->len, cap * sizeof(size_t));
        }
        l->off[l->n] = pos;
        l->len[l->n++] = end - pos;
        pos = end + 1;
    }
    return 0;
}

void op_bench_lines_free(op_bench_lines_t *l)
{
    free(l->buf);
    free(l->off);
    free(l->len);
}

double op_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double op_bench_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}
