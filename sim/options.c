/* options.c — the simulator's option table and its checks.
 *
 * Each check names the flag and the value it rejected, in one line, because
 * main() prints exactly that line and exits 2.
 */
#include "sim/options.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/parse.h"
#include "sim/sink.h"

static const op_conf_spec_t spec[] = {
    {"out", OP_CONF_VALUE, "FILE", NULL, "write JSONL orders to FILE ('-' = stdout)"},
    {"brokers", OP_CONF_VALUE, "HOST:PORT[,...]", NULL, "produce to Kafka at these brokers"},
    {"topic", OP_CONF_VALUE, "NAME", "orders", "Kafka topic"},
    {"key", OP_CONF_VALUE, "user|random|none", "user", "Kafka message key"},
    {"compression", OP_CONF_VALUE, "none|gzip|snappy|lz4|zstd", "lz4", "Kafka compression"},
    {"rate", OP_CONF_VALUE, "N", "1000", "orders per second (0 = as fast as possible)"},
    {"count", OP_CONF_VALUE, "N", NULL, "stop after N orders"},
    {"duration", OP_CONF_VALUE, "DURATION", NULL, "stop after this long (e.g. 60s, 5m)"},
    {"users", OP_CONF_VALUE, "N", "100000", "number of distinct users"},
    {"popularity", OP_CONF_VALUE, "lognormal[:SIGMA]|zipf[:S]", "lognormal:1.1",
     "how often each user orders: log-normal purchase rates with names that agree with the "
     "gender, or Zipf's law (the earlier generator, same streams as before)"},
    {"zipf", OP_CONF_VALUE, "S", NULL,
     "same as --popularity zipf:S (0 = uniform; the earlier default was 1.1)"},
    {"genders", OP_CONF_VALUE, "NAME:W,...", "男:0.5,女:0.5", "genders and their shares"},
    {"seed", OP_CONF_VALUE, "N", "1", "random seed (same seed and flags = same stream)"},
    {"start", OP_CONF_VALUE, "TIME", NULL,
     "simulated clock from TIME (epoch ms, or YYYY-MM-DDTHH:MM:SS in UTC or with a zone: Z, "
     "+08:00) instead of the wall clock"},
    {"speed", OP_CONF_VALUE, "X", "1", "simulated seconds per real second (with --start)"},
    {"jitter", OP_CONF_VALUE, "DURATION", "0", "subtract a uniform [0, DURATION] from event times"},
    {"late-fraction", OP_CONF_VALUE, "F", "0",
     "fraction of orders made 10-120 s late (once the clock is 130 s in)"},
    {"bad-fraction", OP_CONF_VALUE, "F", "0", "fraction of malformed records"},
    {"timezone", OP_CONF_VALUE, "TZ", "+08:00", "time zone of orderTime (e.g. +08:00, UTC)"},
    {"time-field", OP_CONF_VALUE, "series|string|both", "both",
     "event-time members: orderTimeSeries, orderTime or both"},
    {"truth", OP_CONF_VALUE, "FILE", NULL, "write the exact expected snapshot to FILE at the end"},
    {"truth-users", OP_CONF_VALUE, "FILE", NULL,
     "write every user's exact amount (cents) and orders to FILE at the end (name TAB cents TAB "
     "orders)"},
    {"truth-late", OP_CONF_VALUE, "apply|drop", "apply",
     "whether the truth's windows count late orders (as the engine's --late)"},
    {"flush-timeout", OP_CONF_VALUE, "DURATION", "30s",
     "at the end, wait this long for Kafka deliveries"},
    {"quiet", OP_CONF_FLAG, NULL, NULL, "no progress line every second"},
    {"config", OP_CONF_VALUE, "FILE", NULL, "read options from FILE (name = value lines)"},
};

void op_sim_options_usage(FILE *f)
{
    op_conf_usage(
        spec, sizeof(spec) / sizeof(spec[0]), OP_SIM_ENV_PREFIX,
        "orderpulse-sim (--out FILE | --brokers HOST:PORT [--topic T]) (--count N | --duration D)"
        " [options]",
        "Generates orders in the schema of the original system (one JSON object per line or per\n"
        "Kafka message, keyed by userName), with skewed users, optional jitter, late and\n"
        "malformed records, and writes with --truth the exact expected value of every metric,\n"
        "in the shape of GET /api/v1/snapshot. Prints progress on stderr once a second.\n"
        "SIGINT/SIGTERM stop it cleanly: queued records are flushed and the truth is written\n"
        "for what was delivered. SIGUSR1 holds a Kafka stream once everything sent is\n"
        "acknowledged (it says \"held\"), SIGUSR2 lets it go on. Same seed and flags give a\n"
        "byte-identical stream when --start is given (the live clock is, by nature, not\n"
        "reproducible).",
        f);
}

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

