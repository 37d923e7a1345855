/* conf.h — command-line flags, environment variables and config files.
 *
 * Every orderpulse binary describes its options once, as a table of
 * op_conf_spec_t, and op_conf_load() fills in the values from three sources,
 * lowest priority first: the config file named by --config (or by the
 * <PREFIX>CONFIG environment variable), the environment (<PREFIX>NAME with
 * dashes turned into underscores), and the command line. The caller then
 * reads values as strings and converts them with the typed parsers below,
 * each of which writes a one-line message on failure.
 *
 * Single-threaded: used by main() before any thread starts.
 */
#ifndef OP_CONF_H
#define OP_CONF_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#define OP_CONF_ERRLEN 256

typedef enum op_conf_kind {
    OP_CONF_VALUE = 0, /* --name VALUE or --name=VALUE */
    OP_CONF_FLAG = 1,  /* --name (true); "true/false/1/0/yes/no" in env and files */
} op_conf_kind_t;

typedef struct op_conf_spec {
    const char *name;    /* long option without the dashes, e.g. "brokers" */
    op_conf_kind_t kind; /* value or flag */
    const char *metavar; /* shown in --help, e.g. "HOST:PORT" */
    const char *defval;  /* default shown in --help and returned by op_conf_get; may be NULL */
    const char *help;    /* one line */
} op_conf_spec_t;

/* Owner: the thread that called op_conf_load (main). Strings are owned by
 * the op_conf_t and live until op_conf_dispose. */
typedef struct op_conf {
    const op_conf_spec_t *spec;
    size_t nspec;
    char **values;  /* parallel to spec; NULL = unset */
    char **origins; /* where each value came from, for error messages */
    const char *prog;
} op_conf_t;

/* Outcome of op_conf_load besides errors. */
#define OP_CONF_HELP 1 /* --help was given: print op_conf_usage and exit 0 */

/* Fills conf from the config file, the environment (variables named
 * env_prefix + NAME) and argv. Returns 0, OP_CONF_HELP, or a negative error
 * code with a one-line message in err. "--config FILE" is always accepted.
 * Positional arguments are rejected. Only after 0 does conf hold anything
 * (to be released with op_conf_dispose). */
int op_conf_load(op_conf_t *conf, const op_conf_spec_t *spec, size_t nspec, const char *env_prefix,
                 int argc, char **argv, char *err, size_t errlen);
void op_conf_dispose(op_conf_t *conf);

/* The value of option name (or its default, or NULL). name must be in the spec. */
const char *op_conf_get(const op_conf_t *conf, const char *name);
/* 1 if a flag option is set to a true value, 0 otherwise. */
int op_conf_flag(const op_conf_t *conf, const char *name);
/* "from --rate", "from ORDERPULSE_SIM_RATE", "from config.conf:3" or "by default". */
const char *op_conf_origin(const op_conf_t *conf, const char *name);

/* An error about an option (a message starting "--name") whose value came
 * from the config file or the environment is rewritten to say where:
 * "orderpulse.conf:3: tick: 'x' is not a duration", "ORDERPULSE_TICK: 'x'
 * is not a duration". Other messages are left as they are. */
void op_conf_locate_error(const op_conf_t *conf, char *err, size_t errlen);

/* Writes the help text for spec to f, after a usage line and a description. */
void op_conf_usage(const op_conf_spec_t *spec, size_t nspec, const char *env_prefix,
                   const char *usage, const char *description, FILE *f);

/* Typed parsers. Each returns 0, or -EINVAL with a one-line message naming
 * what (e.g. "--rate") in err. Ranges are inclusive. */
int op_conf_parse_i64(const char *what, const char *s, int64_t min, int64_t max, int64_t *out,
                      char *err, size_t errlen);
int op_conf_parse_double(const char *what, const char *s, double min, double max, double *out,
                         char *err, size_t errlen);
/* Durations: "250ms", "5s", "2m", "1h", "1d"; a bare number means seconds.
 * Fractions are allowed ("1.5s"). The result is in milliseconds. */
int op_conf_parse_duration_ms(const char *what, const char *s, int64_t min_ms, int64_t max_ms,
                              int64_t *out, char *err, size_t errlen);
/* Sizes: "512", "64k", "16M", "2G" (powers of 1024). */
int op_conf_parse_size(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                       char *err, size_t errlen);
/* One of a fixed set of words; *out is its index in choices (NULL-terminated). */
int op_conf_parse_choice(const char *what, const char *s, const char *const *choices, int *out,
                         char *err, size_t errlen);

/* A file the program will (re)create: its directory must exist and be
 * writable, checked at start so that a typo is one line at start, not a
 * silent failure later. */
int op_conf_check_output_file(const char *what, const char *path, char *err, size_t errlen);

/* Helper shared by the typed parsers and callers: a formatted error. Always
 * returns -EINVAL so that `return op_conf_error(...)` reads naturally. */
int op_conf_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
