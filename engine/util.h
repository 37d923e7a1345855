/* util.h — allocation that aborts on out-of-memory, for the hot path.
 *
 * The engine's out-of-memory policy (STYLE: stated per module): the hot path
 * (shards, tables, merger) aborts with a message when the allocator fails,
 * as Redis's zmalloc does; configuration and setup paths return -ENOMEM.
 */
#ifndef OP_UTIL_H
#define OP_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *op_xmalloc(size_t n);
void *op_xcalloc(size_t n, size_t size);
void *op_xrealloc(void *p, size_t n);

/* Monotonic and wall clocks in milliseconds. */
int64_t op_now_mono_ms(void);
int64_t op_now_wall_ms(void);
/* Sleeps ms milliseconds (a signal may end it early). */
void op_sleep_ms(int64_t ms);

#endif
