/* archive.c — final windows to MariaDB (see archive.h).
 *
 * Two halves. The merger's (op_archive_offer) decides which rows to write
 * and copies them into a batch: windows whose end the watermark passed since
 * the previous offer (found by a range check over the state's tables, which
 * are small but for the users of a day, scanned only when a day ends), and
 * final windows the tick's delta touched (late orders). The archive
 * thread's writes each batch as multi-row INSERT ... ON DUPLICATE KEY
 * UPDATE statements with absolute values, in autocommit: a statement is a
 * unit of progress, and after a lost connection the batch resumes at the
 * statement that failed (writing a row twice is harmless).
 */
#include "engine/io/archive.h"

#include <errmsg.h>
#include <errno.h>
#include <mysqld_error.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/conf.h"
#include "engine/hash.h"
#include "engine/jbuf.h"
#include "engine/util.h"

#define STMT_ROWS         1000      /* rows per INSERT */
#define STMT_BYTES        (1 << 20) /* or this much SQL, well under max_allowed_packet */
#define CONNECT_TIMEOUT_S 5
#define IDLE_PING_MS      5000
#define RETRY_MIN_MS      100
#define RETRY_MAX_MS      2000
#define LOG_EVERY_MS      10000
#define BATCH_ATTEMPTS    3 /* a statement failing on a healthy connection this often is dropped */

/* --- the tables ------------------------------------------------------------------- */

typedef enum table {
    T_MINUTE = 0,
    T_CATEGORY_MINUTE,
    T_GENDER_SLOT,
    T_BRAND_DAY,
    T_GENDER_DAY,
    T_USER_DAY,
    T_COUNT
} table_t;

/* The shape check compares information_schema against `shape` (column,
 * type, collation of strings; primary key), so a table created from
 * `columns` by hand passes and anything else is refused. */
static const struct table_spec {
    const char *name;
    const char *columns; /* CREATE TABLE name (columns) */
    const char *shape;
    const char *insert; /* up to VALUES */
    const char *update; /* ON DUPLICATE KEY UPDATE ... */
    op_dim_t dim;       /* the dimension of the name column, if any */
    int name_chars;     /* its length in characters; 0: no name column */
} tables[T_COUNT] = {
    [T_MINUTE] = {"op_minute",
                  "minute_start BIGINT NOT NULL COMMENT 'epoch ms (UTC)', orders BIGINT NOT NULL, "
                  "quantity BIGINT NOT NULL, amount DECIMAL(20,2) NOT NULL, "
                  "PRIMARY KEY (minute_start)",
                  "minute_start bigint, orders bigint, quantity bigint, amount decimal(20,2); "
                  "primary key (minute_start)",
                  "INSERT INTO op_minute (minute_start,orders,quantity,amount) VALUES ",
                  " ON DUPLICATE KEY UPDATE orders=VALUES(orders),quantity=VALUES(quantity),"
                  "amount=VALUES(amount)",
                  OP_DIM_COUNT, 0},
    [T_CATEGORY_MINUTE] =
        {"op_category_minute",
         "minute_start BIGINT NOT NULL COMMENT 'epoch ms (UTC)', "
         "category VARCHAR(255) NOT NULL, quantity BIGINT NOT NULL, "
         "amount DECIMAL(20,2) NOT NULL, PRIMARY KEY (minute_start, category)",
         "minute_start bigint, category varchar(255) utf8mb4_nopad_bin, "
         "quantity bigint, amount decimal(20,2); "
         "primary key (minute_start, category)",
         "INSERT INTO op_category_minute (minute_start,category,quantity,amount) "
         "VALUES ",
         " ON DUPLICATE KEY UPDATE quantity=VALUES(quantity),amount=VALUES(amount)",
         OP_DIM_CATEGORY, 255},
    [T_GENDER_SLOT] = {"op_gender_slot",
                       "slot_start BIGINT NOT NULL COMMENT 'epoch ms (UTC), 10-minute slots', "
                       "gender VARCHAR(64) NOT NULL, quantity BIGINT NOT NULL, "
                       "amount DECIMAL(20,2) NOT NULL, PRIMARY KEY (slot_start, gender)",
                       "slot_start bigint, gender varchar(64) utf8mb4_nopad_bin, quantity bigint, "
                       "amount decimal(20,2); primary key (slot_start, gender)",
                       "INSERT INTO op_gender_slot (slot_start,gender,quantity,amount) VALUES ",
                       " ON DUPLICATE KEY UPDATE quantity=VALUES(quantity),amount=VALUES(amount)",
                       OP_DIM_GENDER, 64},
    [T_BRAND_DAY] = {"op_brand_day",
                     "day DATE NOT NULL COMMENT 'calendar day in --timezone', "
                     "brand VARCHAR(255) NOT NULL, orders BIGINT NOT NULL, "
                     "quantity BIGINT NOT NULL, amount DECIMAL(20,2) NOT NULL, "
                     "PRIMARY KEY (day, brand)",
                     "day date, brand varchar(255) utf8mb4_nopad_bin, orders bigint, "
                     "quantity bigint, amount decimal(20,2); primary key (day, brand)",
                     "INSERT INTO op_brand_day (day,brand,orders,quantity,amount) VALUES ",
                     " ON DUPLICATE KEY UPDATE orders=VALUES(orders),quantity=VALUES(quantity),"
                     "amount=VALUES(amount)",
                     OP_DIM_BRAND, 255},
    [T_GENDER_DAY] = {"op_gender_day",
                      "day DATE NOT NULL COMMENT 'calendar day in --timezone', "
                      "gender VARCHAR(64) NOT NULL, orders BIGINT NOT NULL, "
                      "quantity BIGINT NOT NULL, amount DECIMAL(20,2) NOT NULL, "
                      "PRIMARY KEY (day, gender)",
                      "day date, gender varchar(64) utf8mb4_nopad_bin, orders bigint, "
                      "quantity bigint, amount decimal(20,2); primary key (day, gender)",
                      "INSERT INTO op_gender_day (day,gender,orders,quantity,amount) VALUES ",
                      " ON DUPLICATE KEY UPDATE orders=VALUES(orders),quantity=VALUES(quantity),"
                      "amount=VALUES(amount)",
                      OP_DIM_GENDER, 64},
    [T_USER_DAY] = {"op_user_day",
                    "day DATE NOT NULL COMMENT 'calendar day in --timezone', "
                    "user_name VARCHAR(255) NOT NULL, orders BIGINT NOT NULL, "
                    "amount DECIMAL(20,2) NOT NULL, PRIMARY KEY (day, user_name), "
                    "KEY op_user_day_by_amount (day, amount)",
                    "day date, user_name varchar(255) utf8mb4_nopad_bin, orders bigint, "
                    "amount decimal(20,2); primary key (day, user_name)",
                    "INSERT INTO op_user_day (day,user_name,orders,amount) VALUES ",
                    " ON DUPLICATE KEY UPDATE orders=VALUES(orders),amount=VALUES(amount)",
                    OP_DIM_COUNT, 255},
};

