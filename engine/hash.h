/* hash.h — the one string hash of the engine.
 *
 * Names are short (a few to a few dozen bytes) and hashed once per order, so
 * the hash reads eight bytes at a time and mixes with one multiply per word;
 * it is not meant to resist hash flooding (the tables bound their probe
 * lengths by load factor, and dimension counts are capped). Header-only so
 * that the hot path can inline it.
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

/* Up to 8 bytes of a short name as one word, without a variable-length
 * memcpy (which compiles to a call): for 4..7 bytes the first and last
 * four, for 1..3 the first, middle and last byte. Injective for a given
 * length, which is all the callers need (they compare lengths too). */
__attribute__((always_inline)) static inline uint64_t op_hash_word(const char *p, size_t len)
{
    if (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        return w;
    }
    if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + len - 4, 4);
        return a | (uint64_t)b << 32;
    }
    if (!len)
        return 0;
    return (uint64_t)(uint8_t)p[0] | (uint64_t)(uint8_t)p[len / 2] << 8 |
           (uint64_t)(uint8_t)p[len - 1] << 16;
}

/* a[0..len) == b[0..len) for names; words for up to 16 bytes, memcmp above. */
static inline int op_hash_same(const char *a, const char *b, size_t len)
{
    if (len <= 8)
        return op_hash_word(a, len) == op_hash_word(b, len);
    if (len <= 16) {
        uint64_t a0, b0, a1, b1;
        memcpy(&a0, a, 8);
        memcpy(&b0, b, 8);
        memcpy(&a1, a + len - 8, 8);
        memcpy(&b1, b + len - 8, 8);
        return a0 == b0 && a1 == b1;
    }
    return memcmp(a, b, len) == 0;
}

/* The hash of a name. Names of up to 16 bytes (nearly all) are read as two
 * overlapping words, with no loop and no variable-length copy (which GCC
 * turns into a call to memcpy); longer ones a word at a time, the last word
 * overlapping the one before. Deterministic in (bytes, length) only. */
static inline uint64_t op_hash_bytes(const char *p, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (len * 0xff51afd7ed558ccdULL);
    uint64_t w;
    if (len <= 8) {
        h = (h ^ op_hash_word(p, len)) * 0xbf58476d1ce4e5b9ULL;
        return op_hash_mix(h);
    }
    while (len > 16) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    memcpy(&w, p, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 29;
    memcpy(&w, p + len - 8, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
    return op_hash_mix(h);
}

#endif