static int digits(const char *s, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 0;
}

int op_sim_parse_start(const char *s, int64_t *out_ms)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!s)
        return -EINVAL;
    if (all_digits(s)) {
        if (strlen(s) > 15)
            return -EINVAL;
        *out_ms = strtoll(s, NULL, 10);
        return *out_ms <= OP_PARSE_MAX_EVENT_MS ? 0 : -EINVAL;
    }
    size_t n = strlen(s);
    int64_t offset_s = 0;
    if (n == 20 && s[19] == 'Z') {
        n = 19;
    } else if (n > 19) {
        /* A zone after the time: +HH:MM, +HHMM or +HH (the sales-day
         * midnight in Beijing is 2024-11-11T00:00:00+08:00). */
        const char *z = s + 19;
        unsigned zh, zm = 0;
        size_t zl = n - 19;
        if ((z[0] != '+' && z[0] != '-') || digits(z + 1, 2, &zh) ||
            (zl == 6   ? z[3] != ':' || digits(z + 4, 2, &zm)
             : zl == 5 ? digits(z + 3, 2, &zm)
                       : zl != 3) ||
            zh > 14 || zm > 59)
            return -EINVAL;
        offset_s = (z[0] == '-' ? -1 : 1) * (int64_t)(zh * 3600 + zm * 60);
        n = 19;
    }
    unsigned y, mo, d, h, mi, sec;
    if (n != 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || s[13] != ':' ||
        s[16] != ':')
        return -EINVAL;
    if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
        digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &sec))
        return -EINVAL;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
        mi > 59 || sec > 59)
        return -EINVAL;
    int64_t ms =
        (op_parse_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s) * 1000;
    if (ms < 0)
        return -EINVAL;
    *out_ms = ms;
    return 0;
}

/* --popularity MODEL[:PARAM], and --zipf S as its short form. */
static int parse_popularity(const op_conf_t *c, op_gen_opts_t *g, char *err, size_t errlen)
{
    const char *zipf = op_conf_get(c, "zipf");
    const char *model = op_conf_get(c, "popularity");
    if (zipf) {
        if (strcmp(op_conf_origin(c, "popularity"), "by default") != 0)
            return op_conf_error(err, errlen, "--zipf: give --zipf S or --popularity, not both");
        g->popularity = OP_GEN_POP_ZIPF;
        return op_conf_parse_double("--zipf", zipf, 0, 100, &g->zipf_s, err, errlen);
    }
    const char *colon = strchr(model, ':');
    size_t len = colon ? (size_t)(colon - model) : strlen(model);
    if (len == 9 && strncmp(model, "lognormal", 9) == 0) {
        g->popularity = OP_GEN_POP_LOGNORMAL;
        g->sigma = 1.1;
        return colon ? op_conf_parse_double("--popularity lognormal", colon + 1, 0, 10, &g->sigma,
                                            err, errlen)
                     : 0;
    }
    if (len == 4 && strncmp(model, "zipf", 4) == 0) {
        g->popularity = OP_GEN_POP_ZIPF;
        g->zipf_s = 1.1;
        return colon ? op_conf_parse_double("--popularity zipf", colon + 1, 0, 100, &g->zipf_s, err,
                                            errlen)
                     : 0;
    }
    return op_conf_error(err, errlen, "--popularity: '%s' is not lognormal[:SIGMA] or zipf[:S]",
                         model);
}

