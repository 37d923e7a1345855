/* source_file.c — records from a JSONL file, for replays and benchmarks.
 *
 * The file is mapped read-only and cut into contiguous chunks at line
 * boundaries -- one per worker, or conf->chunks of them (with Redis the
 * count is fixed per file, so that a replay with another --workers resumes
 * the same chunks) -- read in parallel without sharing anything: chunk i
 * belongs to worker i % nworkers. A chunk plays the part of a partition (its
 * id is its index) and a line's byte offset plays the part of the Kafka
 * offset; conf->start_offset says where each chunk resumes (the first line
 * starting at or after that offset). Lines are handed out in place
 * (zero-copy): the mapping lives until op_source_close.
 *
 * A line is everything up to a '\n' (not included, nor a '\r' just before
 * it); an empty line is a record of length 0 (the parser counts it as bad),
 * but the empty string after the final '\n' is not a record. The last line
 * needs no '\n'.
 *
 * Out of memory: open returns -ENOMEM; next/release never allocate.
 */
#include "engine/io/source_internal.h"

#include "engine/hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

typedef struct file_chunk {
    const char *cur; /* next line to hand out */
    const char *end; /* end of the chunk: just after a '\n', or the end of the file */
} file_chunk_t;

/* One worker's chunks. Owner: that worker (cur moves, and which chunk it
 * reads); the rest is set at open. Cache-line aligned so that neighbouring
 * workers do not share lines. */
typedef struct file_input {
    alignas(64) op_input_t base;
    const char *cur;      /* next line to hand out in the current chunk */
    const char *end;      /* end of the current chunk */
    const char *map;      /* start of the mapping, for offsets */
    int32_t partition;    /* the current chunk */
    int32_t stride;       /* the next chunk of this worker is partition + stride */
    file_chunk_t *chunks; /* every chunk of the file (shared, read-only) */
    int32_t nchunks;
    size_t batch_max;
    op_record_t *recs; /* batch_max records, reused for every batch */
} file_input_t;

/* Immutable after open; closed by main() after the workers stopped. */
typedef struct file_source {
    op_source_t base;
    char *map; /* NULL for an empty file */
    size_t size;
    int nworkers;
    file_input_t *inputs; /* nworkers, aligned */
    file_chunk_t *chunks; /* nchunks */
    int32_t nchunks;
} file_source_t;

static op_input_t *file_input(op_source_t *src, int i)
{
    file_source_t *fs = (file_source_t *)src;
    if (i < 0 || i >= fs->nworkers)
        return NULL;
    return &fs->inputs[i].base;
}

/* Record n is the line [cur, stop); stop is its '\n', or the end of the
 * chunk for a last line without one (which keeps a final '\r'). */
static inline void add_line(file_input_t *fi, size_t n, const char *cur, const char *stop,
                            int newline)
{
    size_t len = (size_t)(stop - cur);
    if (newline && len > 0 && stop[-1] == '\r')
        len--;
    op_record_t *r = &fi->recs[n];
    r->buf = cur;
    r->len = len;
    r->partition = fi->partition;
    r->offset = (int64_t)(cur - fi->map);
}

/* Splits up to batch_max lines off [*curp, end). Returns how many. */
static size_t split_memchr(file_input_t *fi, const char **curp, const char *end)
{
    const char *cur = *curp;
    size_t n = 0;
    while (n < fi->batch_max && cur < end) {
        const char *nl = memchr(cur, '\n', (size_t)(end - cur));
        add_line(fi, n++, cur, nl ? nl : end, nl != NULL);
        cur = nl ? nl + 1 : end;
    }
    *curp = cur;
    return n;
}

#if defined(__x86_64__)
/* The same, 64 bytes at a time: one compare gives the newlines of a block
 * as bits, and every line ending in it is one bit to clear. No call and no
 * alignment prologue per line, as memchr has; the block past the chunk's
 * end is read with a masked load, which does not touch the bytes it leaves
 * out. */
__attribute__((target("avx512f,avx512bw,bmi"))) static size_t
split_avx512(file_input_t *fi, const char **curp, const char *end)
{
    const __m512i nl = _mm512_set1_epi8('\n');
    const char *cur = *curp, *blk = cur;
    size_t n = 0;
    uint64_t bits = 0;
    int more = 1; /* blocks left at blk */
    while (n < fi->batch_max && cur < end) {
        while (!bits && more) {
            size_t left = (size_t)(end - blk);
            __mmask64 valid = left >= 64 ? ~0ULL : (1ULL << left) - 1;
            bits = _mm512_mask_cmpeq_epi8_mask(valid, _mm512_maskz_loadu_epi8(valid, blk), nl);
            if (!bits) {
                blk += 64;
                more = blk < end;
            }
        }
        if (!bits) { /* the last line, without a '\n' */
            add_line(fi, n++, cur, end, 0);
            cur = end;
            break;
        }
        const char *at = blk + __builtin_ctzll(bits);
        bits &= bits - 1;
        add_line(fi, n++, cur, at, 1);
        cur = at + 1;
        if (!bits) {
            blk += 64;
            more = blk < end;
        }
    }
    *curp = cur;
    return n;
}

