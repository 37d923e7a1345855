/* intern.c — global name→id dictionary on cds_lfht, with per-worker caches.
 *
 * Insertion race: two workers meeting a new name at once both take an id
 * from the dimension's counter, and cds_lfht_add_unique lets one of them
 * win; the loser frees its node and uses the winner's id, leaving a hole in
 * the id space. Holes are harmless: no aggregate ever carries their id.
 *
 * Names are published in a chunked array (id → node) before the node is
 * added to the table, with release ordering, so any thread that obtained an
 * id can read its name with an acquire load.
 */
#include "engine/intern.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <urcu.h>
#include <urcu/rculfhash.h>

#include "engine/hash.h"
#include "engine/util.h"

#define CHUNK_BITS 10
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define NCHUNKS    (OP_INTERN_MAX_IDS / CHUNK_SIZE)

typedef struct intern_node {
    struct cds_lfht_node lfht;
    uint32_t id;
    uint8_t dim;
    uint8_t len;
    char name[];
} intern_node_t;

struct op_intern {
    struct cds_lfht *table;
    /* Per dimension: the next id (atomic fetch-add) and the id→node chunks,
     * each chunk pointer installed once by compare-and-swap. */
    struct {
        uint32_t next;
        intern_node_t **chunks[NCHUNKS];
    } dims[OP_DIM_COUNT];
};

/* A cache entry. Names of up to 16 bytes are compared as two words (w0 =
 * op_hash_word of the name, w1 = its last 8 bytes when longer than 8), so
 * the common lookup is four integer compares and no memcmp. */
struct op_intern_slot {
    uint64_t hash; /* 0 = empty (a real hash of 0 is stored as 1) */
    uint64_t w0, w1;
    uint32_t meta; /* len | dim << 16 */
    const intern_node_t *node;
};

typedef struct cache_key {
    uint64_t hash, w0, w1;
    uint32_t meta;
} cache_key_t;

static inline cache_key_t cache_key(op_dim_t dim, const char *name, size_t len)
{
    cache_key_t k = {.meta = (uint32_t)len | (uint32_t)dim << 16};
    k.w0 = op_hash_word(name, len);
    if (len > 8)
        memcpy(&k.w1, name + len - 8, 8);
    if (len > 16)
        k.hash = op_hash_bytes(name, len) ^ ((uint64_t)dim << 56);
    else
        k.hash = op_hash_mix((k.w0 * 0x9e3779b97f4a7c15ULL) ^ (k.w1 * 0xc2b2ae3d27d4eb4fULL) ^
                             ((uint64_t)k.meta << 40));
    if (!k.hash)
        k.hash = 1;
    return k;
}