static int load(op_sim_options_t *o, char *err, size_t errlen)
{
    static const char *const keys[] = {"user", "random", "none", NULL};
    static const char *const compressions[] = {"none", "gzip", "snappy", "lz4", "zstd", NULL};
    static const char *const time_fields[] = {"series", "string", "both", NULL};
    const op_conf_t *c = &o->conf;
    const char *v;
    int64_t i64;
    int rc;

    o->out = op_conf_get(c, "out");
    o->brokers = op_conf_get(c, "brokers");
    o->topic = op_conf_get(c, "topic");
    o->compression = op_conf_get(c, "compression");
    o->truth = op_conf_get(c, "truth");
    o->truth_users = op_conf_get(c, "truth-users");
    o->quiet = op_conf_flag(c, "quiet");
    if (!o->out == !o->brokers)
        return op_conf_error(err, errlen, "exactly one of --out and --brokers is required");
    if (o->out && !*o->out)
        return op_conf_error(err, errlen, "--out: empty file name");
    if (o->brokers && !*o->brokers)
        return op_conf_error(err, errlen, "--brokers: empty");
    if (!o->topic || !*o->topic)
        return op_conf_error(err, errlen, "--topic: empty");
    if (o->truth && !*o->truth)
        return op_conf_error(err, errlen, "--truth: empty file name");
    if (o->truth_users && !*o->truth_users)
        return op_conf_error(err, errlen, "--truth-users: empty file name");
    static const char *const late_choices[] = {"apply", "drop", NULL};
    if ((rc = op_conf_parse_choice("--truth-late", op_conf_get(c, "truth-late"), late_choices,
                                   &o->truth_late_drop, err, errlen)) < 0)
        return rc;
    if ((rc = op_conf_parse_choice("--key", op_conf_get(c, "key"), keys, &o->key_mode, err,
                                   errlen)) < 0)
        return rc;
    int ci;
    if ((rc = op_conf_parse_choice("--compression", o->compression, compressions, &ci, err,
                                   errlen)) < 0)
        return rc;
    if ((rc = op_conf_parse_i64("--rate", op_conf_get(c, "rate"), 0, 100000000, &o->rate, err,
                                errlen)) < 0)
        return rc;
    o->count = -1;
    if ((v = op_conf_get(c, "count")) &&
        (rc = op_conf_parse_i64("--count", v, 1, INT64_MAX / 2, &o->count, err, errlen)) < 0)
        return rc;
    o->duration_ms = -1;
    if ((v = op_conf_get(c, "duration")) &&
        (rc = op_conf_parse_duration_ms("--duration", v, 1, 366LL * 86400000, &o->duration_ms, err,
                                        errlen)) < 0)
        return rc;
    if (o->count < 0 && o->duration_ms < 0)
        return op_conf_error(err, errlen, "one of --count and --duration is required");
    if ((rc = op_conf_parse_duration_ms("--flush-timeout", op_conf_get(c, "flush-timeout"), 0,
                                        3600000, &o->flush_timeout_ms, err, errlen)) < 0)
        return rc;

    op_gen_opts_t *g = &o->gen;
    memset(g, 0, sizeof(*g));
    g->rate = o->rate;
    if ((rc = op_conf_parse_i64("--users", op_conf_get(c, "users"), 1, 100000000, &i64, err,
                                errlen)) < 0)
        return rc;
    g->users = (uint64_t)i64;
    if ((rc = parse_popularity(c, g, err, errlen)) < 0)
        return rc;
    if ((rc = op_gen_parse_genders(g, op_conf_get(c, "genders"), err, errlen)) < 0)
        return rc;
    if ((rc = op_conf_parse_i64("--seed", op_conf_get(c, "seed"), 0, INT64_MAX, &i64, err,
                                errlen)) < 0)
        return rc;
    g->seed = (uint64_t)i64;
    g->start_ms = -1;
    if ((v = op_conf_get(c, "start")) && op_sim_parse_start(v, &g->start_ms) < 0)
        return op_conf_error(err, errlen,
                             "--start: '%s' is not epoch ms or YYYY-MM-DDTHH:MM:SS[Z|+HH:MM]", v);
    if ((rc = op_conf_parse_double("--speed", op_conf_get(c, "speed"), 1e-6, 1e6, &g->speed, err,
                                   errlen)) < 0)
        return rc;
    if ((rc = op_conf_parse_duration_ms("--jitter", op_conf_get(c, "jitter"), 0, 3600000,
                                        &g->jitter_ms, err, errlen)) < 0)
        return rc;
    if ((rc = op_conf_parse_double("--late-fraction", op_conf_get(c, "late-fraction"), 0, 1,
                                   &g->late_fraction, err, errlen)) < 0)
        return rc;
    if ((rc = op_conf_parse_double("--bad-fraction", op_conf_get(c, "bad-fraction"), 0, 1,
                                   &g->bad_fraction, err, errlen)) < 0)
        return rc;
    v = op_conf_get(c, "timezone");
    if (op_parse_tz_offset(v, &g->tz_offset_s) < 0)
        return op_conf_error(err, errlen, "--timezone: '%s' is not UTC or +HH:MM", v ? v : "");
    if ((rc = op_conf_parse_choice("--time-field", op_conf_get(c, "time-field"), time_fields,
                                   &g->time_field, err, errlen)) < 0)
        return rc;
    /* The generator's own checks (e.g. --start too early) have flag names too. */
    op_gen_t probe;
    return op_gen_init(&probe, g, err, errlen);
}

int op_sim_options_load(op_sim_options_t *o, int argc, char **argv, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    int rc = op_conf_load(&o->conf, spec, sizeof(spec) / sizeof(spec[0]), OP_SIM_ENV_PREFIX, argc,
                          argv, err, errlen);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    if (rc != 0)
        return rc;
    rc = load(o, err, errlen);
    if (rc < 0)
        op_conf_locate_error(&o->conf, err, errlen);
    return rc;
}

void op_sim_options_dispose(op_sim_options_t *o)
{
    op_conf_dispose(&o->conf);
}
