/* devbroker.c — orderpulse-devbroker: librdkafka's mock Kafka cluster as a process.
 *
 * The dev broker for `make demo` and the tests: real Kafka protocol on
 * loopback, in memory, no JVM. It prints the bootstrap address as the first
 * line of stdout, then waits for SIGINT/SIGTERM and tears the cluster down.
 * The mock cluster keeps only about the last 5 MB of each partition and
 * chooses its own ports, which is why there is no --port.
 *
 * With --control it also reads fault commands from stdin, one per line
 * (sim/mockctl.h: brokers down/up, request errors, round-trip time), and
 * answers each on stdout with "ok" or "error: <reason>", in order; end of
 * input ends the commands, not the broker.
 *
 * Threads: the mock cluster runs in librdkafka's threads; main blocks the
 * stop signals before creating them (so they inherit the mask) and waits in
 * sigwait, so no signal handler ever runs concurrently with them. The
 * control thread runs each command under ctl_mu, which main takes before
 * destroying the cluster: no command runs on a cluster being torn down.
 */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conf.h"
#include "engine/io/rdkafka_tsan.h" /* TSan builds only: librdkafka's C11 threads */
#include "sim/mockctl.h"

#define PROG       "orderpulse-devbroker"
#define ENV_PREFIX "ORDERPULSE_DEVBROKER_"
#define MAX_TOPICS 64

static const op_conf_spec_t spec[] = {
    {"brokers", OP_CONF_VALUE, "N", "1", "number of mock brokers"},
    {"topic", OP_CONF_VALUE, "NAME[,NAME...]", "orders", "topics to create"},
    {"partitions", OP_CONF_VALUE, "N", "8", "partitions per topic"},
    {"control", OP_CONF_FLAG, NULL, NULL,
     "read fault commands from stdin (down|up ID|all, rtt ID|all MS, errors REQUEST N ERR,...; "
     "see docs/OPERATIONS.md), answer each on stdout"},
    {"config", OP_CONF_VALUE, "FILE", NULL, "read options from FILE (name = value lines)"},
};

/* The control thread's view of the cluster (see the comment on top). */
static pthread_mutex_t ctl_mu = PTHREAD_MUTEX_INITIALIZER;
static rd_kafka_mock_cluster_t *ctl_mc; /* under ctl_mu; NULL once torn down */

static void *control_main(void *arg)
{
    (void)arg;
    char line[1024], err[512];
    while (fgets(line, sizeof(line), stdin)) {
        pthread_mutex_lock(&ctl_mu);
        int rc = ctl_mc ? op_mockctl_exec(ctl_mc, line, err, sizeof(err)) : -1;
        if (!ctl_mc)
            snprintf(err, sizeof(err), "shutting down");
        pthread_mutex_unlock(&ctl_mu);
        if (rc == 0)
            printf("ok\n");
        else
            printf("error: %s\n", err);
        fflush(stdout);
        line[strcspn(line, "\r\n")] = 0;
        fprintf(stderr, "devbroker: %s: %s\n", line, rc == 0 ? "ok" : err);
    }
    return NULL;
}

struct options {
    int64_t brokers, partitions;
    char *topics[MAX_TOPICS]; /* point into topic_buf */
    int ntopics;
    char *topic_buf;
};

