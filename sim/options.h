/* options.h — orderpulse-sim's command line, environment and config file.
 *
 * The flags of DESIGN §6 as one op_conf_spec_t table (engine/conf.h), checked
 * and converted into typed values, so that main() only runs and the unit
 * tests can check every error message without starting a process.
 *
 * Single-threaded: used by main() before anything starts.
 */
#ifndef OP_SIM_OPTIONS_H
#define OP_SIM_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/conf.h"
#include "sim/gen.h"

#define OP_SIM_ENV_PREFIX "ORDERPULSE_SIM_"

/* Owner: main. Strings point into conf and live until op_sim_options_dispose. */
typedef struct op_sim_options {
    op_gen_opts_t gen;
    const char *out;     /* JSONL path or "-", or NULL */
    const char *brokers; /* or NULL */
    const char *topic;
    const char *compression;
    const char *truth;   /* or NULL */
    int key_mode;        /* enum op_sink_key */
    int64_t rate;        /* orders/s, 0 = as fast as possible */
    int64_t count;       /* -1 = unlimited */
    int64_t duration_ms; /* -1 = unlimited */
    int64_t flush_timeout_ms;
    int quiet; /* no progress lines */
    op_conf_t conf;
} op_sim_options_t;

/* Returns 0, OP_CONF_HELP, or -EINVAL/-ENOMEM with a one-line message in err
 * (naming the flag, e.g. "--rate: 'abc' is not an integer"). Call
 * op_sim_options_dispose in every case. */
int op_sim_options_load(op_sim_options_t *o, int argc, char **argv, char *err, size_t errlen);
void op_sim_options_dispose(op_sim_options_t *o);
void op_sim_options_usage(FILE *f);

/* "1731233400000" (epoch ms) or "2024-11-10T10:10:00" ('T' or ' ' between
 * date and time; UTC, or with a zone: 'Z', "+08:00", "+0800", "+08",
 * "-05:00") -> epoch ms. Returns 0 or -EINVAL. */
int op_sim_parse_start(const char *s, int64_t *out_ms);

#endif
