/* parse_bench.c — op_parse_order throughput over a JSONL file.
 *
 * usage: parse_bench FILE [ROUNDS]
 * Parses every line ROUNDS times (default 5) on one thread and prints the
 * best round as one SUMMARY line. The checksum keeps the compiler honest
 * and lets run.sh check that both parsers saw the same orders.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/lines.h"
#include "engine/parse.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: parse_bench FILE [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    op_bench_lines_t l;
    if (op_bench_lines_load(&l, argv[1]) < 0)
        return 1;
    op_parser_t ps;
    op_parse_init(&ps, 8 * 3600);
    double best = 1e30, best_cpu = 1e30;
    int64_t accepted = 0, qty = 0;
    for (int r = 0; r < rounds; r++) {
        accepted = qty = 0;
        double t0 = op_bench_now(), c0 = op_bench_cpu();
        for (size_t i = 0; i < l.n; i++) {
            op_order_t o;
            if (op_parse_order(&ps, l.buf + l.off[i], l.len[i], &o) == 0) {
                accepted++;
                qty += o.num + o.user.len + o.brand.len;
            }
        }
        double dt = op_bench_now() - t0, dc = op_bench_cpu() - c0;
        if (dt < best)
            best = dt;
        if (dc < best_cpu)
            best_cpu = dc;
    }
    printf("SUMMARY bench=parse parser=orderpulse orders=%zu accepted=%lld checksum=%lld "
           "seconds=%.4f rate=%.0f bytes_per_s=%.0f cpu_seconds=%.4f\n",
           l.n, (long long)accepted, (long long)qty, best, l.n / best, l.size / best, best_cpu);
    op_bench_lines_free(&l);
    return 0;
}
