/* zipf.h — Zipf-distributed ranks in 1..n by rejection-inversion.
 *
 * The simulator skews its users with a Zipf law: rank k is drawn with
 * probability proportional to 1/k^s. Rejection-inversion (Hörmann and
 * Derflinger, 1996) needs no table, so a million users cost no memory and
 * no cache misses, and a draw is one log and one exp with a rejection rate
 * well under 10% for any s >= 0.
 *
 * Thread safety: an op_zipf_t is immutable after op_zipf_init; draws use the
 * caller's op_rng_t.
 */
#ifndef OP_ZIPF_H
#define OP_ZIPF_H

#include <stdint.h>

#include "sim/rng.h"

/* Caller-owned, immutable after init. */
typedef struct op_zipf {
    uint64_t n;
    double s;           /* exponent */
    double h_x1;        /* H(1.5) - 1 */
    double h_n;         /* H(n + 0.5) */
    double accept_band; /* the squeeze: k - x <= accept_band is accepted at once */
} op_zipf_t;

/* n >= 1, s >= 0 (0 is uniform). Returns 0 or -EINVAL. */
int op_zipf_init(op_zipf_t *z, uint64_t n, double s);

/* A rank in 1..n. */
uint64_t op_zipf_draw(const op_zipf_t *z, op_rng_t *r);

#endif
