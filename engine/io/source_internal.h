/* source_internal.h — what source.c shares with the two kinds of source.
 *
 * op_source_t and op_input_t are small headers embedded as the first member
 * of each implementation's own structs (source_file.c, source_kafka.c);
 * source.c dispatches through the ops table, once per batch, never per
 * record. Not for use outside engine/source*.c.
 */
#ifndef OP_SOURCE_INTERNAL_H
#define OP_SOURCE_INTERNAL_H

#include "engine/source.h"

typedef struct op_source_ops {
    op_input_t *(*input)(op_source_t *src, int i);
    int (*next)(op_input_t *in, op_batch_t *batch, int timeout_ms);
    void (*release)(op_input_t *in, op_batch_t *batch);
    int64_t (*lag)(op_source_t *src);
    void (*close)(op_source_t *src);
    /* Optional (NULL: no partitions, never fails). */
    int (*partitions)(op_source_t *src, op_source_part_t *out, int max);
    int (*failed)(op_source_t *src);
} op_source_ops_t;

/* Immutable after open. */
struct op_source {
    const op_source_ops_t *ops;
};

/* Immutable after open; the implementation's fields that follow it are
 * owned by the input's worker. */
struct op_input {
    op_source_t *src;
};

/* Same contract as op_source_open, conf already checked (nworkers >= 1,
 * batch_max >= 1). */
int op_source_file_open(op_source_t **out, const op_source_conf_t *conf, char *err, size_t errlen);
int op_source_kafka_open(op_source_t **out, const op_source_conf_t *conf, char *err, size_t errlen);

/* snprintf into err (if any) and return code; for the open paths. */
int op_source_error(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
