/* merge_bench.c — the merger's end-of-run work at a given cardinality.
 *
 * usage: merge_bench FILE [ROUNDS]
 *
 * Parses FILE into two shards, as two workers would (first half, second
 * half), then times the merger's merges (op_state_merge_taking) of the first
 * into an empty state (which takes its table: no copy) and of the second
 * into that (one upsert per user), best of ROUNDS (default 5); both also
 * on a team of two threads, as the merger does them with 2 workers (the
 * first: its users offered to the empty top-K by slices). With 2 workers at
 * high cardinality these two merges run after the first worker has
 * finished: the tail of the run.
 * For scale, the second merge's lookups alone: each of its users looked up
 * in the first shard's table, prefetched as the one-thread merge does, nothing
 * inserted or added -- the random reads the merge cannot do without.
 * Prints one SUMMARY line.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench/lines.h"
#include "engine/fanout.h"
#include "engine/parse.h"
#include "engine/shard.h"
#include "engine/state.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: merge_bench FILE [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    op_bench_lines_t l;
    if (op_bench_lines_load(&l, argv[1]) < 0)
        return 1;
    op_parser_t ps;
    op_parse_init(&ps, 8 * 3600);
    op_shard_t *half[2] = {op_shard_create(0), op_shard_create(1)};
    for (size_t i = 0; i < l.n; i++) {
        op_order_t o;
        if (op_parse_order(&ps, l.buf + l.off[i], l.len[i], &o) != 0)
            continue;
        op_users_t *u = &half[i >= l.n / 2]->users;
        op_users_add(
            u, op_users_upsert(u, o.user.ptr, o.user.len, op_users_hash(o.user.ptr, o.user.len)),
            o.amount, 1);
    }
    /* The second merge alone (on this thread) and on a team of two (what
     * the merger does with 2 workers), alternating; the two states must
     * come out alike. */
    op_fanout_t *team;
    if (op_fanout_create(&team, 2) < 0)
        return 1;
    enum { FIRST_ALONE, SECOND_ALONE, SECOND_TEAM, FIRST_TEAM };
    double best[4] = {1e30, 1e30, 1e30, 1e30};
    uint32_t users = 0;
    int same = 1;
    for (int r = 0; r < rounds; r++) {
        op_state_t st[2];
        for (int t = 0; t < 2; t++) {
            op_state_init(&st[t], NULL);
            op_state_set_fanout(&st[t], t ? team : NULL, 0);
            for (int k = 0; k < 2; k++) {
                /* A table the state may take, as the merger's shards are. */
                op_shard_t *s = op_shard_create(k);
                op_users_copy(&s->users, &half[k]->users);
                double t0 = op_bench_now();
                op_state_merge_taking(&st[t], s, 0);
                double dt = op_bench_now() - t0;
                int slot = k ? (t ? SECOND_TEAM : SECOND_ALONE) : (t ? FIRST_TEAM : FIRST_ALONE);
                if (dt < best[slot])
                    best[slot] = dt;
                op_shard_destroy(s);
            }
        }
        users = st[0].users.count;
        uint32_t top[2][OP_STATE_TOPK];
        uint32_t nt[2] = {op_state_top_users(&st[0], top[0], OP_STATE_TOPK),
                          op_state_top_users(&st[1], top[1], OP_STATE_TOPK)};
        same &= st[1].users.count == users && nt[0] == nt[1];
        for (uint32_t i = 0; same && i < nt[0]; i++)
            same &= op_users_amount(&st[0].users, top[0][i]) ==
                    op_users_amount(&st[1].users, top[1][i]);
        op_state_dispose(&st[0]);
        op_state_dispose(&st[1]);
    }
    op_fanout_destroy(team);
    /* The lookups alone: as many index lines and found entries as the
     * merge reads, in the one-thread merge's order, with its prefetches
     * (state.c's distances: 32 and 16 ahead). */
    const op_users_t *into = &half[0]->users, *from = &half[1]->users;
    uint32_t n = from->count, found = 0;
    double lookups = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t0 = op_bench_now();
        found = 0;
        for (uint32_t d = 0; d < n; d++) {
            if (d + 32 < n)
                op_users_prefetch(into, op_users_hash_of(from, d + 32));
            if (d + 16 < n)
                op_users_prefetch_entry(into, op_users_hash_of(from, d + 16));
            size_t len;
            const char *name = op_users_name(from, d, &len);
            found += op_users_find(into, name, len, op_users_hash_of(from, d)) != UINT32_MAX;
        }
        double dt = op_bench_now() - t0;
        if (dt < lookups)
            lookups = dt;
    }
    printf("SUMMARY bench=merge users=%u first_users=%u first_ms=%.1f first_ms_2_threads=%.1f "
           "second_users=%u second_ms=%.1f second_ns_per_user=%.1f second_ms_2_threads=%.1f "
           "same=%d second_found=%u lookups_ms=%.1f\n",
           users, half[0]->users.count, best[FIRST_ALONE] * 1e3, best[FIRST_TEAM] * 1e3,
           half[1]->users.count, best[SECOND_ALONE] * 1e3,
           best[SECOND_ALONE] * 1e9 / (half[1]->users.count ? half[1]->users.count : 1),
           best[SECOND_TEAM] * 1e3,
           same && found + users == half[0]->users.count + half[1]->users.count, found,
           lookups * 1e3);
    op_shard_destroy(half[0]);
    op_shard_destroy(half[1]);
    op_bench_lines_free(&l);
    return 0;
}
