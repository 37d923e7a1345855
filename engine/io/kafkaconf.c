/* kafkaconf.c — applies --kafka-config to a librdkafka configuration. */
#include "engine/io/kafkaconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conf.h"

/* Calls fn(name, value, arg) for each "name=value" of list, in order, until
 * one returns non-zero (a malformed item is an error of its own). */
static int each_property(const char *list,
                         int (*fn)(const char *, const char *, void *, char *, size_t), void *arg,
                         char *err, size_t errlen)
{
    if (!list || !*list)
        return 0;
    char *copy = strdup(list), *save = NULL;
    if (!copy) {
        op_conf_error(err, errlen, "--kafka-config: out of memory");
        return -ENOMEM;
    }
    int rc = 0;
    for (char *item = strtok_r(copy, ",", &save); item && rc == 0;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq || eq == item) {
            rc = op_conf_error(err, errlen, "--kafka-config: expected name=value, got '%s'", item);
            break;
        }
        *eq = 0;
        rc = fn(item, eq + 1, arg, err, errlen);
    }
    free(copy);
    return rc;
}

static int apply_one(const char *name, const char *value, void *kc, char *err, size_t errlen)
{
    char errstr[256];
    if (rd_kafka_conf_set(kc, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return op_conf_error(err, errlen, "--kafka-config: %s=%s: %s", name, value, errstr);
    return 0;
}

int op_kafkaconf_apply(rd_kafka_conf_t *kc, const char *list, char *err, size_t errlen)
{
    return each_property(list, apply_one, kc, err, errlen);
}

static int check_one(const char *name, const char *value, void *unused, char *err, size_t errlen)
{
    static const struct {
        const char *name, *why;
    } reserved[] = {
        {"bootstrap.servers", "use --brokers"},
        {"metadata.broker.list", "use --brokers"},
        {"group.id", "use --group"},
        {"enable.auto.offset.store", "orderpulse stores offsets itself, after it applied them"},
        {"enable.partition.eof",
         "orderpulse needs end-of-partition events (--once, the lag, idle partitions)"},
    };
    (void)unused;
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (!strcmp(name, reserved[i].name))
            return op_conf_error(err, errlen, "--kafka-config: %s cannot be set: %s", name,
                                 reserved[i].why);
    if (!strcmp(name, "auto.offset.reset") && strcmp(value, "earliest") &&
        strcmp(value, "smallest") && strcmp(value, "beginning"))
        return op_conf_error(err, errlen,
                             "--kafka-config: auto.offset.reset=%s: a start that is gone must "
                             "resume at the earliest record kept, where the skipped ones are "
                             "counted as lost (--on-loss)",
                             value);
    if (!strcmp(name, "partition.assignment.strategy") && strstr(value, "cooperative"))
        return op_conf_error(err, errlen,
                             "--kafka-config: partition.assignment.strategy=%s: orderpulse "
                             "commits everything it read before a partition is given up, which "
                             "needs the eager protocol: use range or roundrobin",
                             value);
    return 0;
}

int op_kafkaconf_check(const char *list, char *err, size_t errlen)
{
    return each_property(list, check_one, NULL, err, errlen);
}
