/* mockctl.h — fault injection commands for librdkafka's mock Kafka cluster.
 *
 * orderpulse-devbroker --control reads these from stdin, one per line, so
 * that tests (tests/e2e/test_kafka_faults.py) and `make chaos` can take
 * brokers down, make requests fail or slow them down while the engine and
 * the simulator run. Each command maps onto one call of rdkafka_mock.h:
 *
 *   down ID|all                   rd_kafka_mock_broker_set_down
 *   up ID|all                     rd_kafka_mock_broker_set_up
 *   rtt ID|all MS                 rd_kafka_mock_broker_set_rtt
 *   errors REQUEST N ERR[,ERR...] rd_kafka_mock_push_request_errors_array:
 *                                 the next N requests of that type fail,
 *                                 with the listed errors in turn
 *   clear REQUEST                 rd_kafka_mock_clear_request_errors
 *   leader TOPIC PARTITION ID     rd_kafka_mock_partition_set_leader
 *   coordinator GROUP ID          rd_kafka_mock_coordinator_set ("group")
 *   ping                          nothing (an answer proves the earlier ones ran)
 *
 * REQUEST is a Kafka request name (Fetch, OffsetCommit, JoinGroup,
 * Heartbeat, ...; see op_mockctl_exec) or its ApiKey number; ERR is a
 * librdkafka error name without the RD_KAFKA_RESP_ERR_ prefix
 * (NOT_COORDINATOR, REQUEST_TIMED_OUT, _TRANSPORT, ...) or its number.
 * Broker ids are 1..N.
 */
#ifndef OP_MOCKCTL_H
#define OP_MOCKCTL_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stddef.h>

/* Runs one command line (without or with its trailing newline). Returns 0,
 * or -EINVAL with a one-line reason in err. Any thread that owns the mock
 * cluster's lifetime (the calls themselves are the mock cluster's, which
 * hand over to its own thread). */
int op_mockctl_exec(rd_kafka_mock_cluster_t *mc, const char *line, char *err, size_t errlen);

#endif
