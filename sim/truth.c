/* truth.c — plain bookkeeping for the expected snapshot.
 *
 * Deliberately simple and independent of the engine: dense arrays indexed by
 * user, brand, category and gender (the generator's indices), and one small
 * open-addressing table per kind of window (minute, 10-minute slot) whose
 * entries are sorted by start time when the document is written.
 */
#include "sim/truth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim/catalog.h"
#include "sim/rng.h"

#define MINUTE_MS (60 * 1000LL)
#define SLOT_MS   (10 * 60 * 1000LL)
#define TOP_USERS 10

struct minute {
    uint64_t orders, quantity;
    int64_t amount;
    uint64_t cat_quantity[OP_CATALOG_MAX_CATEGORIES];
    int64_t cat_amount[OP_CATALOG_MAX_CATEGORIES];
};

struct slot {
    uint64_t quantity[OP_GEN_MAX_GENDERS];
};

/* Window start -> entry (of item_size bytes, zeroed when created). */
struct wtable {
    size_t n, cap, item_size;
    int64_t *keys;
    char *items;
    uint32_t *slots; /* entry index + 1; 0 = empty */
    size_t nslots;   /* a power of two */
    size_t last;     /* the entry found last: consecutive orders share windows */
};

struct user {
    int64_t amount;
    uint64_t orders;
};

/* Owner: the simulator's main thread. */
struct op_truth {
    op_gen_t namer; /* names users exactly as the generator does */
    uint64_t nusers;
    int32_t tz_offset_s;
    int ngenders;
    char gender_names[OP_GEN_MAX_GENDERS][OP_GEN_GENDER_NAMELEN];
    struct user *users;
    uint64_t orders, quantity, bad, late;
    int64_t amount;
    int64_t max_event_ms;
    uint64_t brand_quantity[OP_CATALOG_MAX_BRANDS];
    int64_t brand_amount[OP_CATALOG_MAX_BRANDS];
    uint64_t gender_quantity[OP_GEN_MAX_GENDERS];
    int64_t gender_amount[OP_GEN_MAX_GENDERS];
    struct wtable minutes, slots;
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        abort(); /* see truth.h: out of memory on the generation path */
    return p;
}

static void wtable_init(struct wtable *w, size_t item_size)
{
    memset(w, 0, sizeof(*w));
    w->item_size = item_size;
    w->last = SIZE_MAX;
}

static void wtable_dispose(struct wtable *w)
{
    free(w->keys);
    free(w->items);
    free(w->slots);
}

static size_t wtable_probe(const struct wtable *w, int64_t key)
{
    size_t i = op_rng_mix((uint64_t)key) & (w->nslots - 1);
    while (w->slots[i] && w->keys[w->slots[i] - 1] != key)
        i = (i + 1) & (w->nslots - 1);
    return i;
}

static void *wtable_get(struct wtable *w, int64_t key)
{
    if (w->last != SIZE_MAX && w->keys[w->last] == key)
        return w->items + w->last * w->item_size;
    if (2 * (w->n + 1) > w->nslots) {
        size_t ns = w->nslots ? 2 * w->nslots : 64;
        free(w->slots);
        w->slots = xcalloc(ns, sizeof(uint32_t));
        w->nslots = ns;
        for (size_t e = 0; e < w->n; e++)
            w->slots[wtable_probe(w, w->keys[e])] = (uint32_t)(e + 1);
    }
    size_t i = wtable_probe(w, key);
    if (!w->slots[i]) {
        if (w->n == w->cap) {
            size_t nc = w->cap ? 2 * w->cap : 64;
            int64_t *k = realloc(w->keys, nc * sizeof(int64_t));
            if (!k)
                abort();
            w->keys = k;
            char *it = realloc(w->items, nc * w->item_size);
            if (!it)
                abort();
            w->items = it;
            w->cap = nc;
        }
        w->keys[w->n] = key;
        memset(w->items + w->n * w->item_size, 0, w->item_size);
        w->slots[i] = (uint32_t)(++w->n);
    }
    w->last = w->slots[i] - 1;
    return w->items + w->last * w->item_size;
}

static int cmp_i64_by_key(const void *a, const void *b, void *keys)
{
    int64_t ka = ((const int64_t *)keys)[*(const size_t *)a];
    int64_t kb = ((const int64_t *)keys)[*(const size_t *)b];
    return ka < kb ? -1 : ka > kb;
}

/* Entry indices in ascending key order; the caller frees. */
static size_t *wtable_sorted(const struct wtable *w)
{
    size_t *idx = xcalloc(w->n, sizeof(size_t));
    for (size_t i = 0; i < w->n; i++)
        idx[i] = i;
    qsort_r(idx, w->n, sizeof(size_t), cmp_i64_by_key, w->keys);
    return idx;
}

