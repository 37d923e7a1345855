/* physlimit.c — what the hardware allows one core, for the engine's ratios.
 *
 * usage: physlimit FILE [TABLE_MIB] [ROUNDS]
 *
 * Two limits, each as orders per second for FILE (a JSONL stream):
 *
 *   bandwidth   FILE mapped read-only exactly as the file source maps it
 *               (page cache, MAP_PRIVATE) and every byte read once, 64 bytes
 *               at a time: no order can be handled faster than its bytes
 *               arrive. orders/s = lines / seconds.
 *   latency     one dependent load per order: a pointer chase through a
 *               random cyclic permutation of the cache lines of a region
 *               of TABLE_MIB (default 1024, beyond the last-level cache, so
 *               every step is a DRAM access), backed by huge pages where the
 *               kernel gives them (as the engine's user tables are). A
 *               table lookup at high cardinality cannot be cheaper than one
 *               such load unless the loads overlap (memory-level
 *               parallelism), so this is the limit of an engine that
 *               waits for every user. orders/s = 1 / ns per load.
 *
 * And how far the machine's two cores scale each kind of work, two threads
 * against one (each thread doing the same work as the one alone, so 2.0 is
 * perfect): "compute" is eight independent multiply chains (the execution
 * units' throughput), "vector" the same in 512-bit registers, "latency" two pointer
 * chases at once, "bandwidth" each thread reading half of the file. The
 * 2-worker engine cannot scale further than its mix of these: two vCPUs
 * that share a physical core on the host show a compute scaling near 1.
 *
 * And what writing memory the first time costs, per MiB: "fresh" is one
 * byte written to each page of the latency table's new mapping (1 GiB,
 * far more than the runs before freed: on a VM, memory the guest has not
 * used lately is backed by the host only then, and that is most of the
 * cost), "reused" the same for a 64 MiB mapping after one was unmapped
 * (the guest hands the freed pages back out). The engine's user tables are
 * such memory: a run that holds more of them at once pays the fresh rate
 * for the difference.
 *
 * Best of ROUNDS (default 3). Prints one SUMMARY line.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__AVX512BW__) || defined(__AVX512DQ__) || defined(__AVX2__)
#include <immintrin.h>
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Reads every byte of [p, p + n); returns something that depends on all of
 * them (the count of '\n', which is also the number of lines). */
static uint64_t read_all(const char *p, size_t n)
{
    uint64_t lines = 0;
    size_t i = 0;
#if defined(__AVX512BW__)
    const __m512i nl = _mm512_set1_epi8('\n');
    for (; i + 64 <= n; i += 64)
        lines += (uint64_t)__builtin_popcountll(
            _mm512_cmpeq_epi8_mask(_mm512_loadu_si512((const void *)(p + i)), nl));
#elif defined(__AVX2__)
    const __m256i nl = _mm256_set1_epi8('\n');
    for (; i + 32 <= n; i += 32)
        lines += (uint64_t)__builtin_popcount((unsigned)_mm256_movemask_epi8(
            _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(const void *)(p + i)), nl)));
#endif
    for (; i < n; i++)
        lines += p[i] == '\n';
    return lines;
}

static uint64_t rnd_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void)
{
    uint64_t z = (rnd_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* --- two cores against one ------------------------------------------------- */

typedef struct job {
    void (*fn)(struct job *);
    const char *p; /* chase: the start; read: the bytes */
    size_t n;      /* steps, iterations or bytes */
    uint64_t out;  /* depends on all the work, so that none of it is dropped */
} job_t;

static void compute_job(job_t *j)
{
    uint64_t a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (size_t i = 0; i < j->n; i++)
        for (int k = 0; k < 8; k++)
            a[k] = a[k] * 0x9E3779B97F4A7C15ULL + (uint64_t)k;
    j->out = a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6] ^ a[7];
}

/* The same with 512-bit vector multiplies where the CPU has them (the
 * heaviest class of instruction a parse-bound pass such as simdjson's
 * runs): whether two cores running wide vector code slow each other. */
static void vector_job(job_t *j)
{
#if defined(__AVX512DQ__)
    __m512i a[8], m = _mm512_set1_epi64((long long)0x9E3779B97F4A7C15ULL);
    for (int k = 0; k < 8; k++)
        a[k] = _mm512_set1_epi64(k + 1);
    for (size_t i = 0; i < j->n; i++)
        for (int k = 0; k < 8; k++)
            a[k] = _mm512_add_epi64(_mm512_mullo_epi64(a[k], m), _mm512_set1_epi64(k));
    for (int k = 1; k < 8; k++)
        a[0] = _mm512_xor_si512(a[0], a[k]);
    j->out = (uint64_t)_mm512_reduce_add_epi64(a[0]);
#else
    compute_job(j);
#endif
}

static void chase_job(job_t *j)
{
    const char *p = j->p;
    for (size_t i = 0; i < j->n; i++)
        p = *(const char *const *)p;
    j->out = (uint64_t)(uintptr_t)p;
}

static void read_job(job_t *j)
{
    j->out = read_all(j->p, j->n);
}

static void *job_thread(void *arg)
{
    job_t *j = arg;
    j->fn(j);
    return NULL;
}

/* Seconds for a alone, and for a and b at once (best of rounds each);
 * returns 2 * alone / together: how much more two threads get done. */
static double scaling(job_t *a, job_t *b, int rounds)
{
    double alone = 1e30, both = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        a->fn(a);
        double dt = now() - t0;
        if (dt < alone)
            alone = dt;
        pthread_t t;
        t0 = now();
        if (pthread_create(&t, NULL, job_thread, b) != 0)
            return 0;
        a->fn(a);
        pthread_join(t, NULL);
        dt = now() - t0;
        if (dt < both)
            both = dt;
    }
    return 2 * alone / both;
}

