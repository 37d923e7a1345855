/* redisserver.h — a real redis-server on a free loopback port, for unit tests.
 *
 * Header-only, like devbroker.h. The server is a child of the test (with
 * PR_SET_PDEATHSIG, so a crashing test does not leave it behind), started
 * without persistence and stopped by its pid.
 */
#ifndef OP_TEST_REDISSERVER_H
#define OP_TEST_REDISSERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct redisserver {
    pid_t pid;
    int port;
} redisserver_t;

static inline int redisserver_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts redis-server; waits until it answers PING. 0 or a negative errno. */
static inline int redisserver_start(redisserver_t *r)
{
    char port[16];
    r->port = redisserver_free_port();
    if (r->port < 0)
        return -EADDRNOTAVAIL;
    snprintf(port, sizeof(port), "%d", r->port);
    pid_t parent = getpid();
    r->pid = fork();
    if (r->pid < 0)
        return -errno;
    if (r->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        freopen("/dev/null", "w", stdout);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        struct timeval tv = {0, 200000};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
        if (c && !c->err) {
            redisReply *rep = redisCommand(c, "PING");
            int ok = rep && rep->type == REDIS_REPLY_STATUS;
            freeReplyObject(rep);
            redisFree(c);
            if (ok)
                return 0;
        } else if (c) {
            redisFree(c);
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    return -ETIMEDOUT;
}

static inline void redisserver_stop(redisserver_t *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        waitpid(r->pid, NULL, 0);
        r->pid = -1;
    }
}

#endif
