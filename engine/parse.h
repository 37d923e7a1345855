/* parse.h — the schema-aware order scanner (DESIGN §2).
 *
 * One pass over one JSON order record: validates the whole document as
 * RFC 8259 JSON with valid UTF-8, and extracts the seven fields the metrics
 * need, without building a tree, without allocating and without recursion.
 * It is the engine's hot path: every consumed message goes through it once.
 *
 * A record is accepted when it is one JSON object (any key order, whitespace
 * and escapes, nothing but whitespace after it, nesting depth at most
 * OP_PARSE_MAX_DEPTH) whose members satisfy:
 *
 *   userName, gender, goodsType, brand   strings of 1..OP_PARSE_MAX_NAME bytes
 *                                        after unescaping
 *   num                                  number with an integral value in
 *                                        1..OP_PARSE_MAX_NUM
 *   totalPrice                           number in 0..OP_PARSE_MAX_CENTS/100,
 *                                        rounded half-up to cents
 *   orderTimeSeries                      number with an integral value in
 *                                        1..OP_PARSE_MAX_EVENT_MS (epoch ms)
 *   orderTime (only if orderTimeSeries   "yyyy-MM-dd HH:mm:ss" in the parser's
 *              is absent)                time zone
 *
 * Numbers may be written in integer, decimal or exponent form; integral
 * fields accept "2.0" and "2e0" but not "2.5". When a key appears twice the
 * last occurrence wins, as in most JSON libraries. Unknown members are
 * validated and skipped. Errors of the JSON itself (syntax, UTF-8, depth,
 * trailing data) take precedence over errors of the fields.
 *
 * Thread safety: an op_parser_t is owned by one thread (each worker has its
 * own); op_parse_order never touches shared state.
 */
#ifndef OP_PARSE_H
#define OP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define OP_PARSE_MAX_NAME     255
#define OP_PARSE_MAX_DEPTH    64
#define OP_PARSE_MAX_NUM      1000000
#define OP_PARSE_MAX_CENTS    100000000000LL    /* 1e9 currency units */
#define OP_PARSE_MAX_EVENT_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */

/* Why a record was rejected. op_parse_order returns the negated value. The
 * names (op_parse_reason_name) label the bad_records metric and the dead
 * letters, so they are part of the public interface: append, never renumber. */
typedef enum op_parse_reason {
    OP_PARSE_OK = 0,
    OP_PARSE_SYNTAX,     /* "syntax": not JSON (includes an empty record) */
    OP_PARSE_UTF8,       /* "utf8": invalid UTF-8, or an unpaired surrogate escape */
    OP_PARSE_DEPTH,      /* "depth": nested deeper than OP_PARSE_MAX_DEPTH */
    OP_PARSE_NOT_OBJECT, /* "not_object": valid start of a value, but not an object */
    OP_PARSE_TRAILING,   /* "trailing": something after the object */
    OP_PARSE_MISSING,    /* "missing_field": a required member is absent */
    OP_PARSE_TYPE,       /* "wrong_type": wrong JSON type, or a fraction in an integer field */
    OP_PARSE_RANGE,      /* "out_of_range": value outside the bounds above */
    OP_PARSE_TIME,       /* "bad_time": orderTime is not a valid yyyy-MM-dd HH:mm:ss */
    OP_PARSE_REASON_COUNT
} op_parse_reason_t;

/* A byte string that is not NUL-terminated. */
typedef struct op_str {
    const char *ptr;
    uint32_t len;
} op_str_t;

/* The fields of one accepted order. The strings point either into the
 * caller's record buffer or into the op_parser_t's scratch (when the value
 * had escapes), so they are valid until the next op_parse_order call on the
 * same parser or until the record buffer is released, whichever is first. */
typedef struct op_order {
    op_str_t user;     /* userName */
    op_str_t gender;   /* gender */
    op_str_t category; /* goodsType */
    op_str_t brand;    /* brand */
    int64_t num;       /* quantity, 1..OP_PARSE_MAX_NUM */
    int64_t amount;    /* totalPrice in cents, 0..OP_PARSE_MAX_CENTS */
    int64_t event_ms;  /* event time, epoch milliseconds (UTC) */
} op_order_t;

enum { OP_PARSE_NSCRATCH = 5 }; /* the four names and orderTime */

/* The keys of the previous record, by position, so that the next record's
 * keys can be recognised by one compare each instead of being scanned
 * (producers write every record with the same keys in the same order). */
enum { OP_PARSE_KEY_SLOTS = 24, OP_PARSE_KEY_LIT = 32 };
typedef struct op_parse_key {
    uint8_t len;                /* bytes of lit, both quotes included; 0 = unknown */
    uint8_t field;              /* what the key means to the parser */
    char lit[OP_PARSE_KEY_LIT]; /* "name", zero-padded */
} op_parse_key_t;

/* The same for the fast path, with everything from the separator before
 * the key to the value: `,"userName":` (spaces included), so that one
 * 32-byte compare checks the separator, the key and the colon at once. */
typedef struct op_parse_fkey {
    char lit[OP_PARSE_KEY_LIT];
    uint32_t mask; /* (1 << len) - 1: the bytes of lit that count; 0 = nothing learned */
    uint8_t len;
    uint8_t field;
    uint8_t qoff; /* where in lit the key's opening quote is */
} op_parse_fkey_t;

/* Per-thread parser state. Caller-owned storage: op_parse_init, no dispose. */
typedef struct op_parser {
    int32_t tz_offset_s;    /* time zone of orderTime, seconds east of UTC */
    int general_only;       /* tests: 1 = never take the fast path */
    uint64_t fast_accepted; /* records the fast path accepted (tests, profiles) */
    size_t err_offset;      /* byte offset of the last syntax-level error */
    op_parse_fkey_t fkeys[OP_PARSE_KEY_SLOTS + 1]; /* the last one never learns: a sentinel */
    op_parse_key_t keys[OP_PARSE_KEY_SLOTS];
    char scratch[OP_PARSE_NSCRATCH][OP_PARSE_MAX_NAME + 1];
} op_parser_t;

void op_parse_init(op_parser_t *ps, int32_t tz_offset_s);

/* Parses one record of len bytes. Returns 0 and fills *out, or returns
 * -reason (op_parse_reason_t) and leaves *out unspecified. Never reads
 * outside [buf, buf + len). */
int op_parse_order(op_parser_t *ps, const char *buf, size_t len, op_order_t *out);

/* The general path alone (op_parse_order takes a fast path for the compact,
 * escape-free records producers write, and falls back to this one for
 * everything else). For the tests that hold the two paths to the same
 * answers. */
int op_parse_order_general(op_parser_t *ps, const char *buf, size_t len, op_order_t *out);

/* "syntax", "utf8", ... for a reason code (positive or negated). */
const char *op_parse_reason_name(int reason);

/* Parses a fixed time-zone offset: "UTC", "Z", "+08:00", "-0530", "+8".
 * Returns 0 or -EINVAL. */
int op_parse_tz_offset(const char *s, int32_t *out_seconds);

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). Shared
 * with the engine's time windows and the tests. */
int64_t op_parse_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