/* --- the URL ---------------------------------------------------------------------- */

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Copies [s, end) into out with %XX decoded. 0 or -1 (bad escape, too long). */
static int decode(const char *s, const char *end, char *out, size_t outlen)
{
    size_t n = 0;
    for (; s < end; s++) {
        char c = *s;
        if (c == '%') {
            if (end - s < 3 || hexval(s[1]) < 0 || hexval(s[2]) < 0)
                return -1;
            c = (char)(hexval(s[1]) * 16 + hexval(s[2]));
            s += 2;
        }
        if (c == '\0' || n + 1 >= outlen)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

int op_archive_parse_url(const char *url, op_archive_db_t *out, char *err, size_t errlen)
{
    static const char usage[] = "expected mysql://USER[:PASS]@HOST[:PORT]/DB";
    memset(out, 0, sizeof(*out));
    out->port = 3306;
    if (!url || strncmp(url, "mysql://", 8) != 0)
        return op_conf_error(err, errlen, "--archive: %s", usage);
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    const char *slash = at ? strchr(at, '/') : NULL;
    if (!at || !slash || at == p)
        return op_conf_error(err, errlen, "--archive: %s", usage);
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (decode(p, colon ? colon : at, out->user, sizeof(out->user)) < 0 || !out->user[0])
        return op_conf_error(err, errlen, "--archive: bad or missing USER (%s)", usage);
    if (colon && decode(colon + 1, at, out->password, sizeof(out->password)) < 0)
        return op_conf_error(err, errlen, "--archive: bad PASS (use %%XX for special characters)");
    const char *host = at + 1, *host_end = slash;
    if (*host == '[') { /* [IPv6]:PORT */
        const char *close = memchr(host, ']', (size_t)(slash - host));
        if (!close)
            return op_conf_error(err, errlen, "--archive: %s", usage);
        host_end = close + 1;
        if (host_end < slash && *host_end != ':')
            return op_conf_error(err, errlen, "--archive: %s", usage);
        host++;
        if (decode(host, close, out->host, sizeof(out->host)) < 0)
            return op_conf_error(err, errlen, "--archive: bad HOST");
    } else {
        const char *pc = memchr(host, ':', (size_t)(slash - host));
        if (pc)
            host_end = pc;
        if (decode(host, host_end, out->host, sizeof(out->host)) < 0)
            return op_conf_error(err, errlen, "--archive: bad HOST");
    }
    if (!out->host[0])
        return op_conf_error(err, errlen, "--archive: missing HOST (%s)", usage);
    if (host_end < slash && *host_end == ':') {
        int64_t port;
        char num[8] = "";
        size_t len = (size_t)(slash - host_end - 1);
        if (len == 0 || len >= sizeof(num))
            return op_conf_error(err, errlen, "--archive: bad PORT");
        memcpy(num, host_end + 1, len);
        if (op_conf_parse_i64("--archive port", num, 1, 65535, &port, err, errlen) < 0)
            return -EINVAL;
        out->port = (unsigned)port;
    } else if (host_end < slash) {
        return op_conf_error(err, errlen, "--archive: %s", usage);
    }
    const char *db = slash + 1;
    const char *q = strchr(db, '?');
    if (q)
        return op_conf_error(err, errlen, "--archive: no ?options are understood");
    if (decode(db, db + strlen(db), out->db, sizeof(out->db)) < 0 || !out->db[0] ||
        strspn(out->db, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$") !=
            strlen(out->db))
        return op_conf_error(err, errlen,
                             "--archive: DB must be a plain name (letters, digits, _ and $)");
    return 0;
}

/* --- connections ------------------------------------------------------------------ */

/* Errors a retry cannot fix: the login, the database, the privileges. */
static int is_fatal(unsigned e)
{
    return e == ER_ACCESS_DENIED_ERROR || e == ER_DBACCESS_DENIED_ERROR || e == ER_BAD_DB_ERROR ||
           e == ER_TABLEACCESS_DENIED_ERROR || e == ER_SPECIFIC_ACCESS_DENIED_ERROR;
}

MYSQL *op_archive_connect(const op_archive_db_t *db, int timeout_s, int *fatal, char *err,
                          size_t errlen)
{
    *fatal = 0;
    MYSQL *c = mysql_init(NULL);
    if (!c) {
        op_conf_error(err, errlen, "archive: out of memory");
        return NULL;
    }
    unsigned t = (unsigned)timeout_s;
    mysql_options(c, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    mysql_options(c, MYSQL_OPT_READ_TIMEOUT, &t);
    mysql_options(c, MYSQL_OPT_WRITE_TIMEOUT, &t);
    mysql_options(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(c, MYSQL_INIT_COMMAND,
                  "SET time_zone='+00:00', sql_mode='STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'");
    if (!mysql_real_connect(c, db->host, db->user, db->password[0] ? db->password : NULL, db->db,
                            db->port, NULL, 0)) {
        *fatal = is_fatal(mysql_errno(c));
        op_conf_error(err, errlen, "archive: cannot connect to MariaDB at %s:%u as %s: %s",
                      db->host, db->port, db->user, mysql_error(c));
        mysql_close(c);
        return NULL;
    }
    return c;
}

#define SHAPE_LEN 1400

/* The shapes of every table as ensure_schema compares them ("; primary key
 * ()" alone for one that does not exist), in one round trip: each query of
 * information_schema costs MariaDB about half a millisecond, and this runs
 * while the engine starts. 0 or -1 (the query failed). */
static int table_shapes(MYSQL *c, char shapes[T_COUNT][SHAPE_LEN])
{
    char names[512] = "", sql[4096];
    size_t at = 0;
    for (int t = 0; t < T_COUNT; t++)
        at += (size_t)snprintf(names + at, sizeof(names) - at, "%s'%s'", t ? "," : "",
                               tables[t].name);
    snprintf(sql, sizeof(sql),
             "SELECT 'c', TABLE_NAME, GROUP_CONCAT(CONCAT(COLUMN_NAME, ' ', DATA_TYPE, "
             "IF(DATA_TYPE = 'varchar', CONCAT('(', CHARACTER_MAXIMUM_LENGTH, ') ', "
             "COLLATION_NAME), ''), IF(DATA_TYPE = 'decimal', CONCAT('(', NUMERIC_PRECISION, "
             "',', NUMERIC_SCALE, ')'), '')) ORDER BY ORDINAL_POSITION SEPARATOR ', ') "
             "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND "
             "TABLE_NAME IN (%s) GROUP BY TABLE_NAME "
             "UNION ALL SELECT 'k', TABLE_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX "
             "SEPARATOR ', ') FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
             "AND TABLE_NAME IN (%s) AND INDEX_NAME = 'PRIMARY' GROUP BY TABLE_NAME",
             names, names);
    if (mysql_query(c, sql) != 0)
        return -1;
    MYSQL_RES *r = mysql_store_result(c);
    if (!r)
        return -1;
    char cols[T_COUNT][1024] = {{0}}, pk[T_COUNT][256] = {{0}};
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(r))) {
        for (int t = 0; t < T_COUNT && row[0] && row[1] && row[2]; t++) {
            if (strcmp(row[1], tables[t].name) != 0)
                continue;
            if (row[0][0] == 'c')
                snprintf(cols[t], sizeof(cols[t]), "%s", row[2]);
            else
                snprintf(pk[t], sizeof(pk[t]), "%s", row[2]);
        }
    }
    mysql_free_result(r);
    for (int t = 0; t < T_COUNT; t++)
        snprintf(shapes[t], SHAPE_LEN, "%.1023s; primary key (%.255s)", cols[t], pk[t]);
    return 0;
}

/* Creates the tables that are missing (only those: tables a DBA made need
 * no CREATE grant); refuses one of another shape. 0, -EIO (the connection
 * failed: retry) or -EINVAL (a shape or a privilege: a retry will not
 * help), with one line in err. */
static int ensure_schema(MYSQL *c, char *err, size_t errlen)
{
    char sql[2048], shapes[T_COUNT][SHAPE_LEN];
    if (table_shapes(c, shapes) < 0)
        goto failed;
    int created = 0;
    for (int t = 0; t < T_COUNT; t++) {
        if (strcmp(shapes[t], "; primary key ()") != 0)
            continue;
        snprintf(sql, sizeof(sql),
                 "CREATE TABLE IF NOT EXISTS %s (%s) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 "
                 "COLLATE=utf8mb4_nopad_bin",
                 tables[t].name, tables[t].columns);
        if (mysql_query(c, sql) != 0)
            goto failed;
        created = 1;
    }
    if (created && table_shapes(c, shapes) < 0)
        goto failed;
    for (int t = 0; t < T_COUNT; t++)
        if (strcmp(shapes[t], tables[t].shape) != 0)
            return op_conf_error(err, errlen,
                                 "archive: table %s is (%s), orderpulse writes (%s): drop or "
                                 "rename it (docs/OPERATIONS.md has the schema)",
                                 tables[t].name, shapes[t], tables[t].shape);
    return 0;
failed:;
    unsigned e = mysql_errno(c);
    op_conf_error(err, errlen, "archive: preparing the tables: %s", mysql_error(c));
    return e >= 2000 && e < 3000 ? -EIO : -EINVAL;
}

/* --- batches ---------------------------------------------------------------------- */

/* One row: a bucket (minute or slot number, or day), a dimension id or,
 * for users, a name in the batch's arena, and the absolute figures. */
typedef struct row {
    int64_t bucket;
    uint32_t dim; /* id, or name offset (T_USER_DAY) */
    uint32_t len; /* name length (T_USER_DAY) */
    op_tally_t t;
} row_t;

typedef struct rows {
    row_t *v;
    size_t n, cap;
} rows_t;

/* Owner: the merger while it fills it, then the queue, then the archive
 * thread. */
typedef struct batch {
    struct batch *next;
    rows_t rows[T_COUNT];
    char *names;
    size_t names_len, names_cap;
    size_t nrows;
    /* Archive thread: where writing resumes. */
    int table;
    size_t done;
    int attempts;
} batch_t;

static void batch_free(batch_t *b)
{
    if (!b)
        return;
    for (int t = 0; t < T_COUNT; t++)
        free(b->rows[t].v);
    free(b->names);
    free(b);
}

/* Room for n more rows of table t (and names of name_bytes). */
static void batch_reserve(batch_t *b, table_t t, size_t n, size_t name_bytes)
{
    rows_t *r = &b->rows[t];
    if (r->n + n > r->cap) {
        r->cap = r->n + n > r->cap * 2 ? r->n + n : r->cap * 2;
        r->v = op_xrealloc(r->v, r->cap * sizeof(*r->v));
    }
    if (b->names_len + name_bytes > b->names_cap) {
        b->names_cap = b->names_len + name_bytes;
        b->names = op_xrealloc(b->names, b->names_cap);
    }
}

static row_t *batch_row(batch_t *b, table_t t)
{
    rows_t *r = &b->rows[t];
    if (r->n == r->cap)
        batch_reserve(b, t, r->cap ? r->cap : 64, 0);
    b->nrows++;
    return &r->v[r->n++];
}

static uint32_t batch_name(batch_t *b, const char *name, size_t len)
{
    if (b->names_len + len > b->names_cap) {
        b->names_cap = (b->names_cap ? b->names_cap * 2 : 4096) + len;
        b->names = op_xrealloc(b->names, b->names_cap);
    }
    memcpy(b->names + b->names_len, name, len);
    b->names_len += len;
    return (uint32_t)(b->names_len - len);
}

/* --- the archive ------------------------------------------------------------------ */

/* What one offer looks at. */
typedef struct offer {
    op_archive_t *a;
    const op_state_t *st;
    int64_t prev, wm; /* windows ending in (prev, wm] became final */
    int64_t gone;     /* windows before first_open(gone) had been evicted */
    batch_t *b;
} offer_t;

struct op_archive {
    op_archive_conf_t conf;
    op_archive_db_t db;
    op_intern_t *dict;

    /* Merger thread only. */
    int64_t offered_wm; /* windows ending at or before it were offered; INT64_MIN: none */
    int64_t evicted_wm; /* st->watermark_ms at the last offer: the merger evicted after it */
    /* An offer whose windows wait for its users' rows (op_archive_offer_users);
     * b NULL: none. */
    offer_t held;

    /* Under mu. */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* the thread: a batch, or stop */
    pthread_cond_t idle; /* destroy: the queue emptied, or progress */
    batch_t *head, *tail;
    int64_t queued_rows;
    int stop;

    pthread_t thread;
    int started;
    int overflow; /* __atomic, see archive.h */

    /* __atomic relaxed; written by the archive thread (and the merger for
     * dropped/late/sweeps), read by anyone. */
    int connected;
    int64_t inflight_rows, written_rows, dropped_rows, late_rows, rejected_rows, errors, sweeps;

    /* Archive thread only. */
    MYSQL *conn;
    op_jbuf_t sql;
    int64_t day; /* the day whose literal is in day_text */
    char day_text[32];
    int64_t last_log_ms;
};

static void count(int64_t *c, int64_t n)
{
    __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static int64_t load(const int64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

const op_archive_db_t *op_archive_db(const op_archive_t *a)
{
    return &a->db;
}

void op_archive_stats(op_archive_t *a, op_archive_stats_t *out)
{
    pthread_mutex_lock(&a->mu);
    int64_t queued = a->queued_rows;
    pthread_mutex_unlock(&a->mu);
    out->connected = __atomic_load_n(&a->connected, __ATOMIC_RELAXED);
    out->pending_rows = queued + load(&a->inflight_rows);
    out->max_pending_rows = a->conf.max_pending_rows;
    out->written_rows = load(&a->written_rows);
    out->dropped_rows = load(&a->dropped_rows);
    out->late_rows = load(&a->late_rows);
    out->rejected_rows = load(&a->rejected_rows);
    out->errors = load(&a->errors);
    out->sweeps = load(&a->sweeps);
}

/* --- the merger's half: which rows ------------------------------------------------ */

/* The first bucket of table t whose window ends after time x: windows
 * before it are over at x. */
static int64_t first_open(const op_archive_t *a, table_t t, int64_t x)
{
    if (x == INT64_MIN)
        return 0;
    if (x == INT64_MAX)
        return INT64_MAX;
    switch (t) {
    case T_MINUTE:
    case T_CATEGORY_MINUTE:
        return x < 0 ? 0 : x / OP_MINUTE_MS;
    case T_GENDER_SLOT:
        return x < 0 ? 0 : x / OP_SLOT_MS;
    default:
        return x + a->conf.tz_ms + OP_DAY_MS < 0 ? 0 : op_shard_day(x, a->conf.tz_ms);
    }
}

static int64_t bucket_of(table_t t, uint64_t key)
{
    if (t == T_MINUTE)
        return (int64_t)key;
    if (t == T_USER_DAY)
        return (int64_t)(key >> 32);
    return (int64_t)op_ktable_pair_bucket(key);
}

/* Adds the state's row of key (dimension tables; users have their own). */
static void emit(offer_t *o, table_t t, const op_ktable_t *tbl, uint64_t key, const op_tally_t *v)
{
    if (!v)
        v = op_ktable_find(tbl, key);
    /* A day's entry that only ever carried a share moved away has no
     * orders. (Windows are written whatever their orders: today's Redis
     * keys keep only the quantity of a gender slot.) */
    if (!v || (t >= T_BRAND_DAY && v->orders == 0))
        return;
    row_t *r = batch_row(o->b, t);
    r->bucket = bucket_of(t, key);
    r->dim = t == T_MINUTE ? 0 : op_ktable_pair_dim(key);
    r->len = 0;
    r->t = *v;
}

/* A window a late order touched: 1 if it was final before this offer and
 * is still held (its row again), 0 if it was not (the range covers it), -1
 * if the merger had evicted it (the state holds only the late part: not
 * written, counted). */
static int final_before(const offer_t *o, table_t t, int64_t bucket)
{
    if (o->prev == INT64_MIN || bucket >= first_open(o->a, t, o->prev))
        return 0;
    if (o->gone != INT64_MIN && bucket < first_open(o->a, t, o->gone))
        return -1;
    return 1;
}

/* The newly final windows of a state table, then the final ones a late
 * order changed (the state's rewrite table for it). */
static void windows(offer_t *o, table_t t, const op_ktable_t *tbl, const op_ktable_t *touched)
{
    int64_t lo = first_open(o->a, t, o->prev), hi = first_open(o->a, t, o->wm);
    int64_t gone = o->gone == INT64_MIN ? INT64_MIN : first_open(o->a, t, o->gone);
    for (uint32_t i = 0; lo < hi && i < tbl->cap; i++) {
        if (!op_ktable_used(tbl, i))
            continue;
        int64_t bucket = bucket_of(t, op_ktable_key(tbl, i));
        if (bucket < lo || bucket >= hi)
            continue;
        if (bucket < gone) /* a sweep meets a window made anew by a late order */
            count(&o->a->late_rows, 1);
        else
            emit(o, t, tbl, op_ktable_key(tbl, i), &tbl->vals[i]);
    }
    for (uint32_t i = 0; touched && i < touched->cap; i++) {
        if (!op_ktable_used(touched, i))
            continue;
        int f = final_before(o, t, bucket_of(t, op_ktable_key(touched, i)));
        if (f > 0)
            emit(o, t, tbl, op_ktable_key(touched, i), NULL);
        else if (f < 0)
            count(&o->a->late_rows, 1);
    }
}

/* v: the user's figures of the day if the caller has them, else NULL. */
static void emit_user(offer_t *o, uint32_t day, uint32_t e, const op_tally_t *v)
{
    if (!v)
        v = op_ktable_find(&o->st->user_days, op_shard_user_day(day, e));
    if (!v || v->orders == 0)
        return;
    size_t len;
    const char *name = op_users_name(&o->st->users, e, &len);
    row_t *r = batch_row(o->b, T_USER_DAY);
    r->bucket = day;
    r->dim = batch_name(o->b, name, len);
    r->len = (uint32_t)len;
    r->t = *v;
}

static void user_days(offer_t *o)
{
    const op_ktable_t *tbl = &o->st->user_days;
    int64_t lo = first_open(o->a, T_USER_DAY, o->prev), hi = first_open(o->a, T_USER_DAY, o->wm);
    int64_t gone = o->gone == INT64_MIN ? INT64_MIN : first_open(o->a, T_USER_DAY, o->gone);
    /* The table is a day of users or two: scanned only when a day ends. */
    if (lo < hi)
        batch_reserve(o->b, T_USER_DAY, tbl->count, (size_t)tbl->count * 12);
    const op_users_t *users = &o->st->users;
    for (uint32_t i = 0; lo < hi && i < tbl->cap; i++) {
        /* Users are in the table's (random) order: fetch a user's entry
         * (its name is inline in it) ahead of use. */
        if (i + 16 < tbl->cap && op_ktable_used(tbl, i + 16))
            __builtin_prefetch(&users->ent[(uint32_t)op_ktable_key(tbl, i + 16)]);
        if (!op_ktable_used(tbl, i))
            continue;
        uint64_t k = op_ktable_key(tbl, i);
        int64_t day = (int64_t)(k >> 32);
        if (day < lo || day >= hi)
            continue;
        if (day < gone)
            count(&o->a->late_rows, 1);
        else
            emit_user(o, (uint32_t)day, (uint32_t)k, &tbl->vals[i]);
    }
    const op_ktable_t *rw = &o->st->rewrite.user_days;
    for (uint32_t i = 0; i < rw->cap; i++) {
        if (!op_ktable_used(rw, i))
            continue;
        uint64_t k = op_ktable_key(rw, i);
        int f = final_before(o, T_USER_DAY, (int64_t)(k >> 32));
        if (f > 0)
            emit_user(o, (uint32_t)(k >> 32), (uint32_t)k, NULL);
        else if (f < 0)
            count(&o->a->late_rows, 1);
    }
}

static void enqueue(op_archive_t *a, batch_t *b, int sweep)
{
    pthread_mutex_lock(&a->mu);
    /* A batch is always taken into an empty queue; past the bound the queue
     * goes, and a sweep replaces it once MariaDB answers. */
    if (!sweep && a->queued_rows > 0 &&
        a->queued_rows + (int64_t)b->nrows > a->conf.max_pending_rows) {
        int64_t dropped = a->queued_rows + (int64_t)b->nrows;
        batch_free(b);
        while (a->head) {
            batch_t *next = a->head->next;
            batch_free(a->head);
            a->head = next;
        }
        a->tail = NULL;
        a->queued_rows = 0;
        __atomic_store_n(&a->overflow, 1, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&a->mu);
        count(&a->dropped_rows, dropped);
        fprintf(stderr,
                "orderpulse: archive: %lld rows waited for MariaDB, over the bound of %lld: "
                "dropped; every window still in memory is offered again once it answers\n",
                (long long)dropped, (long long)a->conf.max_pending_rows);
        return;
    }
    if (a->tail)
        a->tail->next = b;
    else
        a->head = b;
    a->tail = b;
    a->queued_rows += (int64_t)b->nrows;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

static void clear_rewrites(op_state_t *st)
{
    op_ktable_t *rw = &st->rewrite.minutes;
    for (size_t i = 0; i < sizeof(st->rewrite) / sizeof(*rw); i++)
        op_ktable_clear(&rw[i]);
}

void op_archive_offer(op_archive_t *a, op_state_t *st, int at_end)
{
    st->track_rewrites = 1;
    int ov = __atomic_load_n(&a->overflow, __ATOMIC_ACQUIRE);
    int64_t wm = at_end ? INT64_MAX : st->watermark_ms;
    if (ov == 1 || wm == INT64_MIN) {
        /* Nothing is final yet; or what is final now goes with the sweep
         * that follows an overflow (which must still know what the merger
         * evicts meanwhile). */
        op_state_settle_days(st); /* their rewrite keys go too */
        clear_rewrites(st);
        if (st->watermark_ms != INT64_MIN)
            a->evicted_wm = st->watermark_ms;
        return;
    }
    offer_t o = {.a = a, .st = st, .prev = a->offered_wm, .wm = wm};
    if (ov == 2) {
        o.prev = INT64_MIN;
        __atomic_store_n(&a->overflow, 0, __ATOMIC_RELEASE);
        count(&a->sweeps, 1);
    }
    if (a->evicted_wm != INT64_MIN && a->evicted_wm - a->conf.retention_ms > 0)
        o.gone = a->evicted_wm - a->conf.retention_ms;
    else
        o.gone = INT64_MIN;
    o.b = op_xcalloc(1, sizeof(*o.b));
    const op_state_rewrite_t *rw = &st->rewrite;
    windows(&o, T_MINUTE, &st->minutes, &rw->minutes);
    windows(&o, T_CATEGORY_MINUTE, &st->catmin, &rw->catmin);
    windows(&o, T_GENDER_SLOT, &st->gslots, &rw->gslots);
    windows(&o, T_BRAND_DAY, &st->brand_days, &rw->brand_days);
    windows(&o, T_GENDER_DAY, &st->gender_days, &rw->gender_days);
    a->offered_wm = wm;
    a->evicted_wm = st->watermark_ms;
    a->held = o;
}

void op_archive_offer_users(op_archive_t *a, op_state_t *st)
{
    if (!a->held.b)
        return;
    offer_t o = a->held;
    o.st = st;
    a->held.b = NULL;
    op_state_settle_days(st);
    user_days(&o);
    clear_rewrites(st);
    if (o.b->nrows)
        enqueue(a, o.b, o.prev == INT64_MIN);
    else
        batch_free(o.b);
}

/* --- the archive thread's half: writing -------------------------------------------- */

static void log_limited(op_archive_t *a, const char *what, const char *msg)
{
    int64_t now = op_now_mono_ms();
    if (now - a->last_log_ms < LOG_EVERY_MS)
        return;
    a->last_log_ms = now;
    fprintf(stderr, "orderpulse: archive: %s%s\n", what, msg);
}

static void disconnect(op_archive_t *a)
{
    if (a->conn)
        mysql_close(a->conn);
    a->conn = NULL;
    __atomic_store_n(&a->connected, 0, __ATOMIC_RELAXED);
}

/* Connects and checks the tables. 0 or -1 (logged, counted). */
static int ensure_connected(op_archive_t *a)
{
    if (a->conn)
        return 0;
    char err[512];
    int fatal;
    a->conn = op_archive_connect(&a->db, CONNECT_TIMEOUT_S, &fatal, err, sizeof(err));
    if (a->conn && ensure_schema(a->conn, err, sizeof(err)) < 0)
        disconnect(a);
    if (!a->conn) {
        count(&a->errors, 1);
        log_limited(a, "", err + strlen("archive: "));
        return -1;
    }
    __atomic_store_n(&a->connected, 1, __ATOMIC_RELAXED);
    return 0;
}

/* "'YYYY-MM-DD'" (an SQL literal) of a day number (op_shard_day), from Howard Hinnant's
 * civil_from_days. */
static void day_text(int64_t day, char out[32])
{
    int64_t z = day - 1 + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    snprintf(out, 32, "'%04d-%02d-%02d'", (int)(y + (m <= 2)), (int)m, (int)d);
}

static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static void sql_str(op_archive_t *a, const char *s, size_t len)
{
    op_jbuf_reserve(&a->sql, 2 * len + 3);
    a->sql.buf[a->sql.len++] = '\'';
    a->sql.len += mysql_real_escape_string(a->conn, a->sql.buf + a->sql.len, s, (unsigned long)len);
    a->sql.buf[a->sql.len++] = '\'';
}

static void sql_cents(op_archive_t *a, int64_t cents)
{
    char buf[32];
    op_jbuf_raw(&a->sql, buf, op_jbuf_format_cents(buf, cents));
}

/* Appends row r of table t as "(...)"; 0, or -1 if its name does not fit
 * the column (then nothing is appended). */
static int sql_row(op_archive_t *a, const batch_t *b, table_t t, const row_t *r)
{
    const struct table_spec *ts = &tables[t];
    const char *name = NULL;
    size_t len = 0;
    if (t == T_USER_DAY) {
        name = b->names + r->dim;
        len = r->len;
    } else if (ts->dim != OP_DIM_COUNT) {
        name = op_intern_name(a->dict, ts->dim, r->dim, &len);
        if (!name)
            return -1;
    }
    if (name && utf8_chars(name, len) > (size_t)ts->name_chars)
        return -1;
    op_jbuf_lit(&a->sql, "(");
    if (t >= T_BRAND_DAY) {
        if (r->bucket != a->day) { /* rows come a day at a time */
            a->day = r->bucket;
            day_text(r->bucket, a->day_text);
        }
        op_jbuf_lit(&a->sql, a->day_text);
    } else {
        op_jbuf_i64(&a->sql, r->bucket * (t == T_GENDER_SLOT ? OP_SLOT_MS : OP_MINUTE_MS));
    }
    if (name) {
        op_jbuf_lit(&a->sql, ",");
        sql_str(a, name, len);
    }
    if (t == T_MINUTE || t >= T_BRAND_DAY) {
        op_jbuf_lit(&a->sql, ",");
        op_jbuf_i64(&a->sql, r->t.orders);
    }
    if (t != T_USER_DAY) {
        op_jbuf_lit(&a->sql, ",");
        op_jbuf_i64(&a->sql, r->t.quantity);
    }
    op_jbuf_lit(&a->sql, ",");
    sql_cents(a, r->t.amount);
    op_jbuf_lit(&a->sql, ")");
    return 0;
}

/* A failed statement: was it the connection (or the server going away)? */
static int connection_error(unsigned e)
{
    return (e >= 2000 && e < 3000) || e == ER_SERVER_SHUTDOWN || e == ER_CONNECTION_KILLED;
}

/* Writes the batch from where it stopped. 0 when done; on an error the
 * connection is closed and the batch resumes at the failed statement: -1
 * if the connection failed, -2 if the statement did. */
static int write_batch(op_archive_t *a, batch_t *b)
{
    for (; b->table < T_COUNT; b->table++, b->done = 0) {
        const rows_t *rows = &b->rows[b->table];
        while (b->done < rows->n) {
            a->sql.len = 0;
            op_jbuf_lit(&a->sql, tables[b->table].insert);
            size_t i = b->done, n = 0, rejected = 0;
            for (; i < rows->n && n < STMT_ROWS && a->sql.len < STMT_BYTES; i++) {
                size_t mark = a->sql.len;
                if (n)
                    op_jbuf_lit(&a->sql, ",");
                if (sql_row(a, b, (table_t)b->table, &rows->v[i]) < 0) {
                    a->sql.len = mark;
                    rejected++;
                    continue;
                }
                n++;
            }
            if (n) {
                op_jbuf_lit(&a->sql, tables[b->table].update);
                if (mysql_real_query(a->conn, a->sql.buf, (unsigned long)a->sql.len) != 0) {
                    int rc = connection_error(mysql_errno(a->conn)) ? -1 : -2;
                    count(&a->errors, 1);
                    char what[64];
                    snprintf(what, sizeof(what), "writing %s: ", tables[b->table].name);
                    log_limited(a, what, mysql_error(a->conn));
                    disconnect(a);
                    return rc;
                }
                count(&a->written_rows, (int64_t)n);
            }
            if (rejected) {
                count(&a->rejected_rows, (int64_t)rejected);
                log_limited(a, "rows whose name is longer than its column were left out of ",
                            tables[b->table].name);
            }
            count(&a->inflight_rows, -(int64_t)(i - b->done));
            b->done = i;
            b->attempts = 0;
            pthread_mutex_lock(&a->mu);
            pthread_cond_broadcast(&a->idle); /* progress, for destroy's patience */
            pthread_mutex_unlock(&a->mu);
        }
    }
    return 0;
}

/* Waits for a batch (pinging MariaDB while idle, asking for a sweep after
 * an overflow). NULL when stopped and the queue is empty. */
static batch_t *take(op_archive_t *a)
{
    pthread_mutex_lock(&a->mu);
    while (!a->head && !a->stop) {
        pthread_mutex_unlock(&a->mu);
        if (a->conn && mysql_ping(a->conn) != 0)
            disconnect(a);
        if (ensure_connected(a) == 0 && __atomic_load_n(&a->overflow, __ATOMIC_ACQUIRE) == 1)
            __atomic_store_n(&a->overflow, 2, __ATOMIC_RELEASE);
        pthread_mutex_lock(&a->mu);
        if (a->head || a->stop)
            break;
        int64_t wall = op_now_wall_ms() + IDLE_PING_MS;
        struct timespec ts = {.tv_sec = wall / 1000, .tv_nsec = (wall % 1000) * 1000000};
        pthread_cond_timedwait(&a->wake, &a->mu, &ts);
    }
    batch_t *b = a->head;
    if (b) {
        a->head = b->next;
        if (!a->head)
            a->tail = NULL;
        a->queued_rows -= (int64_t)b->nrows;
        __atomic_store_n(&a->inflight_rows, (int64_t)b->nrows, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&a->mu);
    return b;
}

static int stopping(op_archive_t *a)
{
    pthread_mutex_lock(&a->mu);
    int s = a->stop;
    pthread_mutex_unlock(&a->mu);
    return s;
}

static void *archive_main(void *arg)
{
    op_archive_t *a = arg;
    mysql_thread_init();
    batch_t *b;
    while ((b = take(a))) {
        int64_t backoff = RETRY_MIN_MS;
        for (;;) {
            int rc = ensure_connected(a) == 0 ? write_batch(a, b) : -1;
            if (rc == 0)
                break;
            /* The connection worked but the statement failed again (after a
             * reconnect, which checks the tables): give the batch up rather
             * than block the queue behind it. */
            if (rc == -2 && ++b->attempts >= BATCH_ATTEMPTS) {
                fprintf(stderr, "orderpulse: archive: giving up a batch of %zu rows\n", b->nrows);
                count(&a->dropped_rows, load(&a->inflight_rows));
                break;
            }
            /* stop == 2: destroy ran out of patience. */
            if (stopping(a) > 1)
                break;
            op_sleep_ms(backoff);
            backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
        }
        __atomic_store_n(&a->inflight_rows, 0, __ATOMIC_RELAXED);
        batch_free(b);
        pthread_mutex_lock(&a->mu);
        pthread_cond_broadcast(&a->idle);
        int give_up = a->stop > 1;
        pthread_mutex_unlock(&a->mu);
        if (give_up)
            break;
    }
    disconnect(a);
    mysql_thread_end();
    return NULL;
}

/* --- lifetime --------------------------------------------------------------------- */

int op_archive_create(op_archive_t **out, const op_archive_conf_t *conf, op_intern_t *dict,
                      char *err, size_t errlen)
{
    *out = NULL;
    op_archive_db_t db;
    if (op_archive_parse_url(conf->url, &db, err, errlen) < 0)
        return -EINVAL;
    if (mysql_library_init(0, NULL, NULL) != 0)
        return op_conf_error(err, errlen, "archive: cannot initialise the MariaDB client");
    op_archive_t *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->conf = *conf;
    a->db = db;
    a->dict = dict;
    a->offered_wm = a->evicted_wm = INT64_MIN;
    a->day = -1;
    a->last_log_ms = INT64_MIN / 2;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->wake, NULL);
    pthread_cond_init(&a->idle, NULL);
    op_jbuf_init(&a->sql);
    err[0] = '\0';
    int fatal, rc = 0;
    MYSQL *c = op_archive_connect(&a->db, CONNECT_TIMEOUT_S, &fatal, err, errlen);
    if (c) {
        rc = ensure_schema(c, err, errlen);
        if (rc == 0) { /* the thread's, checked: it need not ask again */
            a->conn = c;
            a->connected = 1;
        } else {
            mysql_close(c);
        }
        if (rc == -EIO)
            rc = 0; /* lost on the way: the thread tries again */
    } else if (fatal) {
        rc = -EINVAL;
    }
    if (rc < 0) {
        op_archive_destroy(a, 0);
        return rc;
    }
    *out = a;
    return 0;
}

int op_archive_start(op_archive_t *a)
{
    int rc = pthread_create(&a->thread, NULL, archive_main, a);
    if (rc)
        return -rc;
    a->started = 1;
    return 0;
}

void op_archive_destroy(op_archive_t *a, int64_t patience_ms)
{
    if (!a)
        return;
    if (a->started) {
        pthread_mutex_lock(&a->mu);
        a->stop = 1;
        pthread_cond_signal(&a->wake);
        /* Patience runs out only while nothing gets written. */
        int64_t written = load(&a->written_rows);
        int64_t deadline = op_now_mono_ms() + patience_ms;
        while ((a->head || load(&a->inflight_rows) > 0) && op_now_mono_ms() < deadline) {
            int64_t wall = op_now_wall_ms() + 100;
            struct timespec ts = {.tv_sec = wall / 1000, .tv_nsec = (wall % 1000) * 1000000};
            pthread_cond_timedwait(&a->idle, &a->mu, &ts);
            if (load(&a->written_rows) != written) {
                written = load(&a->written_rows);
                deadline = op_now_mono_ms() + patience_ms;
            }
        }
        int64_t left = a->queued_rows + load(&a->inflight_rows);
        if (left > 0) {
            a->stop = 2;
            fprintf(stderr,
                    "orderpulse: archive: MariaDB took no rows for %lld ms; %lld rows were not "
                    "written (a restart with Redis offers the windows it still holds again)\n",
                    (long long)patience_ms, (long long)left);
        }
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
    }
    while (a->head) {
        batch_t *next = a->head->next;
        batch_free(a->head);
        a->head = next;
    }
    if (a->held.b)
        batch_free(a->held.b);
    disconnect(a);
    op_jbuf_dispose(&a->sql);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->wake);
    pthread_cond_destroy(&a->idle);
    free(a);
}
