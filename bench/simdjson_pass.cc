// simdjson_pass.cc — the parse ceiling: simdjson On-Demand extracting the
// same seven fields as op_parse_order from every line of a JSONL file.
//
// usage: simdjson_pass FILE [ROUNDS] [THREADS]
// Each line is parsed as its own document (as a Kafka message would be),
// fields looked up by name in any order. Lines simdjson rejects, or whose
// fields are missing or mistyped, count as rejected. Prints the best round.
// THREADS > 1 splits the lines into that many contiguous parts, one thread
// (and parser) each: how far this pass scales with the cores (for scale next
// to the engine's 2 workers; the cores' own scaling is bench/physlimit.c's).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <simdjson.h>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/lines.h"

using namespace simdjson;

static bool extract(ondemand::parser &p, const char *buf, size_t len, size_t capacity, int64_t &sum)
{
    ondemand::document doc;
    if (p.iterate(buf, len, capacity).get(doc))
        return false;
    ondemand::object obj;
    if (doc.get_object().get(obj))
        return false;
    std::string_view user, gender, category, brand;
    int64_t num, ts;
    double amount;
    if (obj["userName"].get_string().get(user) || obj["gender"].get_string().get(gender) ||
        obj["goodsType"].get_string().get(category) || obj["brand"].get_string().get(brand) ||
        obj["num"].get_int64().get(num) || obj["totalPrice"].get_double().get(amount) ||
        obj["orderTimeSeries"].get_int64().get(ts))
        return false;
    sum += num + (int64_t)user.size() + (int64_t)brand.size();
    return true;
}

struct part {
    size_t from, to;
    int64_t accepted, sum;
};

static void run_part(const op_bench_lines_t *l, part *pt)
{
    ondemand::parser parser;
    pt->accepted = pt->sum = 0;
    for (size_t i = pt->from; i < pt->to; i++) {
        size_t capacity = l->size + OP_BENCH_PADDING - l->off[i];
        pt->accepted += extract(parser, l->buf + l->off[i], l->len[i], capacity, pt->sum);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: simdjson_pass FILE [ROUNDS] [THREADS]\n");
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    if (rounds < 1 || threads < 1) {
        fprintf(stderr, "simdjson_pass: ROUNDS and THREADS must be positive\n");
        return 2;
    }
    op_bench_lines_t l;
    if (op_bench_lines_load(&l, argv[1]) < 0)
        return 1;
    std::vector<part> parts((size_t)threads);
    for (int t = 0; t < threads; t++)
        parts[(size_t)t] = {l.n * (size_t)t / (size_t)threads,
                            l.n * (size_t)(t + 1) / (size_t)threads, 0, 0};
    double best = 1e30;
    int64_t accepted = 0, sum = 0;
    for (int r = 0; r < rounds; r++) {
        double t0 = op_bench_now();
        if (threads == 1) {
            run_part(&l, &parts[0]);
        } else {
            std::vector<std::thread> running;
            for (auto &pt : parts)
                running.emplace_back(run_part, &l, &pt);
            for (auto &th : running)
                th.join();
        }
        double dt = op_bench_now() - t0;
        if (dt < best)
            best = dt;
        accepted = sum = 0;
        for (const auto &pt : parts) {
            accepted += pt.accepted;
            sum += pt.sum;
        }
    }
    printf("SUMMARY bench=parse parser=simdjson-ondemand threads=%d orders=%zu accepted=%lld "
           "checksum=%lld seconds=%.4f rate=%.0f bytes_per_s=%.0f\n",
           threads, l.n, (long long)accepted, (long long)sum, best, l.n / best, l.size / best);
    op_bench_lines_free(&l);
    return 0;
}
