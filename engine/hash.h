/* hash.h — the one string hash of the engine.
 *
 * Names are short (a few to a few dozen bytes) and hashed once per order for
 * each dimension, so the hash reads eight bytes at a time and mixes with one
 * multiply per word; it is not meant to resist hash flooding (the tables
 * bound their probe lengths by load factor, and dimension counts are capped).
 * Header-only so that the hot path can inline it.
 */
#ifndef OP_HASH_H
#define OP_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t op_hash_mix(uint64_t h)
{
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return h;
}

static inline uint64_t op_hash_bytes(const char *p, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (len * 0xff51afd7ed558ccdULL);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    if (len) {
        uint64_t w = 0;
        memcpy(&w, p, len);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
    }
    return op_hash_mix(h);
}

#endif