static int have_avx512 = -1; /* __atomic, relaxed: every thread computes the same */

static size_t split(file_input_t *fi, const char **curp, const char *end)
{
    int a = __atomic_load_n(&have_avx512, __ATOMIC_RELAXED);
    if (a < 0) {
        a = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
        __atomic_store_n(&have_avx512, a, __ATOMIC_RELAXED);
    }
    return a ? split_avx512(fi, curp, end) : split_memchr(fi, curp, end);
}
#else
static size_t split(file_input_t *fi, const char **curp, const char *end)
{
    return split_memchr(fi, curp, end);
}
#endif

static int file_next(op_input_t *in, op_batch_t *batch, int timeout_ms)
{
    file_input_t *fi = (file_input_t *)in;
    (void)timeout_ms;
    while (fi->cur == fi->end) { /* the next chunk of this worker, if any */
        if (fi->partition + fi->stride >= fi->nchunks)
            return OP_INPUT_EOF;
        fi->partition += fi->stride;
        fi->cur = fi->chunks[fi->partition].cur;
        fi->end = fi->chunks[fi->partition].end;
    }
    const char *cur = fi->cur, *end = fi->end;
    size_t n = split(fi, &cur, end);
    /* Map the page tables of what the next call will read, now: the worker
     * prefetches a batch ahead while it parses this one (worker.c), and a
     * prefetch of a page not mapped yet is dropped, so without this the
     * line split below would wait for memory at every batch. One call per
     * batch instead of a fault per 64 KiB; refused (old kernel): harmless. */
#ifdef MADV_POPULATE_READ
    if (cur < end) {
        uintptr_t from = (uintptr_t)cur & ~(uintptr_t)4095;
        size_t span = (size_t)(cur - fi->cur);
        uintptr_t to = (uintptr_t)(cur + span < end ? cur + span : end);
        if (to > from)
            (void)madvise((void *)from, (size_t)(to - from), MADV_POPULATE_READ);
    }
#endif
    fi->cur = cur;
    batch->recs = fi->recs;
    batch->n = n;
    batch->priv = NULL;
    return (int)n;
}

static void file_release(op_input_t *in, op_batch_t *batch)
{
    (void)in;
    batch->n = 0;
}

static int64_t file_lag(op_source_t *src)
{
    (void)src;
    return 0;
}

static void file_close(op_source_t *src)
{
    file_source_t *fs = (file_source_t *)src;
    if (fs->inputs) {
        for (int i = 0; i < fs->nworkers; i++)
            free(fs->inputs[i].recs);
        free(fs->inputs);
    }
    free(fs->chunks);
    if (fs->map)
        munmap(fs->map, fs->size);
    free(fs);
}

static const op_source_ops_t file_ops = {
    .input = file_input,
    .next = file_next,
    .release = file_release,
    .lag = file_lag,
    .close = file_close,
};

/* Where chunk i (0 < i < n) starts: the first line start at or after i/n of
 * the file, never before the previous chunk's start. */
static size_t chunk_start(const char *map, size_t size, int i, int n, size_t prev)
{
    size_t pos = (size_t)((unsigned __int128)size * (unsigned)i / (unsigned)n);
    if (pos < prev)
        pos = prev;
    if (pos == 0 || pos >= size || map[pos - 1] == '\n')
        return pos;
    const char *nl = memchr(map + pos, '\n', size - pos);
    return nl ? (size_t)(nl - map) + 1 : size;
}

/* The first line start at or after pos, before end (or end). */
static size_t line_at_or_after(const char *map, size_t end, size_t pos)
{
    if (pos == 0 || map[pos - 1] == '\n')
        return pos;
    const char *nl = memchr(map + pos, '\n', end - pos);
    return nl ? (size_t)(nl - map) + 1 : end;
}

