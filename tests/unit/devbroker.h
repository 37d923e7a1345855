/* devbroker.h — start and stop bin/orderpulse-devbroker from a unit test.
 *
 * Header-only (static functions) so that each Criterion binary that needs a
 * broker includes it; the Makefile builds only tests/unit/test_*.c. The
 * broker is a child of the test process, started with PR_SET_PDEATHSIG so
 * that a crashing test does not leave it behind, and stopped by its pid
 * with SIGTERM. The binary is $OP_DEVBROKER or bin/orderpulse-devbroker
 * (tests run from the repository root).
 */
#ifndef OP_TEST_DEVBROKER_H
#define OP_TEST_DEVBROKER_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct devbroker {
    pid_t pid;
    int out; /* the broker's stdout, kept open so that it never gets SIGPIPE */
    char bootstrap[256];
} devbroker_t;

static inline const char *devbroker_path(void)
{
    const char *p = getenv("OP_DEVBROKER");
    return p && *p ? p : "bin/orderpulse-devbroker";
}

/* Starts the broker with extra arguments (NULL-terminated) and reads its
 * bootstrap address. Returns 0, -ENOENT if the binary is not built, or
 * another negative errno. */
static inline int devbroker_start(devbroker_t *b, const char *const *args)
{
    const char *path = devbroker_path();
    char *argv[32];
    int argc = 0, fds[2];
    memset(b, 0, sizeof(*b));
    b->pid = -1;
    b->out = -1;
    if (access(path, X_OK) != 0)
        return -ENOENT;
    argv[argc++] = (char *)path;
    for (; args && *args && argc < 31; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    if (pipe(fds) < 0)
        return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -errno;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(path, argv);
        _exit(127);
    }
    close(fds[1]);
    b->pid = pid;
    b->out = fds[0];
    size_t n = 0;
    while (n + 1 < sizeof(b->bootstrap)) {
        struct pollfd pfd = {.fd = b->out, .events = POLLIN};
        if (poll(&pfd, 1, 10000) <= 0)
            break;
        ssize_t r = read(b->out, b->bootstrap + n, 1);
        if (r <= 0 || b->bootstrap[n] == '\n')
            break;
        n++;
    }
    b->bootstrap[n] = '\0';
    return n > 0 ? 0 : -EIO;
}

static inline void devbroker_stop(devbroker_t *b)
{
    if (b->pid > 0) {
        kill(b->pid, SIGTERM);
        waitpid(b->pid, NULL, 0);
        b->pid = -1;
    }
    if (b->out >= 0) {
        close(b->out);
        b->out = -1;
    }
}

#endif
