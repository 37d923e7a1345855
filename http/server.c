/* server.c — listeners, HTTP threads, TLS, wake-ups and shutdown (see
 * server.h). The routes themselves are in api.c.
 *
 * Each thread owns an h2o event loop, an h2o context and a listening socket
 * bound with SO_REUSEPORT to the shared address. A thread is woken from
 * outside only through its context's message queue (h2o's locked list plus
 * an eventfd): "a snapshot was published" and "stop".
 *
 *   field                 written by             read by            how
 *   wake_pending          notifier, the thread   both               __atomic exchange (acq_rel)
 *   wake_msg, stop_msg    notifier / main        the thread         h2o_multithread queue (mutex)
 *   counters              the thread             /metrics anywhere  __atomic relaxed (metrics.h)
 *   everything else       the thread (main before start and after join)
 *
 * The wake message is sent only when wake_pending goes 0 -> 1 and the
 * thread clears wake_pending after unlinking the message, so one message
 * node per thread suffices and a burst of publications costs one wake-up;
 * the exchange pair orders the publication before the thread's next read
 * of the snapshot pointer.
 *
 * Out-of-memory policy: setup (op_http_start) returns -ENOMEM; inside the
 * event loops h2o's allocators abort, as the engine's hot path does.
 */
#include "http/server.h"

#include <errno.h>
#include <h2o.h>
#include <h2o/http2.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <urcu.h>

#include "engine/conf.h"
#include "engine/util.h"
#include "http/api.h"

#define DEFAULT_HEARTBEAT_MS 15000
#define DEFAULT_MAX_CONNS    10000
#define MAX_REQUEST_BODY     4096 /* larger bodies get h2o's 413; smaller ones ours */
#define STOP_GRACE_MS        1000 /* then open connections are shut down */
#define ACCEPT_BATCH         64
#define STATIC_SEARCH_DEPTH  4

typedef struct http_thread http_thread_t;

/* An accepted connection, tracked so that the thread can count them and
 * close the stragglers at shutdown. Owner: its thread. */
typedef struct conn {
    h2o_linklist_t link; /* in thread->conns */
    h2o_socket_t *sock;
    http_thread_t *t;
} conn_t;

/* One HTTP thread (see the table above). */
struct http_thread {
    op_http_t *srv;
    int idx;
    int fd; /* listening socket; the thread's h2o socket owns it once started */
    pthread_t tid;
    int started; /* pthread_create succeeded (main thread) */
    int leaked;  /* connections outlived the grace period: keep everything */
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t wake_recv, stop_recv;
    h2o_multithread_message_t wake_msg, stop_msg;
    int wake_pending; /* __atomic */
    int stop;
    h2o_linklist_t conns;
    size_t nconns;
    op_http_env_t env;
    op_http_counters_t counters;
};

/* Owner: main (start/stop); read-only for the threads while they run. */
struct op_http {
    op_http_conf_t conf;
    h2o_globalconf_t config;
    int config_inited;
    SSL_CTX *ssl;
    int nthreads;
    http_thread_t **threads;
    op_http_counters_t **counters; /* each thread's, for /metrics */
    int have_static, have_vendor;
    char vendor_file[PATH_MAX];
    char address[INET6_ADDRSTRLEN + 16];

    pthread_mutex_t mu; /* start-up: threads report they serve */
    pthread_cond_t cv;
    int nserving;
};

/* --- address ------------------------------------------------------------------------ */

/* Splits "[ADDR:]PORT" / "[IPV6]:PORT" into host ("" = any) and port. */
static int split_listen(const char *s, char *host, size_t hostlen, char *port, size_t portlen,
                        char *err, size_t errlen)
{
    const char *h = "", *p = s;
    size_t hl = 0;
    if (!s || !*s)
        goto bad;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close == s + 1 || close[1] != ':')
            goto bad;
        h = s + 1;
        hl = (size_t)(close - h);
        p = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon && memchr(s, ':', (size_t)(colon - s)))
            return op_conf_error(
                err, errlen, "--http: write an IPv6 address in brackets, [ADDR]:PORT; got '%s'", s);
        if (colon) {
            h = s;
            hl = (size_t)(colon - s);
            p = colon + 1;
        }
    }
    size_t pl = strlen(p);
    if (hl >= hostlen || pl == 0 || pl > 5 || pl >= portlen || strspn(p, "0123456789") != pl ||
        atoi(p) > 65535)
        goto bad;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    return 0;
bad:
    return op_conf_error(err, errlen, "--http: expected [ADDR:]PORT with PORT 0-65535, got '%s'",
                         s ? s : "");
}