int op_truth_create(op_truth_t **out, const op_gen_opts_t *o)
{
    op_truth_t *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    char err[256];
    if (op_gen_init(&t->namer, o, err, sizeof(err)) < 0) {
        free(t);
        return -EINVAL;
    }
    t->nusers = o->users;
    t->tz_offset_s = o->tz_offset_s;
    t->ngenders = o->ngenders;
    memcpy(t->gender_names, o->gender_names, sizeof(t->gender_names));
    t->users = calloc(o->users, sizeof(struct user));
    if (!t->users) {
        free(t);
        return -ENOMEM;
    }
    wtable_init(&t->minutes, sizeof(struct minute));
    wtable_init(&t->slots, sizeof(struct slot));
    *out = t;
    return 0;
}

void op_truth_destroy(op_truth_t *t)
{
    if (!t)
        return;
    wtable_dispose(&t->minutes);
    wtable_dispose(&t->slots);
    free(t->users);
    free(t);
}

static int64_t floor_to(int64_t v, int64_t unit)
{
    int64_t q = v / unit;
    if (v % unit < 0)
        q--;
    return q * unit;
}

void op_truth_add(op_truth_t *t, const op_gen_record_t *rec)
{
    if (rec->bad) {
        t->bad++;
        return;
    }
    t->orders++;
    t->quantity += (uint64_t)rec->num;
    t->amount += rec->amount;
    t->late += rec->late;
    if (t->orders == 1 || rec->event_ms > t->max_event_ms)
        t->max_event_ms = rec->event_ms;
    t->users[rec->user].amount += rec->amount;
    t->users[rec->user].orders++;
    t->brand_quantity[rec->brand] += (uint64_t)rec->num;
    t->brand_amount[rec->brand] += rec->amount;
    t->gender_quantity[rec->gender] += (uint64_t)rec->num;
    t->gender_amount[rec->gender] += rec->amount;

    struct minute *m = wtable_get(&t->minutes, floor_to(rec->event_ms, MINUTE_MS));
    m->orders++;
    m->quantity += (uint64_t)rec->num;
    m->amount += rec->amount;
    m->cat_quantity[rec->category] += (uint64_t)rec->num;
    m->cat_amount[rec->category] += rec->amount;
    struct slot *s = wtable_get(&t->slots, floor_to(rec->event_ms, SLOT_MS));
    s->quantity[rec->gender] += (uint64_t)rec->num;
}

uint64_t op_truth_good(const op_truth_t *t)
{
    return t->orders;
}

uint64_t op_truth_bad(const op_truth_t *t)
{
    return t->bad;
}

uint64_t op_truth_late(const op_truth_t *t)
{
    return t->late;
}

/* ---- the document ---------------------------------------------------------------- */

static void put_cents(FILE *f, int64_t c)
{
    uint64_t u = c < 0 ? (uint64_t)0 - (uint64_t)c : (uint64_t)c;
    fprintf(f, "%s%llu.%02u", c < 0 ? "-" : "", (unsigned long long)(u / 100), (unsigned)(u % 100));
}

/* A ranked entry: sort by value descending, then name bytewise ascending. */
struct ranked {
    const char *name;
    uint64_t quantity;
    int64_t amount;
};

static int cmp_by_quantity(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->quantity != y->quantity)
        return x->quantity > y->quantity ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_by_amount(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->amount != y->amount)
        return x->amount > y->amount ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void put_ranking(FILE *f, struct ranked *r, size_t n, int (*cmp)(const void *, const void *))
{
    qsort(r, n, sizeof(*r), cmp);
    fputc('[', f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s{\"name\":\"%s\",\"quantity\":%llu,\"amount\":", i ? "," : "", r[i].name,
                (unsigned long long)r[i].quantity);
        put_cents(f, r[i].amount);
        fputc('}', f);
    }
    fputc(']', f);
}

struct top_user {
    uint64_t user;
    char name[OP_CATALOG_USER_MAX + 1];
    int64_t amount;
    uint64_t orders;
};

/* 1 if (amount, name) ranks before the entry e: amount descending, name ascending. */
static int ranks_before(int64_t amount, const char *name, const struct top_user *e)
{
    if (amount != e->amount)
        return amount > e->amount;
    return strcmp(name, e->name) < 0;
}

static size_t top_users(const op_truth_t *t, struct top_user *top)
{
    size_t n = 0;
    char name[OP_CATALOG_USER_MAX + 1];
    for (uint64_t u = 0; u < t->nusers; u++) {
        const struct user *us = &t->users[u];
        if (!us->orders)
            continue;
        /* Cheap rejection on the amount alone; names only matter on ties. */
        if (n == TOP_USERS && us->amount < top[n - 1].amount)
            continue;
        name[op_gen_user_name(&t->namer, u, name)] = '\0';
        if (n == TOP_USERS && !ranks_before(us->amount, name, &top[n - 1]))
            continue;
        size_t pos = n < TOP_USERS ? n++ : n - 1;
        while (pos > 0 && ranks_before(us->amount, name, &top[pos - 1])) {
            top[pos] = top[pos - 1];
            pos--;
        }
        top[pos].user = u;
        memcpy(top[pos].name, name, sizeof(name));
        top[pos].amount = us->amount;
        top[pos].orders = us->orders;
    }
    return n;
}

