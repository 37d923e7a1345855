/* tsan.h — makes librdkafka's threads visible to ThreadSanitizer.
 *
 * librdkafka 2.0 starts its threads with C11 thrd_create, which neither
 * GCC 12's nor clang 14's TSan runtime intercepts: such a thread has no TSan
 * state and crashes on its first malloc (measured here: any producer, and the
 * mock cluster, die with SEGV in the sanitizer allocator). Under
 * -fsanitize=thread this module defines thrd_create itself, on top of the
 * intercepted pthread_create, and suppresses reports about what the
 * uninstrumented library does in its threads; in other builds it defines
 * nothing.
 *
 * Thread safety: no state.
 */
#ifndef OP_TSAN_H
#define OP_TSAN_H

/* Call once from main(): a no-op whose only job is to make the linker keep
 * this object (nothing else references thrd_create from our code). Returns 1
 * in a TSan build. */
int op_tsan_link(void);

#endif
