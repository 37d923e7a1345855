/* server.h — the HTTP/1.1 + HTTP/2 API and dashboard server (libh2o, evloop).
 *
 * op_http_start binds one listening socket per HTTP thread on the same
 * address (SO_REUSEPORT: the kernel spreads connections over the threads)
 * and starts the threads, each with its own h2o event loop. One port speaks
 * HTTP/1.1, h2c with prior knowledge and the h2c upgrade; with a
 * certificate it speaks TLS instead, h2 or http/1.1 chosen by ALPN.
 *
 * Responses are served from the published snapshots (snapshot.h) through a
 * per-thread copy (view.h); nothing is rendered per request but /metrics.
 * The routes are DESIGN §5's; see api.h.
 *
 * Threads: op_http_start, op_http_stop and op_http_address are for the main
 * thread. op_http_notify is for the thread that publishes snapshots (the
 * merger's on_publish hook); it must not run concurrently with or after
 * op_http_stop (main stops the merger first).
 */
#ifndef OP_HTTP_SERVER_H
#define OP_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/snapshot.h"

#define OP_HTTP_MAX_THREADS 64
#define OP_HTTP_ERRLEN      512

/* Settings, filled in by main() from the flags. The strings must outlive
 * the server. */
typedef struct op_http_conf {
    const char *listen;      /* "[ADDR:]PORT", "[IPV6]:PORT"; ADDR defaults to 0.0.0.0 */
    int threads;             /* HTTP threads, 1..OP_HTTP_MAX_THREADS (0 = 1) */
    op_snapshot_pub_t *pub;  /* the snapshots to serve */
    const char *static_dir;  /* the dashboard, served at /; NULL or missing: / is a 404 */
    const char *vendor_dir;  /* node_modules, for /vendor/echarts.min.js; may be NULL */
    const char *tls_cert;    /* PEM certificate chain and key: both or neither */
    const char *tls_key;     /* */
    const char *cors_origin; /* Access-Control-Allow-Origin value, or NULL */
    /* Readiness of the pipeline beside "a snapshot exists" (e.g. the source
     * has its partitions); NULL = ready. Called on HTTP threads. */
    int (*ready)(void *arg);
    void *ready_arg;
    uint64_t heartbeat_ms; /* SSE heartbeat period (0 = 15 s) */
    int max_connections;   /* per thread (0 = 10000); more are closed at once */
} op_http_conf_t;

typedef struct op_http op_http_t;

/* Checks the syntax of a listen address, as main() does before starting
 * anything. Returns 0 or -EINVAL with a one-line message in err. */
int op_http_check_listen(const char *listen, char *err, size_t errlen);

/* Resolves the dashboard's directories: static_dir (the --static-dir value,
 * or NULL for the default: http/static, or share/orderpulse/http/static as
 * make install lays it out, in the first of the executable's ancestor
 * directories that has one) and vendor_dir (node_modules two levels above
 * the static directory). Missing directories are not an error (the
 * server answers 404 JSON) unless static_opt names one. Returns 0 or
 * -EINVAL with a message. */
int op_http_find_dirs(const char *static_opt, char *static_dir, size_t static_len, char *vendor_dir,
                      size_t vendor_len, char *err, size_t errlen);

/* Binds, loads the certificate and starts the threads; returns when every
 * thread serves. Returns 0, or a negative errno with a one-line message
 * naming the option at fault ("--http: ...", "--tls-cert: ..."). */
int op_http_start(op_http_t **out, const op_http_conf_t *conf, char *err, size_t errlen);

/* "ADDR:PORT" the server listens on (the port resolved if 0 was asked). */
const char *op_http_address(const op_http_t *h);

/* A snapshot was published: wakes every HTTP thread (event streams get it).
 * Cheap and non-blocking; wake-ups coalesce. */
void op_http_notify(op_http_t *h);

/* Stops accepting, ends the event streams, lets the open connections finish
 * (closing those still open after a grace period), joins the threads and
 * frees everything. h may be NULL. */
void op_http_stop(op_http_t *h);

#endif
