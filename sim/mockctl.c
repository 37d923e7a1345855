/* mockctl.c — parsing and running the dev broker's fault commands (see mockctl.h).
 *
 * A line is split on blanks into at most MAX_WORDS words; every number is
 * checked whole. Nothing here allocates except the error list of one
 * `errors` command.
 */
#include "sim/mockctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORDS  8
#define MAX_ERRORS 100000

/* The Kafka requests a consumer, a producer and a group make. */
static const struct {
    const char *name;
    int16_t key;
} requests[] = {
    {"Produce", 0},      {"Fetch", 1},        {"ListOffsets", 2},      {"Metadata", 3},
    {"OffsetCommit", 8}, {"OffsetFetch", 9},  {"FindCoordinator", 10}, {"JoinGroup", 11},
    {"Heartbeat", 12},   {"LeaveGroup", 13},  {"SyncGroup", 14},       {"DescribeGroups", 15},
    {"ListGroups", 16},  {"ApiVersions", 18}, {"InitProducerId", 22},
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

/* "all" = -1 (every broker), else 1..INT32_MAX. */
static int parse_broker(const char *s, int32_t *id)
{
    long v;
    if (strcmp(s, "all") == 0) {
        *id = -1;
        return 0;
    }
    if (parse_long(s, 0, INT32_MAX, &v) < 0)
        return -EINVAL;
    *id = (int32_t)v;
    return 0;
}

static int parse_request(const char *s, int16_t *key)
{
    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
        if (strcmp(s, requests[i].name) == 0) {
            *key = requests[i].key;
            return 0;
        }
    long v;
    if (parse_long(s, 0, INT16_MAX, &v) < 0)
        return -EINVAL;
    *key = (int16_t)v;
    return 0;
}

static int parse_error(const char *s, rd_kafka_resp_err_t *out)
{
    const struct rd_kafka_err_desc *d;
    size_t n;
    rd_kafka_get_err_descs(&d, &n);
    for (size_t i = 0; i < n; i++)
        if (d[i].name && strcmp(s, d[i].name) == 0) {
            *out = d[i].code;
            return 0;
        }
    long v;
    if (parse_long(s, INT16_MIN, INT16_MAX, &v) < 0)
        return -EINVAL;
    *out = (rd_kafka_resp_err_t)v;
    return 0;
}

static int check(rd_kafka_resp_err_t e, const char *what, char *err, size_t errlen)
{
    return e ? fail(err, errlen, "%s: %s", what, rd_kafka_err2str(e)) : 0;
}

/* errors REQUEST N ERR[,ERR...] */
static int push_errors(rd_kafka_mock_cluster_t *mc, char **w, char *err, size_t errlen)
{
    int16_t key;
    long n;
    if (parse_request(w[1], &key) < 0)
        return fail(err, errlen, "unknown request '%s'", w[1]);
    if (parse_long(w[2], 1, MAX_ERRORS, &n) < 0)
        return fail(err, errlen, "expected a count of 1..%d, got '%s'", MAX_ERRORS, w[2]);
    rd_kafka_resp_err_t list[64];
    size_t nlist = 0;
    char *save = NULL;
    for (char *tok = strtok_r(w[3], ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (nlist == sizeof(list) / sizeof(list[0]))
            return fail(err, errlen, "at most %zu different errors", nlist);
        if (parse_error(tok, &list[nlist++]) < 0)
            return fail(err, errlen, "unknown error '%s'", tok);
    }
    if (!nlist)
        return fail(err, errlen, "no error given");
    rd_kafka_resp_err_t *errs = malloc((size_t)n * sizeof(*errs));
    if (!errs)
        return fail(err, errlen, "out of memory");
    for (long i = 0; i < n; i++)
        errs[i] = list[(size_t)i % nlist];
    rd_kafka_mock_push_request_errors_array(mc, key, (size_t)n, errs);
    free(errs);
    return 0;
}

int op_mockctl_exec(rd_kafka_mock_cluster_t *mc, const char *line, char *err, size_t errlen)
{
    char buf[1024];
    char *w[MAX_WORDS];
    int nw = 0;
    if (strlen(line) >= sizeof(buf))
        return fail(err, errlen, "line too long");
    strcpy(buf, line);
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
        if (nw == MAX_WORDS)
            return fail(err, errlen, "too many words");
        w[nw++] = tok;
    }
    if (nw == 0)
        return fail(err, errlen, "empty command");
    const char *cmd = w[0];
    int32_t id;
    long v;
    if (strcmp(cmd, "ping") == 0 && nw == 1)
        return 0;
    if ((strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0) && nw == 2) {
        if (parse_broker(w[1], &id) < 0)
            return fail(err, errlen, "expected a broker id or all, got '%s'", w[1]);
        return check(cmd[0] == 'd' ? rd_kafka_mock_broker_set_down(mc, id)
                                   : rd_kafka_mock_broker_set_up(mc, id),
                     cmd, err, errlen);
    }
    if (strcmp(cmd, "rtt") == 0 && nw == 3) {
        if (parse_broker(w[1], &id) < 0)
            return fail(err, errlen, "expected a broker id or all, got '%s'", w[1]);
        if (parse_long(w[2], 0, 3600000, &v) < 0)
            return fail(err, errlen, "expected milliseconds, got '%s'", w[2]);
        return check(rd_kafka_mock_broker_set_rtt(mc, id, (int)v), cmd, err, errlen);
    }
    if (strcmp(cmd, "errors") == 0 && nw == 4)
        return push_errors(mc, w, err, errlen);
    if (strcmp(cmd, "clear") == 0 && nw == 2) {
        int16_t key;
        if (parse_request(w[1], &key) < 0)
            return fail(err, errlen, "unknown request '%s'", w[1]);
        rd_kafka_mock_clear_request_errors(mc, key);
        return 0;
    }
    if (strcmp(cmd, "leader") == 0 && nw == 4) {
        if (parse_long(w[2], 0, INT32_MAX, &v) < 0 || parse_broker(w[3], &id) < 0 || id < 0)
            return fail(err, errlen, "expected: leader TOPIC PARTITION ID");
        return check(rd_kafka_mock_partition_set_leader(mc, w[1], (int32_t)v, id), cmd, err,
                     errlen);
    }
    if (strcmp(cmd, "coordinator") == 0 && nw == 3) {
        if (parse_broker(w[2], &id) < 0 || id < 0)
            return fail(err, errlen, "expected: coordinator GROUP ID");
        return check(rd_kafka_mock_coordinator_set(mc, "group", w[1], id), cmd, err, errlen);
    }
    return fail(err, errlen,
                "cannot run '%s' with %d argument(s); commands: down|up ID|all, rtt ID|all MS, "
                "errors REQUEST N ERR[,ERR...], clear REQUEST, leader TOPIC PARTITION ID, "
                "coordinator GROUP ID, ping",
                cmd, nw - 1);
}
