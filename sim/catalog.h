/* catalog.h — the simulated shop: categories, goods, brands, users, addresses.
 *
 * Everything an order names comes from here, as static tables (categories
 * with Chinese names, goods and brands in Chinese and English) or as a pure
 * function of an index (user names, addresses, phone numbers), so the
 * generator needs no per-user memory and the truth writer can name a user
 * from its index alone. Names never contain '"', '\\' or control bytes, so
 * they go into JSON without escaping.
 *
 * Thread safety: read-only data and pure functions.
 */
#ifndef OP_CATALOG_H
#define OP_CATALOG_H

#include <stddef.h>
#include <stdint.h>

/* A string with its length, so the hot loop never calls strlen. */
typedef struct op_catalog_str {
    const char *s;
    uint32_t len;
} op_catalog_str_t;

typedef struct op_catalog_goods {
    op_catalog_str_t name;
    uint16_t brand; /* index into the brand table */
} op_catalog_goods_t;

typedef struct op_catalog_category {
    op_catalog_str_t name;
    uint32_t weight;      /* relative share of orders */
    int64_t median_cents; /* price is log-normal around this median... */
    double sigma;         /* ...with this sigma of log(price) */
    const op_catalog_goods_t *goods;
    uint32_t ngoods;
} op_catalog_category_t;

#define OP_CATALOG_MAX_CATEGORIES 16
#define OP_CATALOG_MAX_BRANDS     128
/* Longest user name: one surname, a two-character given name (3 bytes per
 * character) and a decimal suffix. */
#define OP_CATALOG_USER_MAX 32
/* Longest address the generator can produce. */
#define OP_CATALOG_ADDRESS_MAX 128

size_t op_catalog_ncategories(void);
const op_catalog_category_t *op_catalog_category(size_t i);
size_t op_catalog_nbrands(void);
op_catalog_str_t op_catalog_brand(size_t i);

/* The name of user idx (0-based): distinct for distinct idx. Writes at most
 * OP_CATALOG_USER_MAX bytes, no NUL; returns the length. The given name
 * says nothing of the user's gender (the earlier generator's names). */
size_t op_catalog_user_name(uint64_t idx, char *buf);

/* Names whose given name agrees with a gender: 杨芳 is a woman's name, 杨伟
 * a man's. ANY: given names used for both (any other gender label). */
typedef enum op_catalog_sex {
    OP_CATALOG_ANY = 0,
    OP_CATALOG_MALE,
    OP_CATALOG_FEMALE,
} op_catalog_sex_t;

/* As op_catalog_user_name, with a given name usual for sex. Distinct for
 * distinct (idx, sex), and never equal to a name of another sex. */
size_t op_catalog_user_name_as(uint64_t idx, op_catalog_sex_t sex, char *buf);

/* The sex a gender label stands for: 男/M/male..., 女/F/female..., else ANY. */
op_catalog_sex_t op_catalog_sex_of(const char *gender);

/* The fixed per-user attributes derived from hash (a mix of seed and user
 * index): an address (no NUL, returns length; split_at receives the offset
 * between the city part and the street, where a corrupted byte can go) and
 * an 11-digit mobile number. */
size_t op_catalog_address(uint64_t hash, char *buf, size_t *split_at);
uint64_t op_catalog_phone(uint64_t hash);

/* An order status drawn from u in [0, 100). */
op_catalog_str_t op_catalog_status(unsigned u);

#endif
