/* kafkaconf.c — applies --kafka-config to a librdkafka configuration. */
#include "engine/io/kafkaconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conf.h"

int op_kafkaconf_apply(rd_kafka_conf_t *kc, const char *list, char *err, size_t errlen)
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
        char errstr[256];
        if (rd_kafka_conf_set(kc, item, eq + 1, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
            rc = op_conf_error(err, errlen, "--kafka-config: %s=%s: %s", item, eq + 1, errstr);
    }
    free(copy);
    return rc;
}

int op_kafkaconf_check(const char *list, char *err, size_t errlen)
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
        if (eq)
            *eq = 0;
        for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]) && rc == 0; i++)
            if (!strcmp(item, reserved[i].name))
                rc = op_conf_error(err, errlen, "--kafka-config: %s cannot be set: %s", item,
                                   reserved[i].why);
        if (!rc && eq && !strcmp(item, "auto.offset.reset") && strcmp(eq + 1, "earliest") &&
            strcmp(eq + 1, "smallest") && strcmp(eq + 1, "beginning"))
            rc = op_conf_error(err, errlen,
                               "--kafka-config: auto.offset.reset=%s: a start that is gone must "
                               "resume at the earliest record kept, where the skipped ones are "
                               "counted as lost (--on-loss)",
                               eq + 1);
        if (!rc && eq && !strcmp(item, "partition.assignment.strategy") &&
            strstr(eq + 1, "cooperative"))
            rc = op_conf_error(err, errlen,
                               "--kafka-config: partition.assignment.strategy=%s: orderpulse "
                               "commits everything it read before a partition is given up, which "
                               "needs the eager protocol: use range or roundrobin",
                               eq + 1);
    }
    free(copy);
    return rc;
}