int op_http_check_listen(const char *listen, char *err, size_t errlen)
{
    char host[256], port[8];
    return split_listen(listen, host, sizeof(host), port, sizeof(port), err, errlen);
}

/* --- directories -------------------------------------------------------------------- */

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int op_http_find_dirs(const char *static_opt, char *static_dir, size_t static_len, char *vendor_dir,
                      size_t vendor_len, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    static_dir[0] = vendor_dir[0] = '\0';
    if (static_opt) {
        if (!realpath(static_opt, buf) || !is_dir(buf))
            return op_conf_error(err, errlen, "--static-dir: '%s' is not a directory", static_opt);
        if ((size_t)snprintf(static_dir, static_len, "%s", buf) >= static_len)
            return op_conf_error(err, errlen, "--static-dir: path too long");
    } else {
        /* http/static next to the executable's bin/ (bin/orderpulse), or up
         * to a few levels higher (build/asan/bin/orderpulse); or where make
         * install puts it, PREFIX/share/orderpulse/http/static beside
         * PREFIX/bin/orderpulse. */
        static const char *const layouts[] = {"%s/http/static", "%s/share/orderpulse/http/static"};
        ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
        if (n <= 0)
            return 0;
        buf[n] = '\0';
        for (int up = 0; up <= STATIC_SEARCH_DEPTH && !static_dir[0]; up++) {
            char *slash = strrchr(buf, '/');
            if (!slash || slash == buf)
                break;
            *slash = '\0';
            for (size_t l = 0; l < sizeof(layouts) / sizeof(layouts[0]) && !static_dir[0]; l++) {
                char cand[PATH_MAX];
                if ((size_t)snprintf(cand, sizeof(cand), layouts[l], buf) < sizeof(cand) &&
                    is_dir(cand))
                    snprintf(static_dir, static_len, "%s", cand);
            }
        }
        if (!static_dir[0])
            return 0;
    }
    /* node_modules sits two levels above http/static (the repository root). */
    char cand[PATH_MAX];
    if ((size_t)snprintf(cand, sizeof(cand), "%s/../../node_modules", static_dir) < sizeof(cand) &&
        realpath(cand, buf) && is_dir(buf))
        snprintf(vendor_dir, vendor_len, "%s", buf);
    return 0;
}

/* --- sockets ------------------------------------------------------------------------ */

static int listen_socket(const struct addrinfo *ai, int reuseport, char *err, size_t errlen,
                         const char *what)
{
    int one = 1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, H2O_SOMAXCONN) != 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    op_conf_error(err, errlen, "--http: cannot listen on %s: %s", what, strerror(e));
    return -e;
}

/* Binds every thread's socket to the address. The first bind goes without
 * SO_REUSEPORT as a probe, so that another process already serving the
 * port (even with SO_REUSEPORT) is an error, not a silent share. */
static int bind_all(op_http_t *h, char *err, size_t errlen)
{
    char host[256], port[8];
    int rc = split_listen(h->conf.listen, host, sizeof(host), port, sizeof(port), err, errlen);
    if (rc < 0)
        return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host[0] ? host : "0.0.0.0", port, &hints, &ai);
    if (gai != 0)
        return op_conf_error(err, errlen, "--http: cannot resolve '%s': %s", h->conf.listen,
                             gai_strerror(gai));
    struct sockaddr_storage addr;
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    struct addrinfo bound = *ai;
    bound.ai_addr = (struct sockaddr *)&addr;
    freeaddrinfo(ai);

    int probe = listen_socket(&bound, 0, err, errlen, h->conf.listen);
    if (probe < 0)
        return probe;
    socklen_t len = bound.ai_addrlen;
    getsockname(probe, (struct sockaddr *)&addr, &len); /* the port, if 0 was asked */
    close(probe);

    char numhost[INET6_ADDRSTRLEN], numport[8];
    getnameinfo((struct sockaddr *)&addr, len, numhost, sizeof(numhost), numport, sizeof(numport),
                NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(h->address, sizeof(h->address), addr.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
             numhost, numport);
    for (int i = 0; i < h->nthreads; i++) {
        int fd = listen_socket(&bound, 1, err, errlen, h->address);
        if (fd < 0)
            return fd;
        h->threads[i]->fd = fd;
    }
    return 0;
}

