/* kafkaconf.h — --kafka-config: extra librdkafka properties for every client.
 *
 * The consumer (engine/source_kafka.c) and the dead-letter producer
 * (engine/deadletter.c) both take the operator's "name=value,name=value"
 * list after their own defaults, so security settings (TLS, SASL) and
 * timeouts reach every connection the engine makes. Main thread only.
 */
#ifndef OP_KAFKACONF_H
#define OP_KAFKACONF_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* Sets each property of list (may be NULL or empty) on kc. Returns 0, or
 * -EINVAL / -ENOMEM with a one-line message in err naming the property. */
int op_kafkaconf_apply(rd_kafka_conf_t *kc, const char *list, char *err, size_t errlen);

/* Refuses the properties orderpulse sets itself and depends on (its offsets,
 * its rebalance handling, its end-of-partition events) or that have a flag of
 * their own: one line naming the property and why. Returns 0 or -EINVAL. */
int op_kafkaconf_check(const char *list, char *err, size_t errlen);

#endif
