/* fanout.h — a fork-join team: one caller and a few helper threads running
 * the parts of one job, for the merger's big merges (state.c).
 *
 * At high cardinality a merge is a walk of random memory accesses, bounded
 * by how many misses one core keeps in flight; cores in parallel add theirs
 * (bench/physlimit: two cores scale DRAM latency 2x). At the end of a run the
 * workers' cores are idle while the merger merges the last shards: the team
 * puts them to work. The helpers sleep on a condition variable between jobs
 * (no spinning: during a run the workers own the cores) -- OpenMP's
 * libgomp would spin after each region, and its synchronisation is
 * invisible to ThreadSanitizer.
 *
 * Synchronisation: op_fanout_run publishes the job under the team's mutex
 * and returns after every part has reported done under it, so everything a
 * part wrote happens before run returns, and everything the caller wrote
 * before run happens before the parts start.
 *
 * Owner: one thread at a time calls run (the merger); create and destroy
 * may come from another (main), before the first run and after the last
 * has returned to a thread that main has since joined.
 * Out of memory or thread creation failure: create returns the error.
 */
#ifndef OP_FANOUT_H
#define OP_FANOUT_H

typedef struct op_fanout op_fanout_t;

typedef void (*op_fanout_cb)(void *arg, int part);

/* A team of width threads in all: the caller and width - 1 helpers
 * (width 1..OP_FANOUT_MAX). Returns 0 or a negative error code. */
#define OP_FANOUT_MAX 8
int op_fanout_create(op_fanout_t **out, int width);
/* Stops and joins the helpers. NULL is fine. */
void op_fanout_destroy(op_fanout_t *f);

int op_fanout_width(const op_fanout_t *f);

/* Runs fn(arg, i) for i in 0 .. parts - 1 (any number of them) and
 * returns when all have: the caller and the helpers each take the next
 * part not yet taken until none is left, so a part may run on any of them
 * and a thread may run several. More parts than threads let the team
 * balance itself when one of its threads runs slower (a shared core). */
void op_fanout_run(op_fanout_t *f, int parts, op_fanout_cb fn, void *arg);

#endif
