/* source.c — the public face of the record sources (source.h).
 *
 * Checks the configuration, picks the file or the Kafka implementation and
 * forwards each call through its ops table. The implementations live in
 * source_file.c and source_kafka.c.
 */
#include "engine/io/source_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#define DEFAULT_BATCH_MAX 1024

int op_source_error(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

int op_source_open(op_source_t **out, const op_source_conf_t *conf, char *err, size_t errlen)
{
    *out = NULL;
    if (conf->nworkers < 1)
        return op_source_error(err, errlen, -EINVAL, "source: need at least one worker, got %d",
                               conf->nworkers);
    op_source_conf_t c = *conf;
    if (c.batch_max == 0)
        c.batch_max = DEFAULT_BATCH_MAX;
    if (c.batch_max > (size_t)1 << 24)
        return op_source_error(err, errlen, -EINVAL, "source: batch size %zu is too large",
                               c.batch_max);
    if (c.file)
        return op_source_file_open(out, &c, err, errlen);
    return op_source_kafka_open(out, &c, err, errlen);
}

op_input_t *op_source_input(op_source_t *src, int i)
{
    return src->ops->input(src, i);
}

void op_source_close(op_source_t *src)
{
    if (src)
        src->ops->close(src);
}

int op_input_next(op_input_t *in, op_batch_t *batch, int timeout_ms)
{
    batch->losses = NULL; /* the file source never has any */
    batch->nlosses = 0;
    return in->src->ops->next(in, batch, timeout_ms);
}

void op_input_release(op_input_t *in, op_batch_t *batch)
{
    in->src->ops->release(in, batch);
}

int64_t op_source_lag(op_source_t *src)
{
    return src->ops->lag(src);
}

int op_source_partitions(op_source_t *src, op_source_part_t *out, int max)
{
    return src->ops->partitions ? src->ops->partitions(src, out, max) : 0;
}

int op_source_failed(op_source_t *src)
{
    return src->ops->failed ? src->ops->failed(src) : 0;
}