static int setup_tls(op_http_t *h, char *err, size_t errlen)
{
    const op_http_conf_t *c = &h->conf;
    char why[256];
    h->ssl = SSL_CTX_new(TLS_server_method());
    if (!h->ssl)
        return op_conf_error(err, errlen, "--tls-cert: cannot create a TLS context");
    SSL_CTX_set_min_proto_version(h->ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(h->ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(h->ssl, c->tls_cert) != 1) {
        ERR_error_string_n(ERR_get_error(), why, sizeof(why));
        return op_conf_error(err, errlen, "--tls-cert: cannot load '%s': %s", c->tls_cert, why);
    }
    if (SSL_CTX_use_PrivateKey_file(h->ssl, c->tls_key, SSL_FILETYPE_PEM) != 1) {
        ERR_error_string_n(ERR_get_error(), why, sizeof(why));
        return op_conf_error(err, errlen, "--tls-key: cannot load '%s': %s", c->tls_key, why);
    }
    if (SSL_CTX_check_private_key(h->ssl) != 1)
        return op_conf_error(err, errlen, "--tls-key: '%s' does not match --tls-cert '%s'",
                             c->tls_key, c->tls_cert);
    h2o_ssl_register_alpn_protocols(h->ssl, h2o_http2_alpn_protocols);
    return 0;
}

/* --- the handler and the logger ----------------------------------------------------- */

static http_thread_t *thread_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(http_thread_t, ctx, req->conn->ctx);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    return op_http_api_handle(&thread_of(req)->env, req);
}

/* Every finished request of a path, whoever answered it (API, file
 * handler, h2o's own errors): counted by status for /metrics. */
static void on_log(h2o_logger_t *self, h2o_req_t *req)
{
    (void)self;
    op_http_metrics_count(&thread_of(req)->counters, req->res.status);
}

static h2o_pathconf_t *add_path(h2o_hostconf_t *host, const char *path)
{
    h2o_pathconf_t *pc = h2o_config_register_path(host, path, 0);
    h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = on_req;
    h2o_create_logger(pc, sizeof(h2o_logger_t))->log_access = on_log;
    return pc;
}

static void setup_config(op_http_t *h)
{
    static const char *index_files[] = {"index.html", NULL};
    h2o_config_init(&h->config);
    h->config_inited = 1;
    h->config.server_name = h2o_iovec_init(H2O_STRLIT("orderpulse"));
    h->config.max_request_entity_size = MAX_REQUEST_BODY;
    h2o_hostconf_t *host =
        h2o_config_register_host(&h->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    /* First match wins: the vendored file's exact path before "/". */
    if (h->have_vendor) {
        h2o_pathconf_t *pc = add_path(host, OP_HTTP_VENDOR_PATH);
        h2o_file_register_file(
            pc, h->vendor_file,
            h2o_mimemap_get_type_by_extension(pc->mimemap, h2o_iovec_init(H2O_STRLIT("js"))), 0);
    }
    h2o_pathconf_t *root = add_path(host, "/");
    if (h->have_static)
        h2o_file_register(root, h->conf.static_dir, index_files, NULL, 0);
}

/* --- connections -------------------------------------------------------------------- */

static void on_conn_close(void *data)
{
    conn_t *c = data;
    http_thread_t *t = c->t;
    h2o_linklist_unlink(&c->link);
    t->nconns--;
    op_http_metrics_set(&t->counters.connections, (int64_t)t->nconns);
    free(c);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    http_thread_t *t = listener->data;
    if (err)
        return;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (!sock)
            return;
        if (t->nconns >= (size_t)t->srv->conf.max_connections) {
            op_http_metrics_inc(&t->counters.refused);
            h2o_socket_close(sock);
            continue;
        }
        conn_t *c = h2o_mem_alloc(sizeof(*c));
        *c = (conn_t){.sock = sock, .t = t};
        h2o_linklist_insert(&t->conns, &c->link);
        t->nconns++;
        op_http_metrics_set(&t->counters.connections, (int64_t)t->nconns);
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = c;
        h2o_accept(&t->accept, sock);
    }
}

/* --- wake-ups ----------------------------------------------------------------------- */

static void take_messages(h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
}

static void on_wake(h2o_multithread_receiver_t *r, h2o_linklist_t *messages)
{
    http_thread_t *t = H2O_STRUCT_FROM_MEMBER(http_thread_t, wake_recv, r);
    take_messages(messages);
    __atomic_exchange_n(&t->wake_pending, 0, __ATOMIC_ACQ_REL);
    op_http_sse_publish(&t->env.sse, op_http_env_refresh(&t->env));
}

static void on_stop(h2o_multithread_receiver_t *r, h2o_linklist_t *messages)
{
    http_thread_t *t = H2O_STRUCT_FROM_MEMBER(http_thread_t, stop_recv, r);
    take_messages(messages);
    t->stop = 1;
}

