/* gen.c — renders orders straight into the caller's buffer.
 *
 * One record costs a user draw, a normal draw and a handful of small
 * uniform draws, then a run of memcpy's and integer formatting: no printf,
 * no allocation. Per-user attributes (gender, name, address, phone) are a
 * hash of (seed, user), so they are fixed per user without any per-user
 * memory. Malformed records are good records with one thing broken, so that
 * each kind exercises exactly one rejection path of the engine's parser.
 *
 * User popularity. By default every user has a purchase rate drawn from a
 * log-normal law, log(rate) ~ N(mu, sigma^2), and each order goes to a user
 * with probability proportional to the rate (a Poisson mixture, as in the
 * repeat-buying models of marketing science). With sigma = 1.1 the heaviest
 * 20 % of users place 1 - Phi(Phi^-1(0.8) - sigma) = 60 % of the orders:
 * the "60/20" concentration measured across consumer categories (Sharp and
 * Romaniuk, Ehrenberg-Bass Institute, "There is a Pareto law but not as you
 * know it"; Kim, Singh and Winer, Marketing Letters 28(4), 2017, find 0.73
 * for brands over six years), not 80/20. The single heaviest of 100 000
 * users places about 0.08 % of the orders (op_gen_top_user_share), against
 * 10-13 % under the earlier Zipf law with s = 1.1, which made one shopper
 * buy a tenth of a whole sales day.
 *
 * No table is needed: an order's user is drawn from the size-biased law of
 * the rates, whose log is N(mu + sigma^2, sigma^2), and the user is the one
 * at that quantile of the rates: z ~ N(0, 1), the share of users with a
 * larger rate is q = 1 - Phi(z + sigma), and the user's rank (0 = heaviest)
 * is floor(q * users).
 */
#include "sim/gen.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conf.h"
#include "sim/catalog.h"
#include "sim/fmt.h"

#define MIN_PRICE_CENTS 100LL      /* 1.00 */
#define MAX_PRICE_CENTS 10000000LL /* 100000.00 */
#define LATE_AFTER_MS   130000     /* late records only once a watermark exists */
#define LATE_MIN_MS     10000
#define LATE_MAX_MS     120000
#define DEEP_NESTING    200

static const char *const bad_names[OP_GEN_BAD_COUNT] = {
    [OP_GEN_GOOD] = "good",
    [OP_GEN_BAD_TRUNCATED] = "truncated",
    [OP_GEN_BAD_UTF8] = "invalid_utf8",
    [OP_GEN_BAD_SURROGATE] = "lone_surrogate",
    [OP_GEN_BAD_MISSING] = "missing_field",
    [OP_GEN_BAD_NUM_STRING] = "num_string",
    [OP_GEN_BAD_NUM_ZERO] = "num_zero",
    [OP_GEN_BAD_NEG_TOTAL] = "negative_total",
    [OP_GEN_BAD_TRAILING] = "trailing_garbage",
    [OP_GEN_BAD_BINARY] = "binary_junk",
    [OP_GEN_BAD_DEEP] = "deep_nesting",
    [OP_GEN_BAD_EMPTY] = "empty",
};

const char *op_gen_bad_name(int kind)
{
    return kind >= 0 && kind < OP_GEN_BAD_COUNT ? bad_names[kind] : "unknown";
}

/* ---- options ------------------------------------------------------------------ */

