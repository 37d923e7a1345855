/* history.c — the reader threads of GET /api/v1/history/... (see history.h).
 *
 * A reader renders the answer's JSON itself, from the rows in the order the
 * query sorts them (the snapshot's order: windows oldest first, a ranking
 * by quantity descending then name bytewise, genders by name), so the HTTP
 * thread only copies bytes.
 */
#include "http/history.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conf.h"
#include "engine/shard.h"

#define QUEUE_MAX     64
#define QUERY_TIMEOUT 10 /* seconds, connecting and reading */

struct op_history {
    op_archive_db_t db;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    op_history_job_t *queue[QUEUE_MAX]; /* a ring, under mu */
    int head, count, stop;
    int nthreads;
    pthread_t *threads;
};

int64_t op_history_max_range_ms(op_history_kind_t kind)
{
    return kind == OP_HISTORY_CATEGORIES ? OP_DAY_MS : 31 * OP_DAY_MS;
}

static void reply(op_history_job_t *job, int status, const char *error)
{
    job->status = status;
    if (error) {
        job->body.len = 0;
        op_jbuf_lit(&job->body, "{\"error\":\"");
        op_jbuf_lit(&job->body, error);
        op_jbuf_lit(&job->body, "\"}\n");
    }
    h2o_multithread_send_message(job->reply_to, &job->msg);
}

/* A DECIMAL(20,2) as MariaDB prints it is a JSON number as it stands. */
static void cell_num(op_jbuf_t *b, const char *s)
{
    op_jbuf_lit(b, s ? s : "0");
}

static void render_minutes(MYSQL_RES *res, op_jbuf_t *b)
{
    MYSQL_ROW r;
    int n = 0;
    op_jbuf_lit(b, "[");
    while ((r = mysql_fetch_row(res))) {
        op_jbuf_lit(b, n++ ? ",{\"minute\":" : "{\"minute\":");
        cell_num(b, r[0]);
        op_jbuf_lit(b, ",\"orders\":");
        cell_num(b, r[1]);
        op_jbuf_lit(b, ",\"quantity\":");
        cell_num(b, r[2]);
        op_jbuf_lit(b, ",\"amount\":");
        cell_num(b, r[3]);
        /* Archived when final; a late order's revision rewrites the values
         * but is not recorded as such (docs/API.md). */
        op_jbuf_lit(b, ",\"state\":\"final\",\"final\":true}");
    }
    op_jbuf_lit(b, "]");
}

/* Rows (window, name, quantity[, amount]) grouped by window. */
static void render_grouped(MYSQL_RES *res, op_jbuf_t *b, int categories)
{
    MYSQL_ROW r;
    char window[32] = "";
    int n = 0;
    op_jbuf_lit(b, "[");
    while ((r = mysql_fetch_row(res))) {
        unsigned long *len = mysql_fetch_lengths(res);
        if (!r[0] || !r[1])
            continue;
        int same = n && strcmp(window, r[0]) == 0;
        if (!same) {
            if (n)
                op_jbuf_lit(b, categories ? "]}," : "}},");
            op_jbuf_lit(b, categories ? "{\"minute\":" : "{\"slot\":");
            op_jbuf_lit(b, r[0]);
            op_jbuf_lit(b, categories ? ",\"state\":\"final\",\"ranking\":["
                                      : ",\"state\":\"final\",\"quantity\":{");
            snprintf(window, sizeof(window), "%s", r[0]);
        } else {
            op_jbuf_lit(b, ",");
        }
        n++;
        if (categories) {
            op_jbuf_lit(b, "{\"name\":");
            op_jbuf_str(b, r[1], len[1]);
            op_jbuf_lit(b, ",\"quantity\":");
            cell_num(b, r[2]);
            op_jbuf_lit(b, ",\"amount\":");
            cell_num(b, r[3]);
            op_jbuf_lit(b, "}");
        } else {
            op_jbuf_str(b, r[1], len[1]);
            op_jbuf_lit(b, ":");
            cell_num(b, r[2]);
        }
    }
    if (n)
        op_jbuf_lit(b, categories ? "]}" : "}}");
    op_jbuf_lit(b, "]");
}

