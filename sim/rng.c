/* rng.c — splitmix64 seeding and the normal deviate for op_rng_t.
 *
 * The per-draw function (xoshiro256**) is inline in rng.h because the
 * generator calls it a dozen times per order.
 */
#include "sim/rng.h"

#include <math.h>

uint64_t op_rng_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t op_rng_splitmix64(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ULL;
    return op_rng_mix(*state);
}

void op_rng_init(op_rng_t *r, uint64_t seed)
{
    uint64_t st = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = op_rng_splitmix64(&st);
    /* xoshiro's state must not be all zero; splitmix64 never yields four zeros,
     * but keep the invariant explicit. */
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1;
}

double op_rng_normal(op_rng_t *r, double *spare, int *has_spare)
{
    if (*has_spare) {
        *has_spare = 0;
        return *spare;
    }
    double u, v, s;
    do {
        u = 2.0 * op_rng_double(r) - 1.0;
        v = 2.0 * op_rng_double(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double m = sqrt(-2.0 * log(s) / s);
    *spare = v * m;
    *has_spare = 1;
    return u * m;
}