static int load_options(op_conf_t *conf, struct options *o, char *err, size_t errlen)
{
    int rc;
    if ((rc = op_conf_parse_i64("--brokers", op_conf_get(conf, "brokers"), 1, 32, &o->brokers, err,
                                errlen)) < 0)
        return rc;
    if ((rc = op_conf_parse_i64("--partitions", op_conf_get(conf, "partitions"), 1, 1024,
                                &o->partitions, err, errlen)) < 0)
        return rc;
    const char *t = op_conf_get(conf, "topic");
    o->topic_buf = strdup(t ? t : "");
    if (!o->topic_buf)
        return op_conf_error(err, errlen, "out of memory");
    char *save = NULL;
    for (char *tok = strtok_r(o->topic_buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (o->ntopics == MAX_TOPICS)
            return op_conf_error(err, errlen, "--topic: at most %d topics", MAX_TOPICS);
        for (const char *c = tok; *c; c++)
            if (!(*c == '.' || *c == '_' || *c == '-' || (*c >= '0' && *c <= '9') ||
                  (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
                return op_conf_error(err, errlen, "--topic: '%s' is not a valid topic name", tok);
        if (strlen(tok) > 249)
            return op_conf_error(err, errlen, "--topic: '%.40s...' is too long", tok);
        o->topics[o->ntopics++] = tok;
    }
    if (!o->ntopics)
        return op_conf_error(err, errlen, "--topic: no topic given");
    return 0;
}

int main(int argc, char **argv)
{
    op_conf_t conf;
    struct options o;
    char err[OP_CONF_ERRLEN + 256], errstr[512];
    int status = 2;
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;

    memset(&o, 0, sizeof(o));
    int rc = op_conf_load(&conf, spec, sizeof(spec) / sizeof(spec[0]), ENV_PREFIX, argc, argv, err,
                          sizeof(err));
    if (rc == OP_CONF_HELP) {
        op_conf_usage(
            spec, sizeof(spec) / sizeof(spec[0]), ENV_PREFIX,
            PROG " [--brokers N] [--topic NAME[,NAME...]] [--partitions N] [--control]",
            "Runs librdkafka's built-in mock Kafka cluster on loopback (real Kafka\n"
            "protocol, in memory) and prints its bootstrap address (HOST:PORT,...) as the\n"
            "first line of stdout; stops cleanly on SIGINT or SIGTERM. The mock cluster\n"
            "picks free ports itself, so there is no --port: read the address from the\n"
            "first line. It keeps only about the last 5 MB of each partition; older\n"
            "messages are dropped. For development and tests, not production.\n"
            "With --control, fault commands are read from stdin, one per line, and each is\n"
            "answered on stdout (ok / error: ...): down ID|all, up ID|all, rtt ID|all MS,\n"
            "errors REQUEST N ERR[,ERR...], clear REQUEST, leader TOPIC PARTITION ID,\n"
            "coordinator GROUP ID, ping.",
            stdout);
        status = 0;
        goto out;
    }
    if (rc < 0 || (rc = load_options(&conf, &o, err, sizeof(err))) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        goto out;
    }

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    status = 1;
    rd_kafka_conf_t *kconf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(kconf, "log_level", "4", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(kconf);
        fprintf(stderr, PROG ": kafka: %s\n", errstr);
        goto out;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, kconf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(kconf);
        fprintf(stderr, PROG ": kafka: %s\n", errstr);
        goto out;
    }
    mc = rd_kafka_mock_cluster_new(rk, (int)o.brokers);
    if (!mc) {
        fprintf(stderr, PROG ": cannot create the mock cluster\n");
        goto out;
    }
    int replication = o.brokers < 3 ? (int)o.brokers : 3;
    for (int i = 0; i < o.ntopics; i++) {
        rd_kafka_resp_err_t e =
            rd_kafka_mock_topic_create(mc, o.topics[i], (int)o.partitions, replication);
        if (e) {
            fprintf(stderr, PROG ": topic %s: %s\n", o.topics[i], rd_kafka_err2str(e));
            goto out;
        }
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    if (fflush(stdout) != 0) {
        fprintf(stderr, PROG ": cannot write the bootstrap address: %s\n", strerror(errno));
        goto out;
    }
    fprintf(stderr, "devbroker: %d broker(s) at %s, %d topic(s) with %d partitions each\n",
            (int)o.brokers, rd_kafka_mock_cluster_bootstraps(mc), o.ntopics, (int)o.partitions);
    ctl_mc = mc; /* before the thread exists: no lock needed */
    pthread_t ctl;
    if (op_conf_flag(&conf, "control")) {
        int e = pthread_create(&ctl, NULL, control_main, NULL);
        if (e) {
            fprintf(stderr, PROG ": control thread: %s\n", strerror(e));
            goto out;
        }
        pthread_detach(ctl); /* it may sit in fgets until the process exits */
    }

    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    fprintf(stderr, "devbroker: %s, shutting down\n", strsignal(sig));
    status = 0;
out:
    pthread_mutex_lock(&ctl_mu);
    ctl_mc = NULL;
    pthread_mutex_unlock(&ctl_mu);
    if (mc)
        rd_kafka_mock_cluster_destroy(mc);
    if (rk)
        rd_kafka_destroy(rk);
    free(o.topic_buf);
    op_conf_dispose(&conf);
    return status;
}
