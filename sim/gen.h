/* gen.h — the order generator: one JSON order record per call.
 *
 * The generator turns (seed, options, record index) into the bytes of one
 * order in the schema of DESIGN §2 — good, or deliberately malformed — and
 * into an op_gen_record_t that says what the engine must make of it, which is
 * what the truth module adds up. All randomness comes from one op_rng_t, so
 * the same seed and options give the same bytes (except the live clock).
 *
 * Out of memory: the generator allocates nothing after op_gen_init.
 * Thread safety: an op_gen_t is caller-owned and used by one thread.
 */
#ifndef OP_GEN_H
#define OP_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "sim/rng.h"
#include "sim/zipf.h"

#define OP_GEN_MAX_GENDERS    8
#define OP_GEN_GENDER_NAMELEN 64
/* The largest record op_gen_next can write (the depth-200 kind is the longest). */
#define OP_GEN_MAX_RECORD 2048

/* Which event-time members a record carries. */
enum op_gen_time_field {
    OP_GEN_TIME_SERIES = 0, /* orderTimeSeries only */
    OP_GEN_TIME_STRING = 1, /* orderTime only: the engine sees second precision */
    OP_GEN_TIME_BOTH = 2,
};

/* The kinds of malformed record (op_gen_record_t.bad). */
enum op_gen_bad {
    OP_GEN_GOOD = 0,
    OP_GEN_BAD_TRUNCATED,  /* the record cut short */
    OP_GEN_BAD_UTF8,       /* a 0xFF byte inside address */
    OP_GEN_BAD_SURROGATE,  /* "\ud800" (a lone surrogate) in userName */
    OP_GEN_BAD_MISSING,    /* one required member left out */
    OP_GEN_BAD_NUM_STRING, /* "num":"2" */
    OP_GEN_BAD_NUM_ZERO,   /* "num":0 */
    OP_GEN_BAD_NEG_TOTAL,  /* negative totalPrice */
    OP_GEN_BAD_TRAILING,   /* garbage after the object */
    OP_GEN_BAD_BINARY,     /* random bytes (never '\n' or '\r', so JSONL stays line-framed) */
    OP_GEN_BAD_DEEP,       /* an unknown member nested 200 deep */
    OP_GEN_BAD_EMPTY,      /* zero bytes */
    OP_GEN_BAD_COUNT
};

/* How often each user orders (see gen.c, "User popularity"). */
enum op_gen_popularity {
    /* Zipf's law over the users, names without regard to gender: the
     * earlier generator, kept byte for byte (benchmarks depend on it). */
    OP_GEN_POP_ZIPF = 0,
    /* Log-normal purchase rates, names that agree with the gender. */
    OP_GEN_POP_LOGNORMAL = 1,
};

/* Options, filled by the caller (see sim/options.h for the flags). */
typedef struct op_gen_opts {
    uint64_t seed;
    uint64_t users; /* >= 1 */
    int popularity; /* enum op_gen_popularity */
    double zipf_s;  /* OP_GEN_POP_ZIPF: the exponent, >= 0 */
    double sigma;   /* OP_GEN_POP_LOGNORMAL: spread of log(purchase rate), >= 0 */
    int ngenders;   /* 1..OP_GEN_MAX_GENDERS */
    char gender_names[OP_GEN_MAX_GENDERS][OP_GEN_GENDER_NAMELEN];
    double gender_weights[OP_GEN_MAX_GENDERS];
    int64_t rate;      /* orders/s; spaces the simulated clock (0 = as if 1000) */
    int64_t start_ms;  /* simulated clock start, or -1 for the live clock */
    double speed;      /* simulated seconds per real second */
    int64_t jitter_ms; /* subtract uniform [0, jitter_ms] */
    double late_fraction;
    double bad_fraction;
    int32_t tz_offset_s; /* orderTime's zone */
    int time_field;      /* enum op_gen_time_field */
} op_gen_opts_t;

/* What the engine must make of one record. Owner: the caller of op_gen_next. */
typedef struct op_gen_record {
    uint64_t seq;     /* record index, from 0 */
    uint64_t user;    /* user index (0-based; rank - 1) */
    int64_t price;    /* cents */
    int64_t amount;   /* totalPrice in cents = price * num */
    int64_t event_ms; /* the event time the engine derives (second-truncated for "string") */
    int32_t num;
    uint16_t brand;
    uint8_t gender;
    uint8_t category;
    uint8_t bad;  /* enum op_gen_bad */
    uint8_t late; /* pushed back 10-120 s by --late-fraction */
} op_gen_record_t;

/* Caller-owned storage; one thread. */
typedef struct op_gen {
    op_gen_opts_t o;
    op_rng_t rng;
    op_zipf_t zipf;
    double spare_normal;
    int has_spare;
    double user_spare; /* the lognormal draws' own cached normal */
    int user_has_spare;
    uint8_t gender_sex[OP_GEN_MAX_GENDERS]; /* op_catalog_sex_t of each gender */
    uint64_t seq;
    int64_t first_clock_ms; /* clock of record 0, -1 before it */
    double gender_cdf[OP_GEN_MAX_GENDERS];
    uint8_t gender_len[OP_GEN_MAX_GENDERS];
    uint32_t category_cdf[16];
    uint32_t category_total;
    double category_mu[16]; /* log of the median price in cents */
    int64_t cached_second;  /* orderTime text of this epoch second is in cached_time */
    char cached_time[24];
} op_gen_t;

/* Parses "男:0.5,女:0.5" into o->gender_names/weights. Names are 1..63 bytes of
 * UTF-8 without '"', '\\', ':', ',' or control characters; weights are > 0 and
 * are normalised. Returns 0 or -EINVAL with a message. */
int op_gen_parse_genders(op_gen_opts_t *o, const char *spec, char *err, size_t errlen);

/* Checks o and prepares g. Returns 0 or -EINVAL with a message. */
int op_gen_init(op_gen_t *g, const op_gen_opts_t *o, char *err, size_t errlen);

/* Writes the next record into buf (at least OP_GEN_MAX_RECORD bytes; no
 * newline, no NUL) and describes it in *rec. live_ms is the wall clock in
 * epoch ms, used only when o.start_ms < 0. Returns the record's length. */
size_t op_gen_next(op_gen_t *g, int64_t live_ms, char *buf, op_gen_record_t *rec);

/* The gender a user always has. */
unsigned op_gen_user_gender(const op_gen_t *g, uint64_t user);

/* The name a user always has (OP_CATALOG_USER_MAX bytes at most, no NUL);
 * returns its length. */
size_t op_gen_user_name(const op_gen_t *g, uint64_t user, char *buf);

/* The probability that an order is user 0's (the most frequent buyer):
 * what the popularity model gives the heaviest user. */
double op_gen_top_user_share(const op_gen_opts_t *o);

/* A short name for a bad kind ("truncated", ...), for tests and messages. */
const char *op_gen_bad_name(int kind);

#endif