/* Runs one job. 0, or -1 with the connection closed (MariaDB unreachable). */
static int run(MYSQL **conn, const op_archive_db_t *db, op_history_job_t *job)
{
    static const char *const sql[] = {
        [OP_HISTORY_MINUTES] = "SELECT minute_start, orders, quantity, amount FROM op_minute "
                               "WHERE minute_start >= %lld AND minute_start < %lld "
                               "ORDER BY minute_start",
        [OP_HISTORY_CATEGORIES] = "SELECT minute_start, category, quantity, amount FROM "
                                  "op_category_minute WHERE minute_start >= %lld AND "
                                  "minute_start < %lld ORDER BY minute_start, quantity DESC, "
                                  "category",
        [OP_HISTORY_GENDER_SLOTS] = "SELECT slot_start, gender, quantity FROM op_gender_slot "
                                    "WHERE slot_start >= %lld AND slot_start < %lld "
                                    "ORDER BY slot_start, gender",
    };
    char q[512], err[512];
    snprintf(q, sizeof(q), sql[job->kind], (long long)job->from_ms, (long long)job->to_ms);
    /* One retry: a connection idle for long may have been closed by the
     * server (wait_timeout). */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!*conn) {
            int fatal;
            *conn = op_archive_connect(db, QUERY_TIMEOUT, &fatal, err, sizeof(err));
            if (!*conn)
                return -1;
        }
        if (mysql_query(*conn, q) == 0) {
            MYSQL_RES *res = mysql_use_result(*conn);
            if (res) {
                job->body.len = 0;
                if (job->kind == OP_HISTORY_MINUTES)
                    render_minutes(res, &job->body);
                else
                    render_grouped(res, &job->body, job->kind == OP_HISTORY_CATEGORIES);
                int failed = mysql_errno(*conn) != 0;
                mysql_free_result(res);
                if (!failed)
                    return 0;
            }
        }
        mysql_close(*conn);
        *conn = NULL;
    }
    return -1;
}

static void *reader_main(void *arg)
{
    op_history_t *h = arg;
    MYSQL *conn = NULL;
    mysql_thread_init();
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->count && !h->stop)
            pthread_cond_wait(&h->cv, &h->mu);
        if (!h->count)
            break;
        op_history_job_t *job = h->queue[h->head];
        h->head = (h->head + 1) % QUEUE_MAX;
        h->count--;
        pthread_mutex_unlock(&h->mu);
        if (run(&conn, &h->db, job) == 0)
            reply(job, 200, NULL);
        else
            reply(job, 503, "the archive is unreachable");
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    if (conn)
        mysql_close(conn);
    mysql_thread_end();
    return NULL;
}

int op_history_submit(op_history_t *h, op_history_job_t *job)
{
    pthread_mutex_lock(&h->mu);
    int rc = -EBUSY;
    if (h->count < QUEUE_MAX && !h->stop) {
        h->queue[(h->head + h->count) % QUEUE_MAX] = job;
        h->count++;
        pthread_cond_signal(&h->cv);
        rc = 0;
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

int op_history_create(op_history_t **out, const op_archive_db_t *db, int nthreads, char *err,
                      size_t errlen)
{
    op_history_t *h = calloc(1, sizeof(*h));
    if (!h || !(h->threads = calloc((size_t)nthreads, sizeof(*h->threads)))) {
        free(h);
        return op_conf_error(err, errlen, "history: out of memory"), -ENOMEM;
    }
    h->db = *db;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    for (; h->nthreads < nthreads; h->nthreads++) {
        int rc = pthread_create(&h->threads[h->nthreads], NULL, reader_main, h);
        if (rc) {
            op_history_destroy(h);
            return op_conf_error(err, errlen, "history: cannot start a reader: %s", strerror(rc)),
                   -rc;
        }
    }
    *out = h;
    return 0;
}

void op_history_destroy(op_history_t *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    while (h->count) {
        op_history_job_t *job = h->queue[h->head];
        h->head = (h->head + 1) % QUEUE_MAX;
        h->count--;
        reply(job, 503, "shutting down");
    }
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < h->nthreads; i++)
        pthread_join(h->threads[i], NULL);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h->threads);
    free(h);
}
