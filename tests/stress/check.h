/* check.h — assertions for the stress programs (plain executables, so that
 * they also run under ThreadSanitizer, where Criterion cannot start).
 * A failed check prints its location and message and is counted;
 * check_report() turns the count into the exit status. */
#ifndef OP_TESTS_CHECK_H
#define OP_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int check_failures;

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: check failed: %s:", __FILE__, __LINE__, #cond);                \
            fprintf(stderr, " " __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* A check the rest of the program cannot go on without (cond is evaluated
 * once, like every check here). */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        int required_ = !!(cond);                                                                  \
        CHECK_MSG(required_, __VA_ARGS__);                                                         \
        if (!required_)                                                                            \
            exit(1);                                                                               \
    } while (0)

#define CHECK(cond, ...)       CHECK_MSG(cond, __VA_ARGS__)
#define CHECK_EQ(a, b, ...)    CHECK_MSG((a) == (b), __VA_ARGS__)
#define CHECK_GT(a, b, ...)    CHECK_MSG((a) > (b), __VA_ARGS__)
#define CHECK_NOT_NULL(p, ...) CHECK_MSG((p) != NULL, __VA_ARGS__)

static inline int check_report(const char *name)
{
    if (check_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
        return 1;
    }
    fprintf(stderr, "%s: ok\n", name);
    return 0;
}

#endif