/* Length of the UTF-8 sequence at p (within n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    unsigned cp = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static int check_gender_name(const char *s, size_t n, char *err, size_t errlen)
{
    if (n == 0 || n >= OP_GEN_GENDER_NAMELEN)
        return op_conf_error(err, errlen, "--genders: a name must have 1..%d bytes",
                             OP_GEN_GENDER_NAMELEN - 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F || c == '"' || c == '\\')
            return op_conf_error(err, errlen, "--genders: name '%.*s' has a forbidden character",
                                 (int)n, s);
        size_t l = utf8_len((const unsigned char *)s + i, n - i);
        if (!l)
            return op_conf_error(err, errlen, "--genders: a name is not valid UTF-8");
        i += l;
    }
    return 0;
}

int op_gen_parse_genders(op_gen_opts_t *o, const char *spec, char *err, size_t errlen)
{
    const char *p = spec ? spec : "";
    int n = 0;
    double total = 0;
    if (!*p)
        return op_conf_error(err, errlen, "--genders: empty (e.g. \"男:0.5,女:0.5\")");
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t itemlen = comma ? (size_t)(comma - p) : strlen(p);
        const char *colon = memchr(p, ':', itemlen);
        if (!colon)
            return op_conf_error(err, errlen, "--genders: '%.*s' is not NAME:WEIGHT", (int)itemlen,
                                 p);
        if (n == OP_GEN_MAX_GENDERS)
            return op_conf_error(err, errlen, "--genders: at most %d genders", OP_GEN_MAX_GENDERS);
        size_t namelen = (size_t)(colon - p);
        int rc = check_gender_name(p, namelen, err, errlen);
        if (rc < 0)
            return rc;
        char wbuf[64];
        size_t wlen = itemlen - namelen - 1;
        if (wlen >= sizeof(wbuf))
            return op_conf_error(err, errlen, "--genders: weight of '%.*s' is too long",
                                 (int)namelen, p);
        memcpy(wbuf, colon + 1, wlen);
        wbuf[wlen] = '\0';
        double w;
        if (op_conf_parse_double("--genders", wbuf, 0, 1e9, &w, err, errlen) < 0)
            return -EINVAL;
        if (!(w > 0))
            return op_conf_error(err, errlen, "--genders: weight of '%.*s' must be > 0",
                                 (int)namelen, p);
        for (int i = 0; i < n; i++)
            if (strlen(o->gender_names[i]) == namelen &&
                memcmp(o->gender_names[i], p, namelen) == 0)
                return op_conf_error(err, errlen, "--genders: '%.*s' appears twice", (int)namelen,
                                     p);
        memcpy(o->gender_names[n], p, namelen);
        o->gender_names[n][namelen] = '\0';
        o->gender_weights[n] = w;
        total += w;
        n++;
        p += itemlen;
        if (*p == ',' && *++p == '\0')
            return op_conf_error(err, errlen, "--genders: trailing ','");
    }
    for (int i = 0; i < n; i++)
        o->gender_weights[i] /= total;
    o->ngenders = n;
    return 0;
}

int op_gen_init(op_gen_t *g, const op_gen_opts_t *o, char *err, size_t errlen)
{
    memset(g, 0, sizeof(*g));
    if (o->users < 1 || o->users > UINT32_MAX)
        return op_conf_error(err, errlen, "--users: must be in 1..%u", UINT32_MAX);
    if (o->ngenders < 1 || o->ngenders > OP_GEN_MAX_GENDERS)
        return op_conf_error(err, errlen, "--genders: need 1..%d genders", OP_GEN_MAX_GENDERS);
    if (o->popularity == OP_GEN_POP_ZIPF && op_zipf_init(&g->zipf, o->users, o->zipf_s) < 0)
        return op_conf_error(err, errlen, "--zipf: must be a finite number >= 0");
    if (o->popularity == OP_GEN_POP_LOGNORMAL && !(o->sigma >= 0 && o->sigma <= 10))
        return op_conf_error(err, errlen, "--popularity: the log-normal sigma must be in [0, 10]");
    if (!(o->speed > 0) || o->rate < 0 || o->jitter_ms < 0 || !(o->late_fraction >= 0) ||
        !(o->late_fraction <= 1) || !(o->bad_fraction >= 0) || !(o->bad_fraction <= 1))
        return op_conf_error(err, errlen, "invalid generator options");
    if (o->start_ms >= 0 && o->start_ms - o->jitter_ms - LATE_MAX_MS < 1000)
        return op_conf_error(err, errlen, "--start: too early for the jitter and late records");
    g->o = *o;
    op_rng_init(&g->rng, o->seed);
    g->first_clock_ms = -1;
    g->cached_second = INT64_MIN;

    double acc = 0;
    for (int i = 0; i < o->ngenders; i++) {
        acc += o->gender_weights[i];
        g->gender_cdf[i] = acc;
        g->gender_len[i] = (uint8_t)strlen(o->gender_names[i]);
        g->gender_sex[i] = (uint8_t)op_catalog_sex_of(o->gender_names[i]);
    }
    g->gender_cdf[o->ngenders - 1] = 2.0; /* rounding never leaves a user without a gender */

    size_t nc = op_catalog_ncategories();
    for (size_t i = 0; i < nc; i++) {
        const op_catalog_category_t *c = op_catalog_category(i);
        g->category_total += c->weight;
        g->category_cdf[i] = g->category_total;
        g->category_mu[i] = log((double)c->median_cents);
    }
    return 0;
}

/* ---- one record ------------------------------------------------------------------ */

static uint64_t user_hash(const op_gen_t *g, uint64_t user)
{
    return op_rng_mix(g->o.seed ^ op_rng_mix(user + 0x5851f42d4c957f2dULL));
}

unsigned op_gen_user_gender(const op_gen_t *g, uint64_t user)
{
    double u = (double)(user_hash(g, user) >> 11) * 0x1.0p-53;
    unsigned i = 0;
    while (u >= g->gender_cdf[i])
        i++;
    return i;
}

size_t op_gen_user_name(const op_gen_t *g, uint64_t user, char *buf)
{
    if (g->o.popularity == OP_GEN_POP_ZIPF)
        return op_catalog_user_name(user, buf);
    return op_catalog_user_name_as(
        user, (op_catalog_sex_t)g->gender_sex[op_gen_user_gender(g, user)], buf);
}