/* Milliseconds to write one byte to each page of m. */
static double touch_pages(char *m, size_t bytes)
{
    double t0 = now();
    for (size_t i = 0; i < bytes; i += 4096)
        ((volatile char *)m)[i] = 0;
    return (now() - t0) * 1e3;
}

/* touch_pages of a new TOUCH_MIB mapping; -1 if it cannot be mapped. */
#define TOUCH_MIB 64
static double touch_ms(void)
{
    size_t bytes = (size_t)TOUCH_MIB << 20;
    char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    madvise(m, bytes, MADV_HUGEPAGE);
    double ms = touch_pages(m, bytes);
    munmap(m, bytes);
    return ms;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: physlimit FILE [TABLE_MIB] [ROUNDS]\n");
        return 2;
    }
    size_t table_mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 1024;
    int rounds = argc > 3 ? atoi(argv[3]) : 3;

    double reused_ms = touch_ms(); /* the first may be fresh */
    for (int r = 0; r < rounds; r++) {
        double ms = touch_ms();
        if (ms < reused_ms)
            reused_ms = ms;
    }
    if (reused_ms < 0) {
        fprintf(stderr, "physlimit: cannot map %d MiB\n", TOUCH_MIB);
        return 1;
    }

    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0) {
        fprintf(stderr, "physlimit: cannot open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    size_t size = (size_t)st.st_size;
    uint64_t lines = 0;
    double best_bw = 1e30;
    for (int r = 0; r < rounds; r++) {
        /* A fresh mapping per round, as each engine run makes one. */
        double t0 = now();
        const char *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            fprintf(stderr, "physlimit: mmap: %s\n", strerror(errno));
            return 1;
        }
        madvise((void *)map, size, MADV_SEQUENTIAL);
        lines = read_all(map, size);
        munmap((void *)map, size);
        double dt = now() - t0;
        if (dt < best_bw)
            best_bw = dt;
    }
    close(fd);
    if (size && lines == 0)
        lines = 1;

    /* The chase: one 8-byte pointer per 64-byte line, Sattolo's shuffle so
     * the permutation is one cycle through every line. */
    size_t bytes = table_mib << 20, nlines = bytes / 64;
    char *region = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) {
        fprintf(stderr, "physlimit: cannot map %zu MiB\n", table_mib);
        return 1;
    }
    madvise(region, bytes, MADV_HUGEPAGE);
    double fresh_ms_per_mib = touch_pages(region, bytes) / (double)table_mib;
    uint32_t *perm = malloc(nlines * sizeof(*perm));
    if (!perm) {
        fprintf(stderr, "physlimit: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nlines; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = nlines - 1; i > 0; i--) {
        size_t j = (size_t)(rnd() % i);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < nlines; i++)
        *(char **)(region + (size_t)perm[i] * 64) = region + (size_t)perm[(i + 1) % nlines] * 64;
    free(perm);
    size_t steps = 20u * 1000 * 1000;
    double best_lat = 1e30;
    char *p = region;
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        for (size_t i = 0; i < steps; i++)
            p = *(char **)p;
        double dt = now() - t0;
        if (dt < best_lat)
            best_lat = dt;
    }
    double ns = best_lat * 1e9 / (double)steps;

    job_t ca = {.fn = compute_job, .n = 20u * 1000 * 1000}, cb = ca;
    double compute_x = scaling(&ca, &cb, rounds);
    job_t va = {.fn = vector_job, .n = 5u * 1000 * 1000}, vb = va;
    double vector_x = scaling(&va, &vb, rounds);
    job_t la = {.fn = chase_job, .p = p, .n = steps / 4}, lb = la;
    lb.p = region + (nlines / 2) * 64; /* elsewhere on the same cycle */
    double latency_x = scaling(&la, &lb, rounds);
    fd = open(argv[1], O_RDONLY);
    const char *map = fd < 0 ? MAP_FAILED : mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        fprintf(stderr, "physlimit: cannot map %s again\n", argv[1]);
        return 1;
    }
    job_t ra = {.fn = read_job, .p = map, .n = size / 2}, rb = ra;
    rb.p = map + size / 2;
    double read_x = scaling(&ra, &rb, rounds);
    munmap((void *)map, size);
    close(fd);

    printf(
        "SUMMARY bench=physlimit bytes=%zu orders=%llu read_seconds=%.4f read_bytes_per_s=%.0f "
        "bandwidth_orders_per_s=%.0f table_mib=%zu dram_load_ns=%.1f latency_orders_per_s=%.0f "
        "two_cores_compute=%.3f two_cores_vector=%.3f two_cores_latency=%.3f "
        "two_cores_bandwidth=%.3f touch_fresh_ms_per_mib=%.3f touch_reused_ms_per_mib=%.3f "
        "check=%d\n",
        size, (unsigned long long)lines, best_bw, size / best_bw, lines / best_bw, table_mib, ns,
        1e9 / ns, compute_x, vector_x, latency_x, read_x, fresh_ms_per_mib, reused_ms / TOUCH_MIB,
        p == NULL || (ca.out ^ cb.out ^ va.out ^ vb.out ^ la.out ^ lb.out ^ ra.out ^ rb.out) == 42);
    munmap(region, bytes);
    return 0;
}
