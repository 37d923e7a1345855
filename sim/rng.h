/* rng.h — the simulator's pseudo-random numbers: xoshiro256** seeded by splitmix64.
 *
 * The simulator promises that the same seed and the same flags give a
 * byte-identical stream, so every random choice goes through one op_rng_t
 * whose sequence depends on the seed alone; xoshiro256** is fast (a few
 * cycles per draw) and statistically strong enough for load generation.
 *
 * Thread safety: an op_rng_t is caller-owned storage used by one thread.
 */
#ifndef OP_RNG_H
#define OP_RNG_H

#include <stdint.h>

/* Owner: whoever embeds it (the generator); one thread. */
typedef struct op_rng {
    uint64_t s[4];
} op_rng_t;

/* One step of splitmix64: advances *state and returns a well-mixed value.
 * Also used on its own to derive per-user attributes from (seed, index). */
uint64_t op_rng_splitmix64(uint64_t *state);

/* A stateless 64-bit mix of x (the splitmix64 finalizer). */
uint64_t op_rng_mix(uint64_t x);

void op_rng_init(op_rng_t *r, uint64_t seed);

static inline uint64_t op_rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* The next 64 random bits (xoshiro256**). */
static inline uint64_t op_rng_next(op_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = op_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = op_rng_rotl(s[3], 45);
    return result;
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double op_rng_double(op_rng_t *r)
{
    return (double)(op_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n) for n >= 1 (Lemire's multiply-shift; the bias
 * is below 2^-32 for the small n the simulator uses, and n is never large). */
static inline uint64_t op_rng_below(op_rng_t *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)op_rng_next(r) * n) >> 64);
}

/* Standard normal deviate (Marsaglia's polar method; caches the second value). */
double op_rng_normal(op_rng_t *r, double *spare, int *has_spare);

#endif