int op_truth_write(op_truth_t *t, FILE *f, int64_t as_of)
{
    size_t nc = op_catalog_ncategories(), nb = op_catalog_nbrands(), n;
    struct ranked r[OP_CATALOG_MAX_BRANDS];

    /* Every window is closed and was never shown open: "state" is "final".
     * tick_ms and display_timezone are the engine's settings, not the
     * orders' (tests leave them out, like as_of and tick). */
    int32_t tz = t->tz_offset_s < 0 ? -t->tz_offset_s : t->tz_offset_s;
    fprintf(f,
            "{\"as_of\":%lld,\"watermark\":%lld,\"tick\":0,\"tick_ms\":0,"
            "\"display_timezone\":\"%c%02d:%02d\",",
            (long long)as_of, (long long)(t->orders ? t->max_event_ms - OP_TRUTH_LATENESS_MS : 0),
            t->tz_offset_s < 0 ? '-' : '+', (int)(tz / 3600), (int)(tz % 3600 / 60));
    fprintf(f, "\"totals\":{\"orders\":%llu,\"quantity\":%llu,\"amount\":",
            (unsigned long long)t->orders, (unsigned long long)t->quantity);
    put_cents(f, t->amount);

    size_t *mi = wtable_sorted(&t->minutes);
    fputs("},\"minutes\":[", f);
    for (size_t i = 0; i < t->minutes.n; i++) {
        const struct minute *m =
            (const struct minute *)(t->minutes.items + mi[i] * sizeof(struct minute));
        fprintf(f, "%s{\"minute\":%lld,\"orders\":%llu,\"quantity\":%llu,\"amount\":", i ? "," : "",
                (long long)t->minutes.keys[mi[i]], (unsigned long long)m->orders,
                (unsigned long long)m->quantity);
        put_cents(f, m->amount);
        fputs(",\"state\":\"final\",\"final\":true}", f);
    }
    fputs("],\"categories\":[", f);
    for (size_t i = 0; i < t->minutes.n; i++) {
        const struct minute *m =
            (const struct minute *)(t->minutes.items + mi[i] * sizeof(struct minute));
        n = 0;
        for (size_t c = 0; c < nc; c++)
            if (m->cat_quantity[c])
                r[n++] = (struct ranked){op_catalog_category(c)->name.s, m->cat_quantity[c],
                                         m->cat_amount[c]};
        fprintf(f, "%s{\"minute\":%lld,\"state\":\"final\",\"ranking\":", i ? "," : "",
                (long long)t->minutes.keys[mi[i]]);
        put_ranking(f, r, n, cmp_by_quantity);
        fputc('}', f);
    }
    free(mi);

    fputs("],\"brands\":", f);
    n = 0;
    for (size_t b = 0; b < nb; b++)
        if (t->brand_quantity[b])
            r[n++] =
                (struct ranked){op_catalog_brand(b).s, t->brand_quantity[b], t->brand_amount[b]};
    put_ranking(f, r, n, cmp_by_quantity);

    struct top_user top[TOP_USERS];
    size_t ntop = top_users(t, top);
    fputs(",\"top_users\":[", f);
    for (size_t i = 0; i < ntop; i++) {
        fprintf(f, "%s{\"name\":\"%s\",\"amount\":", i ? "," : "", top[i].name);
        put_cents(f, top[i].amount);
        fprintf(f, ",\"orders\":%llu}", (unsigned long long)top[i].orders);
    }

    fputs("],\"gender\":[", f);
    n = 0;
    for (int g = 0; g < t->ngenders; g++)
        if (t->gender_quantity[g])
            r[n++] =
                (struct ranked){t->gender_names[g], t->gender_quantity[g], t->gender_amount[g]};
    qsort(r, n, sizeof(r[0]), cmp_by_amount);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s{\"name\":\"%s\",\"quantity\":%llu,\"amount\":", i ? "," : "", r[i].name,
                (unsigned long long)r[i].quantity);
        put_cents(f, r[i].amount);
        fprintf(f, ",\"quantity_share\":%.6f,\"amount_share\":%.6f}",
                t->quantity ? (double)r[i].quantity / (double)t->quantity : 0.0,
                t->amount ? (double)r[i].amount / (double)t->amount : 0.0);
    }

    size_t *si = wtable_sorted(&t->slots);
    fputs("],\"gender_slots\":[", f);
    for (size_t i = 0; i < t->slots.n; i++) {
        const struct slot *s = (const struct slot *)(t->slots.items + si[i] * sizeof(struct slot));
        fprintf(f, "%s{\"slot\":%lld,\"state\":\"final\",\"quantity\":{", i ? "," : "",
                (long long)t->slots.keys[si[i]]);
        int first = 1;
        for (int g = 0; g < t->ngenders; g++) {
            if (!s->quantity[g])
                continue;
            fprintf(f, "%s\"%s\":%llu", first ? "" : ",", t->gender_names[g],
                    (unsigned long long)s->quantity[g]);
            first = 0;
        }
        fputs("}}", f);
    }
    free(si);
    fprintf(f, "],\"stats\":{\"bad_records\":%llu,\"late_records\":%llu,\"lag\":0}}\n",
            (unsigned long long)t->bad, (unsigned long long)t->late);
    return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}