/* 1 - Phi(x), accurate far into the tail. */
static double upper_normal(double x)
{
    return 0.5 * erfc(x / sqrt(2.0));
}

/* A user index, 0 the most frequent (see "User popularity" above). */
static uint64_t draw_user(op_gen_t *g)
{
    if (g->o.popularity == OP_GEN_POP_ZIPF)
        return op_zipf_draw(&g->zipf, &g->rng) - 1;
    double z = op_rng_normal(&g->rng, &g->user_spare, &g->user_has_spare);
    double rank = floor(upper_normal(z + g->o.sigma) * (double)g->o.users);
    return rank < (double)g->o.users ? (uint64_t)rank : g->o.users - 1;
}

double op_gen_top_user_share(const op_gen_opts_t *o)
{
    if (o->popularity == OP_GEN_POP_ZIPF) {
        double h = 0; /* 1 / H(users, s) */
        for (uint64_t k = o->users; k >= 1; k--)
            h += pow((double)k, -o->zipf_s);
        return 1.0 / h;
    }
    /* The heaviest user holds the size-biased mass of the rates above the
     * 1 - 1/users quantile. Phi^-1 by bisection: this is not on a hot path. */
    double lo = -40, hi = 40, tail = 1.0 / (double)o->users;
    for (int i = 0; i < 200; i++) {
        double mid = (lo + hi) / 2;
        if (upper_normal(mid) > tail)
            lo = mid;
        else
            hi = mid;
    }
    return upper_normal(lo - o->sigma);
}

static int64_t clock_ms(const op_gen_t *g, uint64_t seq, int64_t live_ms)
{
    if (g->o.start_ms < 0)
        return live_ms;
    double rate = g->o.rate > 0 ? (double)g->o.rate : 1000.0;
    return g->o.start_ms + (int64_t)floor((double)seq * 1000.0 * g->o.speed / rate);
}

static int32_t draw_num(op_rng_t *r)
{
    /* 1: 55%, 2: 25%, 3: 10%, 4: 6%, 5: 4% */
    uint64_t u = op_rng_below(r, 100);
    return u < 55 ? 1 : u < 80 ? 2 : u < 90 ? 3 : u < 96 ? 4 : 5;
}

#define PUT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static const char *order_time(op_gen_t *g, int64_t event_ms)
{
    int64_t sec = event_ms / 1000; /* event times are positive */
    if (sec != g->cached_second) {
        op_fmt_local_time(g->cached_time, sec, g->o.tz_offset_s);
        g->cached_second = sec;
    }
    return g->cached_time;
}