void op_http_notify(op_http_t *h)
{
    for (int i = 0; i < h->nthreads; i++) {
        http_thread_t *t = h->threads[i];
        if (!__atomic_exchange_n(&t->wake_pending, 1, __ATOMIC_ACQ_REL))
            h2o_multithread_send_message(&t->wake_recv, &t->wake_msg);
    }
}

/* --- threads ------------------------------------------------------------------------ */

/* Stops accepting, ends the event streams and waits for the connections to
 * go; past the grace period the stragglers (idle keep-alive, slow clients)
 * are shut down at the socket, which makes h2o close them. */
static void drain(http_thread_t *t)
{
    h2o_socket_read_stop(t->listener);
    h2o_socket_close(t->listener);
    t->listener = NULL;
    op_http_sse_close_all(&t->env.sse);
    h2o_context_request_shutdown(&t->ctx);
    int forced = 0;
    int64_t deadline = op_now_mono_ms() + STOP_GRACE_MS;
    while (t->nconns > 0) {
        int64_t left = deadline - op_now_mono_ms();
        if (left <= 0) {
            if (forced)
                break;
            forced = 1;
            for (h2o_linklist_t *n = t->conns.next; n != &t->conns; n = n->next) {
                conn_t *c = H2O_STRUCT_FROM_MEMBER(conn_t, link, n);
                shutdown(h2o_socket_get_fd(c->sock), SHUT_RDWR);
            }
            deadline = op_now_mono_ms() + STOP_GRACE_MS;
            continue;
        }
        /* Short turns: a socket h2o closes is released on the loop's next
         * turn, which would otherwise wait out the whole grace period. */
        h2o_evloop_run(t->ctx.loop, left < 10 ? (int32_t)left : 10);
    }
    h2o_evloop_run(t->ctx.loop, 0); /* deferred callbacks of the last closes */
}

static void *thread_main(void *arg)
{
    http_thread_t *t = arg;
    op_http_t *h = t->srv;
    rcu_register_thread();
    h2o_context_init(&t->ctx, h2o_evloop_create(), &h->config);
    t->accept.ctx = &t->ctx;
    t->accept.hosts = h->config.hosts;
    t->accept.ssl_ctx = h->ssl;
    h2o_linklist_init_anchor(&t->conns);
    h2o_multithread_register_receiver(t->ctx.queue, &t->wake_recv, on_wake);
    h2o_multithread_register_receiver(t->ctx.queue, &t->stop_recv, on_stop);
    op_http_sse_init(&t->env.sse, t->ctx.loop, h->conf.heartbeat_ms, &t->counters.sse_subscribers);
    t->listener = h2o_evloop_socket_create(t->ctx.loop, t->fd, H2O_SOCKET_FLAG_DONT_READ);
    t->fd = -1; /* owned by the listener now */
    t->listener->data = t;
    h2o_socket_read_start(t->listener, on_accept);

    pthread_mutex_lock(&h->mu);
    h->nserving++;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);

    while (!t->stop)
        h2o_evloop_run(t->ctx.loop, INT32_MAX);
    drain(t);

    if (t->nconns > 0 || op_http_sse_dispose(&t->env.sse) < 0) {
        /* Freeing the context now would pull it from under them. */
        fprintf(stderr, "orderpulse: http: %zu connections did not close at shutdown\n", t->nconns);
        t->leaked = 1;
    } else {
        op_http_view_release(t->env.view);
        t->env.view = NULL;
        h2o_multithread_unregister_receiver(t->ctx.queue, &t->wake_recv);
        h2o_multithread_unregister_receiver(t->ctx.queue, &t->stop_recv);
        h2o_loop_t *loop = t->ctx.loop;
        /* h2o_context_request_shutdown armed the context's one-second
         * "resend GOAWAY" timer; the connections are gone, so disarm it
         * (h2o_context_dispose requires its timeouts empty). */
        if (h2o_timeout_is_linked(&t->ctx.http2._graceful_shutdown_timeout))
            h2o_timeout_unlink(&t->ctx.http2._graceful_shutdown_timeout);
        h2o_context_dispose(&t->ctx);
        h2o_evloop_destroy(loop);
    }
    rcu_unregister_thread();
    return NULL;
}

static http_thread_t *thread_create(op_http_t *h, int idx)
{
    void *mem = NULL;
    if (posix_memalign(&mem, 64, sizeof(http_thread_t)) != 0)
        return NULL;
    http_thread_t *t = mem;
    memset(t, 0, sizeof(*t));
    t->srv = h;
    t->idx = idx;
    t->fd = -1;
    t->env.conf = &h->conf;
    t->env.counters = &t->counters;
    t->env.all = h->counters;
    t->env.nthreads = h->nthreads;
    t->env.have_static = h->have_static;
    t->env.have_vendor = h->have_vendor;
    return t;
}

