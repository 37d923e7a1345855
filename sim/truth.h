/* truth.h — the exact expected snapshot, computed by the simulator itself.
 *
 * The simulator adds up every record that was actually delivered, from the
 * values it generated (not by parsing its own output, and with none of the
 * engine's code), and writes the result in the shape of GET /api/v1/snapshot
 * (DESIGN §5), so that a test can compare the engine with it member by member.
 *
 * What the document holds, for the engine's side of the comparison:
 *  - every list holds only names/windows that have at least one good order;
 *    "gender_slots" quantity objects list the genders with a non-zero
 *    quantity in that slot, in --genders order;
 *  - minutes carry "final": true and every window "state": "final" (the
 *    truth is written after the input ends);
 *  - "watermark" is the largest good event time minus 5000 ms (0 if none);
 *  - "stats.late_records" counts good delivered records that --late-fraction
 *    pushed back; "stats.bad_records" counts delivered malformed ones.
 *
 * Out of memory: op_truth_create returns -ENOMEM; op_truth_add aborts (it is
 * on the generation path and a half-counted truth is worthless).
 * Thread safety: one thread (the simulator's main thread, which is also the
 * thread that serves Kafka delivery reports).
 */
#ifndef OP_TRUTH_H
#define OP_TRUTH_H

#include <stdint.h>
#include <stdio.h>

#include "sim/gen.h"

#define OP_TRUTH_LATENESS_MS 5000

typedef struct op_truth op_truth_t;

/* The generator's options (copied: users, genders, names). Returns 0,
 * -ENOMEM, or -EINVAL for options op_gen_init refuses. */
int op_truth_create(op_truth_t **out, const op_gen_opts_t *o);
void op_truth_destroy(op_truth_t *t);

/* Counts one delivered record: a good one in the metrics, a bad one in
 * stats.bad_records. */
void op_truth_add(op_truth_t *t, const op_gen_record_t *rec);

/* Writes the document (one line of JSON and a newline) to f. Returns 0 or
 * -EIO. as_of is the wall-clock time in epoch ms. */
int op_truth_write(op_truth_t *t, FILE *f, int64_t as_of);

/* Counters for the summary line and the tests. */
uint64_t op_truth_good(const op_truth_t *t);
uint64_t op_truth_bad(const op_truth_t *t);
uint64_t op_truth_late(const op_truth_t *t);

#endif
