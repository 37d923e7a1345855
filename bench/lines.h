/* lines.h — load a JSONL file into memory, padded, and index its lines.
 *
 * Shared by the parse benchmarks (C and C++) so both measure exactly the
 * same bytes: the file is read once, with 64 zero bytes after it (the
 * padding simdjson requires), and each line is (offset, length).
 */
#ifndef OP_BENCH_LINES_H
#define OP_BENCH_LINES_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct op_bench_lines {
    char *buf; /* the file, then OP_BENCH_PADDING zero bytes */
    size_t size;
    size_t *off, *len;
    size_t n;
} op_bench_lines_t;

#define OP_BENCH_PADDING 64

/* Returns 0, or -1 with a message on stderr. */
int op_bench_lines_load(op_bench_lines_t *l, const char *path);
void op_bench_lines_free(op_bench_lines_t *l);
double op_bench_now(void); /* monotonic seconds */
double op_bench_cpu(void); /* this thread's CPU seconds (not counting time others ran) */

#ifdef __cplusplus
}
#endif

#endif