/* --- start and stop ----------------------------------------------------------------- */

static void free_server(op_http_t *h)
{
    int leaked = 0;
    for (int i = 0; h->threads && i < h->nthreads; i++) {
        http_thread_t *t = h->threads[i];
        if (!t)
            continue;
        if (t->fd >= 0)
            close(t->fd);
        if (t->leaked)
            leaked = 1;
        else
            free(t);
    }
    if (leaked)
        return; /* the stragglers still point at the configuration */
    free(h->threads);
    free(h->counters);
    if (h->config_inited)
        h2o_config_dispose(&h->config);
    if (h->ssl)
        SSL_CTX_free(h->ssl);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

int op_http_start(op_http_t **out, const op_http_conf_t *conf, char *err, size_t errlen)
{
    int rc = -ENOMEM;
    op_http_t *h = calloc(1, sizeof(*h));
    if (!h) {
        op_conf_error(err, errlen, "--http: out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->conf = *conf;
    if (h->conf.threads <= 0)
        h->conf.threads = 1;
    if (h->conf.heartbeat_ms == 0)
        h->conf.heartbeat_ms = DEFAULT_HEARTBEAT_MS;
    if (h->conf.max_connections <= 0)
        h->conf.max_connections = DEFAULT_MAX_CONNS;
    if (h->conf.threads > OP_HTTP_MAX_THREADS) {
        rc = op_conf_error(err, errlen, "--http-threads: at most %d", OP_HTTP_MAX_THREADS);
        goto fail;
    }
    if (!h->conf.tls_cert != !h->conf.tls_key) {
        rc = op_conf_error(err, errlen, "--tls-cert and --tls-key go together");
        goto fail;
    }
    h->nthreads = h->conf.threads;
    h->have_static = h->conf.static_dir && is_dir(h->conf.static_dir);
    h->have_vendor =
        h->conf.vendor_dir &&
        (size_t)snprintf(h->vendor_file, sizeof(h->vendor_file), "%s/%s", h->conf.vendor_dir,
                         OP_HTTP_VENDOR_FILE) < sizeof(h->vendor_file) &&
        is_file(h->vendor_file);
    h->threads = calloc((size_t)h->nthreads, sizeof(*h->threads));
    h->counters = calloc((size_t)h->nthreads, sizeof(*h->counters));
    if (!h->threads || !h->counters) {
        op_conf_error(err, errlen, "--http: out of memory");
        goto fail;
    }
    for (int i = 0; i < h->nthreads; i++) {
        if (!(h->threads[i] = thread_create(h, i))) {
            op_conf_error(err, errlen, "--http: out of memory");
            goto fail;
        }
        h->counters[i] = &h->threads[i]->counters;
    }
    if ((rc = bind_all(h, err, errlen)) < 0)
        goto fail;
    if (h->conf.tls_cert && (rc = setup_tls(h, err, errlen)) < 0)
        goto fail;
    setup_config(h);

    for (int i = 0; i < h->nthreads; i++) {
        http_thread_t *t = h->threads[i];
        int e = pthread_create(&t->tid, NULL, thread_main, t);
        if (e) {
            rc = op_conf_error(err, errlen, "--http: cannot start a thread: %s", strerror(e));
            goto stop;
        }
        t->started = 1;
    }
    pthread_mutex_lock(&h->mu);
    while (h->nserving < h->nthreads)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    *out = h;
    return 0;
stop:
    /* The started threads register their receivers before they count
     * themselves serving: wait for that before sending them "stop". */
    pthread_mutex_lock(&h->mu);
    for (;;) {
        int started = 0;
        for (int i = 0; i < h->nthreads; i++)
            started += h->threads[i]->started;
        if (h->nserving >= started)
            break;
        pthread_cond_wait(&h->cv, &h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    op_http_stop(h);
    return rc < 0 ? rc : -EINVAL;
fail:
    free_server(h);
    return rc < 0 ? rc : -EINVAL;
}

const char *op_http_address(const op_http_t *h)
{
    return h->address;
}

void op_http_stop(op_http_t *h)
{
    if (!h)
        return;
    for (int i = 0; i < h->nthreads; i++)
        if (h->threads[i]->started)
            h2o_multithread_send_message(&h->threads[i]->stop_recv, &h->threads[i]->stop_msg);
    for (int i = 0; i < h->nthreads; i++)
        if (h->threads[i]->started)
            pthread_join(h->threads[i]->tid, NULL);
    free_server(h);
}