int op_intern_create(op_intern_t **out)
{
    op_intern_t *in = calloc(1, sizeof(*in));
    if (!in)
        return -ENOMEM;
    in->table = cds_lfht_new(64, 64, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
    if (!in->table) {
        free(in);
        return -ENOMEM;
    }
    *out = in;
    return 0;
}

void op_intern_destroy(op_intern_t *in)
{
    if (!in)
        return;
    /* No reader is left: remove and free directly, outside any read-side
     * critical section as cds_lfht_destroy requires. */
    struct cds_lfht_iter it;
    struct cds_lfht_node *n;
    rcu_read_lock();
    cds_lfht_for_each(in->table, &it, n)
    {
        cds_lfht_del(in->table, n);
    }
    rcu_read_unlock();
    synchronize_rcu();
    cds_lfht_destroy(in->table, NULL);
    for (int d = 0; d < OP_DIM_COUNT; d++) {
        for (uint32_t c = 0; c < NCHUNKS; c++) {
            intern_node_t **chunk = in->dims[d].chunks[c];
            if (!chunk)
                continue;
            for (uint32_t i = 0; i < CHUNK_SIZE; i++)
                free(chunk[i]);
            free(chunk);
        }
    }
    free(in);
}

static intern_node_t **intern_slot_of(op_intern_t *in, op_dim_t dim, uint32_t id)
{
    intern_node_t ***chunkp = &in->dims[dim].chunks[id >> CHUNK_BITS];
    intern_node_t **chunk = __atomic_load_n(chunkp, __ATOMIC_ACQUIRE);
    if (!chunk) {
        intern_node_t **fresh = op_xcalloc(CHUNK_SIZE, sizeof(*fresh));
        if (__atomic_compare_exchange_n(chunkp, &chunk, fresh, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            chunk = fresh;
        else
            free(fresh);
    }
    return &chunk[id & (CHUNK_SIZE - 1)];
}

const char *op_intern_name(const op_intern_t *in, op_dim_t dim, uint32_t id, size_t *len)
{
    if (id >= OP_INTERN_MAX_IDS)
        return NULL;
    intern_node_t **chunk =
        __atomic_load_n(&in->dims[dim].chunks[id >> CHUNK_BITS], __ATOMIC_ACQUIRE);
    if (!chunk)
        return NULL;
    intern_node_t *n = __atomic_load_n(&chunk[id & (CHUNK_SIZE - 1)], __ATOMIC_ACQUIRE);
    if (!n || __atomic_load_n(&n->id, __ATOMIC_ACQUIRE) != id)
        return NULL;
    *len = n->len;
    return n->name;
}

uint32_t op_intern_count(const op_intern_t *in, op_dim_t dim)
{
    uint32_t n = __atomic_load_n(&in->dims[dim].next, __ATOMIC_ACQUIRE);
    return n < OP_INTERN_MAX_IDS ? n : OP_INTERN_MAX_IDS;
}

struct intern_key {
    op_dim_t dim;
    const char *name;
    size_t len;
};

static int intern_match(struct cds_lfht_node *node, const void *key)
{
    const intern_node_t *n = caa_container_of(node, intern_node_t, lfht);
    const struct intern_key *k = key;
    /* The table may hand us a node another worker is publishing right now;
     * its release store of id orders the name before the add. */
    (void)__atomic_load_n(&n->id, __ATOMIC_ACQUIRE);
    return n->dim == k->dim && n->len == k->len && memcmp(n->name, k->name, k->len) == 0;
}

/* The global lookup/insert. Caller holds no RCU read lock. */
static const intern_node_t *intern_global(op_intern_t *in, op_dim_t dim, const char *name,
                                          size_t len, uint64_t hash)
{
    struct intern_key key = {dim, name, len};
    struct cds_lfht_iter it;
    const intern_node_t *found = NULL;

    rcu_read_lock();
    cds_lfht_lookup(in->table, hash, intern_match, &key, &it);
    struct cds_lfht_node *hit = cds_lfht_iter_get_node(&it);
    if (hit) {
        found = caa_container_of(hit, intern_node_t, lfht);
        /* Pairs with the release store of id below: the name is complete. */
        (void)__atomic_load_n(&found->id, __ATOMIC_ACQUIRE);
    }
    rcu_read_unlock();
    if (found)
        return found;

    /* Checked before the fetch-add too, so that a stream of ever new names
     * cannot wrap the counter. */
    if (__atomic_load_n(&in->dims[dim].next, __ATOMIC_RELAXED) >= OP_INTERN_MAX_IDS)
        return NULL;
    uint32_t id = __atomic_fetch_add(&in->dims[dim].next, 1, __ATOMIC_ACQ_REL);
    if (id >= OP_INTERN_MAX_IDS)
        return NULL;
    intern_node_t *n = op_xmalloc(sizeof(*n) + len);
    cds_lfht_node_init(&n->lfht);
    n->dim = (uint8_t)dim;
    n->len = (uint8_t)len;
    memcpy(n->name, name, len);
    __atomic_store_n(&n->id, id, __ATOMIC_RELEASE);
    __atomic_store_n(intern_slot_of(in, dim, id), n, __ATOMIC_RELEASE);

    rcu_read_lock();
    hit = cds_lfht_add_unique(in->table, hash, intern_match, &key, &n->lfht);
    rcu_read_unlock();
    if (hit != &n->lfht) {
        (void)__atomic_load_n(&caa_container_of(hit, intern_node_t, lfht)->id, __ATOMIC_ACQUIRE);
        /* Lost the race: our id becomes a hole. Nobody else can have seen n
         * through the table; its chunk entry stays (op_intern_name checks the
         * id, and the node is freed with the dictionary). */
        return caa_container_of(hit, intern_node_t, lfht);
    }
    return n;
}

void op_intern_cache_init(op_intern_cache_t *c, op_intern_t *in)
{
    memset(c, 0, sizeof(*c));
    c->dict = in;
}

void op_intern_cache_dispose(op_intern_cache_t *c)
{
    free(c->slots);
    memset(c, 0, sizeof(*c));
}

static void cache_insert(op_intern_cache_t *c, const struct op_intern_slot *e);

static void cache_grow(op_intern_cache_t *c)
{
    struct op_intern_slot *old = c->slots;
    uint32_t oldcap = c->cap;
    c->cap = oldcap ? oldcap * 2 : 64;
    c->slots = op_xcalloc(c->cap, sizeof(*c->slots));
    c->count = 0;
    for (uint32_t i = 0; i < oldcap; i++)
        if (old[i].hash)
            cache_insert(c, &old[i]);
    free(old);
}

static void cache_insert(op_intern_cache_t *c, const struct op_intern_slot *e)
{
    if ((c->count + 1) * 2 > c->cap)
        cache_grow(c);
    uint32_t i = (uint32_t)e->hash & (c->cap - 1);
    while (c->slots[i].hash)
        i = (i + 1) & (c->cap - 1);
    c->slots[i] = *e;
    c->count++;
}

int32_t op_intern_cache_lookup(op_intern_cache_t *c, op_dim_t dim, const char *name, size_t len)
{
    cache_key_t k = cache_key(dim, name, len);
    if (c->cap) {
        for (uint32_t i = (uint32_t)k.hash & (c->cap - 1); c->slots[i].hash;
             i = (i + 1) & (c->cap - 1)) {
            const struct op_intern_slot *e = &c->slots[i];
            if (e->hash == k.hash && e->w0 == k.w0 && e->w1 == k.w1 && e->meta == k.meta &&
                (len <= 16 || memcmp(e->node->name, name, len) == 0))
                return (int32_t)e->node->id;
        }
    }
    const intern_node_t *n = intern_global(c->dict, dim, name, len, k.hash);
    if (!n)
        return -1;
    struct op_intern_slot e = {.hash = k.hash, .w0 = k.w0, .w1 = k.w1, .meta = k.meta, .node = n};
    cache_insert(c, &e);
    return (int32_t)n->id;
}
