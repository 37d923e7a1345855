/* xorshift.h — the tests' reproducible random numbers: Marsaglia's 64-bit
 * xorshift, one step (state must not be 0). Each test keeps its own state
 * and seed. */
#ifndef OP_TESTS_XORSHIFT_H
#define OP_TESTS_XORSHIFT_H

#include <stdint.h>

static inline uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

#endif
