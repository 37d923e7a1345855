/* archive.h — durable history in MariaDB/MySQL: every final window, once
 * more whenever a late order changes it.
 *
 * The engine keeps windows for --retention; the archive keeps them for good,
 * in tables BI tools can query (docs/OPERATIONS.md has the schema):
 * op_minute, op_category_minute, op_gender_slot, and per calendar day in
 * --timezone op_brand_day, op_gender_day, op_user_day. Rows hold absolute
 * values from the merger's state and are written as upserts, so writing a
 * row twice (a replay after a crash, a retry) changes nothing.
 *
 * The merger hands over what must be written once per tick
 * (op_archive_offer): it copies the rows and returns; the archive's own
 * thread writes them, reconnecting as long as it takes. What waits is
 * bounded (max_pending_rows): past the bound the queue is dropped and, once
 * MariaDB answers again, the merger offers every final window it still
 * holds (a sweep), so an outage shorter than --retention loses nothing.
 *
 *   field                 written by              read by           how
 *   queue, stop           merger / main           archive thread    mutex + condvar
 *   overflow              merger, archive thread  both              __atomic (0 ok, 1 dropped,
 *                                                                   2 a sweep is wanted)
 *   counters (stats)      archive thread, merger  any thread        __atomic relaxed
 *   offered/evicted wm    merger only             -                 -
 *   the connection        archive thread only     -                 -
 *
 * Out of memory: setup returns -ENOMEM; the offer (merger, hot) aborts.
 */
#ifndef OP_IO_ARCHIVE_H
#define OP_IO_ARCHIVE_H

#include <mysql.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/intern.h"
#include "engine/shard.h"
#include "engine/state.h"

/* Where the archive is: --archive mysql://USER[:PASS]@HOST[:PORT]/DB, with
 * %XX escapes in USER and PASS. HOST "localhost" means the local socket
 * (the MariaDB client's rule); 127.0.0.1 is TCP. */
typedef struct op_archive_db {
    char host[256];
    unsigned port; /* 3306 unless given */
    char user[128];
    char password[256];
    char db[65];
} op_archive_db_t;

/* Parses a URL. 0, or -EINVAL with a one-line message (not echoing the
 * password). */
int op_archive_parse_url(const char *url, op_archive_db_t *out, char *err, size_t errlen);

/* A connection with the archive's session settings (utf8mb4, UTC, strict,
 * timeouts of timeout_s). For the archive thread and the history readers;
 * the caller owns the result (mysql_close). NULL with a message in err;
 * *fatal is set when retrying cannot help (bad password, no database). */
MYSQL *op_archive_connect(const op_archive_db_t *db, int timeout_s, int *fatal, char *err,
                          size_t errlen);

typedef struct op_archive_conf {
    const char *url;
    int64_t tz_ms;            /* --timezone east of UTC: the calendar days */
    int64_t retention_ms;     /* the merger's: older windows are gone from its state */
    int64_t max_pending_rows; /* what may wait for MariaDB before the queue is dropped */
} op_archive_conf_t;

typedef struct op_archive op_archive_t;

/* Parses the URL, and if MariaDB answers, creates the tables that are
 * missing and checks the shape of those that exist. Main thread. Returns 0
 * (also when MariaDB does not answer: the archive thread keeps trying; a
 * warning is then in err), or a negative code with one line in err: a bad
 * URL, a refused login, a missing database, a table of another shape. */
int op_archive_create(op_archive_t **out, const op_archive_conf_t *conf, op_intern_t *dict,
                      char *err, size_t errlen);

/* Starts the archive thread. Main thread. 0 or a negative errno. */
int op_archive_start(op_archive_t *a);

/* The merger, once per tick, after the tick's shards are in st and the
 * watermark has advanced, before windows are evicted: copies the windows
 * that became final (their end at or before st->watermark_ms, or every
 * window when at_end) and the final windows late orders changed (listed in
 * st->rewrite; the first call sets st->track_rewrites), and returns without
 * waiting for anything. The offer is complete with op_archive_offer_users. */
void op_archive_offer(op_archive_t *a, op_state_t *st, int at_end);

/* The merger, after op_archive_offer and after the tick's snapshot is out:
 * the same offer's rows of the users' days (when a day ends, a day's worth
 * of users: most of the rows, and a snapshot has none of them), then the
 * offer goes to the archive thread and st->rewrite is emptied. Before
 * op_state_evict_user_days. */
void op_archive_offer_users(op_archive_t *a, op_state_t *st);

typedef struct op_archive_stats {
    int connected;            /* the last attempt to talk to MariaDB worked */
    int64_t pending_rows;     /* offered, not yet written */
    int64_t max_pending_rows; /* the bound */
    int64_t written_rows;     /* upserts done (a row rewritten counts again) */
    int64_t dropped_rows;     /* thrown away past the bound (a sweep follows) */
    int64_t late_rows;        /* changes to windows older than --retention: not written */
    int64_t rejected_rows;    /* names longer than their column */
    int64_t errors;           /* failed statements and connection attempts */
    int64_t sweeps;           /* every retained final window offered again */
} op_archive_stats_t;

/* Any thread. */
void op_archive_stats(op_archive_t *a, op_archive_stats_t *out);

/* The parsed URL (for the history readers). */
const op_archive_db_t *op_archive_db(const op_archive_t *a);

/* Writes what is queued, giving up once no row could be written for
 * patience_ms, stops the thread and frees everything. Main thread, after
 * the merger has stopped. Says on stderr how many rows were left. a may be
 * NULL. */
void op_archive_destroy(op_archive_t *a, int64_t patience_ms);

#endif