size_t op_gen_next(op_gen_t *g, int64_t live_ms, char *buf, op_gen_record_t *rec)
{
    op_rng_t *r = &g->rng;
    uint64_t seq = g->seq++;
    int64_t clock = clock_ms(g, seq, live_ms);
    if (g->first_clock_ms < 0)
        g->first_clock_ms = clock;

    int64_t event = clock;
    if (g->o.jitter_ms > 0)
        event -= (int64_t)op_rng_below(r, (uint64_t)g->o.jitter_ms + 1);
    int late = 0;
    if (g->o.late_fraction > 0 && clock - g->first_clock_ms >= LATE_AFTER_MS &&
        op_rng_double(r) < g->o.late_fraction) {
        event -= LATE_MIN_MS + (int64_t)op_rng_below(r, LATE_MAX_MS - LATE_MIN_MS + 1);
        late = 1;
    }

    uint64_t user = draw_user(g);
    uint64_t uh = user_hash(g, user);
    unsigned gender = op_gen_user_gender(g, user);
    uint32_t cu = (uint32_t)op_rng_below(r, g->category_total);
    unsigned cat = 0;
    while (cu >= g->category_cdf[cat])
        cat++;
    const op_catalog_category_t *c = op_catalog_category(cat);
    const op_catalog_goods_t *goods = &c->goods[op_rng_below(r, c->ngoods)];
    double z = op_rng_normal(r, &g->spare_normal, &g->has_spare);
    int64_t price = llround(exp(g->category_mu[cat] + c->sigma * z));
    if (price < MIN_PRICE_CENTS)
        price = MIN_PRICE_CENTS;
    if (price > MAX_PRICE_CENTS)
        price = MAX_PRICE_CENTS;
    int32_t num = draw_num(r);
    op_catalog_str_t status = op_catalog_status((unsigned)op_rng_below(r, 100));
    int bad = OP_GEN_GOOD;
    if (g->o.bad_fraction > 0 && op_rng_double(r) < g->o.bad_fraction)
        bad = 1 + (int)op_rng_below(r, OP_GEN_BAD_COUNT - 1);
    int missing = bad == OP_GEN_BAD_MISSING ? (int)op_rng_below(r, 6) : -1;

    memset(rec, 0, sizeof(*rec)); /* no stray padding: records compare with memcmp */
    rec->seq = seq;
    rec->user = user;
    rec->price = price;
    rec->num = bad == OP_GEN_BAD_NUM_ZERO ? 0 : num;
    rec->amount = price * rec->num;
    rec->event_ms = g->o.time_field == OP_GEN_TIME_STRING ? event / 1000 * 1000 : event;
    rec->brand = goods->brand;
    rec->gender = (uint8_t)gender;
    rec->category = (uint8_t)cat;
    rec->bad = (uint8_t)bad;
    rec->late = (uint8_t)late;

    if (bad == OP_GEN_BAD_EMPTY)
        return 0;
    if (bad == OP_GEN_BAD_BINARY) {
        size_t n = 16 + op_rng_below(r, 65);
        for (size_t i = 0; i < n; i += 8) {
            uint64_t v = op_rng_next(r);
            for (size_t k = 0; k < 8 && i + k < n; k++) {
                unsigned char b = (unsigned char)(v >> (8 * k));
                buf[i + k] = (char)(b == '\n' || b == '\r' ? 0xFE : b);
            }
        }
        buf[0] = (char)(buf[0] | 0x80); /* never '{', never whitespace */
        return n;
    }

    char *p = buf;
    p = PUT(p, "{\"orderId\":\"O");
    p = op_fmt_u64(p, (uint64_t)clock);
    p = op_fmt_u64_pad(p, seq % 1000000, 6);
    if (missing != 0) {
        p = PUT(p, "\",\"userName\":\"");
        p += op_gen_user_name(g, user, p);
        if (bad == OP_GEN_BAD_SURROGATE)
            p = PUT(p, "\\ud800");
    }
    if (missing != 1) {
        p = PUT(p, "\",\"gender\":\"");
        p = put(p, g->o.gender_names[gender], g->gender_len[gender]);
    }
    p = PUT(p, "\",\"goods\":\"");
    p = put(p, goods->name.s, goods->name.len);
    if (missing != 2) {
        p = PUT(p, "\",\"goodsType\":\"");
        p = put(p, c->name.s, c->name.len);
    }
    if (missing != 3) {
        op_catalog_str_t b = op_catalog_brand(goods->brand);
        p = PUT(p, "\",\"brand\":\"");
        p = put(p, b.s, b.len);
    }
    *p++ = '"';
    if (g->o.time_field != OP_GEN_TIME_SERIES) {
        p = PUT(p, ",\"orderTime\":\"");
        p = put(p, order_time(g, event), OP_FMT_TIME_LEN);
        *p++ = '"';
    }
    if (g->o.time_field != OP_GEN_TIME_STRING) {
        p = PUT(p, ",\"orderTimeSeries\":");
        p = op_fmt_u64(p, (uint64_t)event);
    }
    p = PUT(p, ",\"price\":");
    p = op_fmt_cents(p, price);
    if (missing != 4) {
        p = PUT(p, ",\"num\":");
        if (bad == OP_GEN_BAD_NUM_STRING) {
            *p++ = '"';
            p = op_fmt_u64(p, (uint64_t)num);
            *p++ = '"';
        } else {
            p = op_fmt_u64(p, (uint64_t)rec->num);
        }
    }
    if (missing != 5) {
        p = PUT(p, ",\"totalPrice\":");
        p = op_fmt_cents(p, bad == OP_GEN_BAD_NEG_TOTAL ? -rec->amount : rec->amount);
    }
    p = PUT(p, ",\"status\":\"");
    p = put(p, status.s, status.len);
    p = PUT(p, "\",\"address\":\"");
    size_t split;
    char *addr = p;
    p += op_catalog_address(op_rng_mix(uh ^ 1), addr, &split);
    if (bad == OP_GEN_BAD_UTF8) {
        memmove(addr + split + 1, addr + split, (size_t)(p - addr) - split);
        addr[split] = (char)0xFF;
        p++;
    }
    p = PUT(p, "\",\"phone\":");
    p = op_fmt_u64(p, op_catalog_phone(op_rng_mix(uh ^ 2)));
    if (bad == OP_GEN_BAD_DEEP) {
        p = PUT(p, ",\"extra\":");
        memset(p, '[', DEEP_NESTING);
        memset(p + DEEP_NESTING, ']', DEEP_NESTING);
        p += 2 * DEEP_NESTING;
    }
    *p++ = '}';
    if (bad == OP_GEN_BAD_TRAILING)
        p = PUT(p, " garbage");
    size_t len = (size_t)(p - buf);
    if (bad == OP_GEN_BAD_TRUNCATED)
        len = 1 + op_rng_below(r, len - 2); /* keeps '{', always loses the closing '}' */
    return len;
}
