/* deadletter.h — where rejected records go (DESIGN §2).
 *
 * Every record the parser rejects is copied verbatim, with its reason, to a
 * JSONL file or a Kafka topic, so that nothing is lost silently and an
 * operator can replay it after a fix. Bad records are rare, so this path
 * favours simplicity over speed.
 *
 * Thread safety: op_deadletter_put may be called by any worker concurrently.
 */
#ifndef OP_DEADLETTER_H
#define OP_DEADLETTER_H

#include <stddef.h>
#include <stdint.h>

typedef struct op_deadletter op_deadletter_t;

/* target: "FILE" (appended, one JSON object per line:
 * {"reason":"utf8","partition":3,"offset":42,"record_b64":"..."}) or
 * "kafka:TOPIC" (the record's bytes as the value, the reason, partition and
 * offset as message headers), produced with brokers and the extra
 * librdkafka properties of kafka_config (--kafka-config, may be NULL).
 * Returns 0 or a negative error code with a message in err. */
int op_deadletter_open(op_deadletter_t **out, const char *target, const char *brokers,
                       const char *kafka_config, char *err, size_t errlen);

/* Copies one rejected record. Returns 0 or a negative error code (the caller
 * counts the failure; the record is still counted as bad). */
int op_deadletter_put(op_deadletter_t *dl, const char *reason, const char *buf, size_t len,
                      int32_t partition, int64_t offset);

/* Flushes and closes. Called by main() after the workers have stopped. */
void op_deadletter_close(op_deadletter_t *dl);

#endif