int op_source_file_open(op_source_t **out, const op_source_conf_t *conf, char *err, size_t errlen)
{
    int rc, fd = -1;
    int n = conf->nworkers;
    file_source_t *fs = NULL;

    if (n > OP_SOURCE_MAX_PARTITIONS || conf->chunks > OP_SOURCE_MAX_PARTITIONS)
        return op_source_error(err, errlen, -EINVAL,
                               "source: at most %d workers or chunks for a file source",
                               OP_SOURCE_MAX_PARTITIONS);
    fs = calloc(1, sizeof(*fs));
    if (!fs)
        return op_source_error(err, errlen, -ENOMEM, "source: out of memory");
    fs->base.ops = &file_ops;
    fs->nworkers = n;

    struct stat st;
    fd = open(conf->file, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        rc = op_source_error(err, errlen, -e, "cannot open %s: %s", conf->file, strerror(e));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc =
            op_source_error(err, errlen, -EINVAL, "cannot open %s: not a regular file", conf->file);
        goto fail;
    }
    fs->size = (size_t)st.st_size;
    if (fs->size > 0) { /* mmap refuses a length of 0: an empty file has no mapping */
        void *m = mmap(NULL, fs->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            rc = op_source_error(err, errlen, -e, "cannot open %s: mmap: %s", conf->file,
                                 strerror(e));
            goto fail;
        }
        fs->map = m;
        madvise(fs->map, fs->size, MADV_SEQUENTIAL); /* a hint; failure is harmless */
    }
    close(fd);
    fd = -1;

    /* The chunks, and where each resumes. */
    int nc = conf->chunks > 0 ? conf->chunks : n;
    fs->nchunks = nc;
    fs->chunks = calloc((size_t)nc, sizeof(*fs->chunks));
    if (!fs->chunks) {
        rc = op_source_error(err, errlen, -ENOMEM, "source: out of memory");
        goto fail;
    }
    size_t start = 0;
    for (int c = 0; c < nc; c++) {
        size_t stop = c + 1 < nc ? chunk_start(fs->map, fs->size, c + 1, nc, start) : fs->size;
        size_t from = start;
        int64_t off;
        if (conf->start_offset) {
            if ((rc = conf->start_offset(conf->start_opaque, c, &off)) < 0) {
                op_source_error(err, errlen, rc, "source: %s: chunk %d: no start offset",
                                conf->file, c);
                goto fail;
            }
            if (off > (int64_t)from)
                from = off >= (int64_t)stop ? stop : line_at_or_after(fs->map, stop, (size_t)off);
        }
        fs->chunks[c].cur = fs->map ? fs->map + from : NULL;
        fs->chunks[c].end = fs->map ? fs->map + stop : NULL;
        start = stop;
    }

    size_t bytes = ((size_t)n * sizeof(file_input_t) + 63) & ~(size_t)63;
    fs->inputs = aligned_alloc(64, bytes);
    if (!fs->inputs) {
        rc = op_source_error(err, errlen, -ENOMEM, "source: out of memory");
        goto fail;
    }
    memset(fs->inputs, 0, bytes);
    for (int i = 0; i < n; i++) {
        file_input_t *fi = &fs->inputs[i];
        fi->base.src = &fs->base;
        fi->map = fs->map;
        fi->chunks = fs->chunks;
        fi->nchunks = nc;
        fi->stride = n;
        fi->partition = i;
        fi->cur = i < nc ? fs->chunks[i].cur : NULL;
        fi->end = i < nc ? fs->chunks[i].end : NULL;
        if (i >= nc)
            fi->partition = nc; /* no chunk: EOF at once */
        fi->batch_max = conf->batch_max;
        fi->recs = calloc(conf->batch_max, sizeof(op_record_t));
        if (!fi->recs) {
            rc = op_source_error(err, errlen, -ENOMEM, "source: out of memory");
            goto fail;
        }
    }
    *out = &fs->base;
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    file_close(&fs->base);
    return rc;
}

int op_source_file_fingerprint(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    /* Size, and the hash of the first and last 64 KiB: enough to tell files
     * apart, cheap for files of any size. */
    enum { EDGE = 65536 };
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return op_source_error(err, errlen, -e, "cannot open %s: %s", path, strerror(e));
    }
    char *buf = malloc(2 * EDGE);
    if (!buf) {
        close(fd);
        return op_source_error(err, errlen, -ENOMEM, "source: out of memory");
    }
    size_t size = (size_t)st.st_size, head = size < EDGE ? size : EDGE;
    size_t tail = size - head < EDGE ? size - head : EDGE;
    ssize_t a = pread(fd, buf, head, 0);
    ssize_t b = tail ? pread(fd, buf + head, tail, (off_t)(size - tail)) : 0;
    close(fd);
    if (a != (ssize_t)head || b != (ssize_t)tail) {
        free(buf);
        return op_source_error(err, errlen, -EIO, "cannot read %s", path);
    }
    uint64_t h = op_hash_bytes(buf, head + tail);
    free(buf);
    snprintf(out, outlen, "file:%016llx-%zu", (unsigned long long)h, size);
    return 0;
}
