/* catalog.c — the tables behind catalog.h.
 *
 * Brands are one global table (a brand such as 小米 sells in several
 * categories and is ranked once); goods point at brands by index. The
 * median prices and sigmas are rough shapes of a Chinese online shop, enough
 * to give the amount metrics a realistic spread.
 */
#include "sim/catalog.h"

#include <string.h>

#include "sim/fmt.h"

#define S(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }

enum brand {
    B_APPLE,
    B_HUAWEI,
    B_XIAOMI,
    B_SAMSUNG,
    B_OPPO,
    B_VIVO,
    B_LENOVO,
    B_DELL,
    B_LOGITECH,
    B_NIKE,
    B_ADIDAS,
    B_LINING,
    B_ANTA,
    B_UNIQLO,
    B_BOSIDENG,
    B_NEWBALANCE,
    B_SQUIRRELS,
    B_MOUTAI,
    B_MENGNIU,
    B_YILI,
    B_NONGFU,
    B_COCACOLA,
    B_WULIANGYE,
    B_GREE,
    B_HAIER,
    B_MIDEA,
    B_ECOVACS,
    B_DYSON,
    B_ESTEE,
    B_SKII,
    B_DIOR,
    B_LANCOME,
    B_PROYA,
    B_FLORASIS,
    B_PAMPERS,
    B_FEIHE,
    B_GOODBABY,
    B_DERUCCI,
    B_KUKA,
    B_MERCURY,
    B_IKEA,
    B_TNF,
    B_MOBIGARDEN,
    B_YONEX,
    B_DECATHLON,
    B_KEEP,
    B_COUNT
};

static const op_catalog_str_t brands[B_COUNT] = {
    [B_APPLE] = S("Apple"),        [B_HUAWEI] = S("华为"),
    [B_XIAOMI] = S("小米"),        [B_SAMSUNG] = S("三星"),
    [B_OPPO] = S("OPPO"),          [B_VIVO] = S("vivo"),
    [B_LENOVO] = S("联想"),        [B_DELL] = S("Dell"),
    [B_LOGITECH] = S("罗技"),      [B_NIKE] = S("Nike"),
    [B_ADIDAS] = S("Adidas"),      [B_LINING] = S("李宁"),
    [B_ANTA] = S("安踏"),          [B_UNIQLO] = S("优衣库"),
    [B_BOSIDENG] = S("波司登"),    [B_NEWBALANCE] = S("New Balance"),
    [B_SQUIRRELS] = S("三只松鼠"), [B_MOUTAI] = S("茅台"),
    [B_MENGNIU] = S("蒙牛"),       [B_YILI] = S("伊利"),
    [B_NONGFU] = S("农夫山泉"),    [B_COCACOLA] = S("可口可乐"),
    [B_WULIANGYE] = S("五粮液"),   [B_GREE] = S("格力"),
    [B_HAIER] = S("海尔"),         [B_MIDEA] = S("美的"),
    [B_ECOVACS] = S("科沃斯"),     [B_DYSON] = S("Dyson"),
    [B_ESTEE] = S("雅诗兰黛"),     [B_SKII] = S("SK-II"),
    [B_DIOR] = S("Dior"),          [B_LANCOME] = S("兰蔻"),
    [B_PROYA] = S("珀莱雅"),       [B_FLORASIS] = S("花西子"),
    [B_PAMPERS] = S("帮宝适"),     [B_FEIHE] = S("飞鹤"),
    [B_GOODBABY] = S("好孩子"),    [B_DERUCCI] = S("慕思"),
    [B_KUKA] = S("顾家家居"),      [B_MERCURY] = S("水星家纺"),
    [B_IKEA] = S("IKEA"),          [B_TNF] = S("The North Face"),
    [B_MOBIGARDEN] = S("牧高笛"),  [B_YONEX] = S("YONEX"),
    [B_DECATHLON] = S("迪卡侬"),   [B_KEEP] = S("Keep"),
};

static const op_catalog_goods_t g_phone[] = {
    {S("iPhone 15"), B_APPLE},    {S("iPhone 15 Pro"), B_APPLE}, {S("AirPods Pro"), B_APPLE},
    {S("Mate 60 Pro"), B_HUAWEI}, {S("P60"), B_HUAWEI},          {S("MatePad 11"), B_HUAWEI},
    {S("小米14"), B_XIAOMI},      {S("Redmi K70"), B_XIAOMI},    {S("Galaxy S24"), B_SAMSUNG},
    {S("Find X7"), B_OPPO},       {S("X100"), B_VIVO},
};
static const op_catalog_goods_t g_computer[] = {
    {S("MacBook Air"), B_APPLE},          {S("MateBook 14"), B_HUAWEI},
    {S("ThinkPad X1"), B_LENOVO},         {S("拯救者 Y9000P"), B_LENOVO},
    {S("小米笔记本 Pro"), B_XIAOMI},      {S("XPS 13"), B_DELL},
    {S("MX Master 3S 鼠标"), B_LOGITECH}, {S("K380 键盘"), B_LOGITECH},
};
static const op_catalog_goods_t g_clothes[] = {
    {S("Dri-FIT T恤"), B_NIKE},    {S("运动卫衣"), B_NIKE},       {S("三叶草外套"), B_ADIDAS},
    {S("韦德之道卫衣"), B_LINING}, {S("轻薄羽绒服"), B_BOSIDENG}, {S("U系列圆领T恤"), B_UNIQLO},
    {S("摇粒绒外套"), B_UNIQLO},   {S("运动长裤"), B_ANTA},
};
static const op_catalog_goods_t g_shoes[] = {
    {S("Air Jordan 1"), B_NIKE},  {S("Air Force 1"), B_NIKE}, {S("Ultraboost 22"), B_ADIDAS},
    {S("超轻20 跑鞋"), B_LINING}, {S("KT9 篮球鞋"), B_ANTA},  {S("574 复古跑鞋"), B_NEWBALANCE},
};
static const op_catalog_goods_t g_food[] = {
    {S("每日坚果"), B_SQUIRRELS},   {S("飞天茅台 53度"), B_MOUTAI},
    {S("特仑苏纯牛奶"), B_MENGNIU}, {S("安慕希酸奶"), B_YILI},
    {S("东方树叶"), B_NONGFU},      {S("Coca-Cola 24罐"), B_COCACOLA},
    {S("普五 52度"), B_WULIANGYE},
};
static const op_catalog_goods_t g_appliance[] = {
    {S("云佳 空调"), B_GREE},          {S("对开门冰箱"), B_HAIER},
    {S("滚筒洗衣机"), B_MIDEA},        {S("扫地机器人 T20"), B_ECOVACS},
    {S("Supersonic 吹风机"), B_DYSON}, {S("Redmi 智能电视"), B_XIAOMI},
    {S("Mate 智慧屏"), B_HUAWEI},
};
static const op_catalog_goods_t g_beauty[] = {
    {S("小棕瓶精华"), B_ESTEE},   {S("神仙水"), B_SKII},    {S("烈艳蓝金口红"), B_DIOR},
    {S("小黑瓶精华"), B_LANCOME}, {S("双抗精华"), B_PROYA}, {S("空气蜜粉"), B_FLORASIS},
};
static const op_catalog_goods_t g_baby[] = {
    {S("一级帮纸尿裤"), B_PAMPERS},
    {S("星飞帆奶粉"), B_FEIHE},
    {S("婴儿推车"), B_GOODBABY},
    {S("儿童安全座椅"), B_GOODBABY},
};
static const op_catalog_goods_t g_home[] = {
    {S("乳胶床垫"), B_DERUCCI}, {S("真皮沙发"), B_KUKA},   {S("全棉四件套"), B_MERCURY},
    {S("BILLY 书柜"), B_IKEA},  {S("米家台灯"), B_XIAOMI},
};
static const op_catalog_goods_t g_outdoor[] = {
    {S("冲锋衣"), B_TNF},  {S("露营帐篷"), B_MOBIGARDEN}, {S("羽毛球拍"), B_YONEX},
    {S("瑜伽垫"), B_KEEP}, {S("登山杖"), B_DECATHLON},    {S("篮球"), B_LINING},
};

#define CAT(name, w, median, sigma, g)                                                             \
    {                                                                                              \
        S(name), w, median, sigma, g, sizeof(g) / sizeof(g[0])                                     \
    }

static const op_catalog_category_t categories[] = {
    CAT("手机数码", 15, 349900, 0.6, g_phone), CAT("电脑办公", 6, 549900, 0.6, g_computer),
    CAT("服装", 18, 19900, 0.7, g_clothes),    CAT("鞋靴", 10, 59900, 0.5, g_shoes),
    CAT("食品饮料", 16, 5900, 1.0, g_food),    CAT("家用电器", 7, 299900, 0.8, g_appliance),
    CAT("美妆护肤", 10, 39900, 0.6, g_beauty), CAT("母婴", 6, 19900, 0.8, g_baby),
    CAT("家居家装", 6, 89900, 1.0, g_home),    CAT("运动户外", 6, 29900, 0.9, g_outdoor),
};

_Static_assert(sizeof(categories) / sizeof(categories[0]) <= OP_CATALOG_MAX_CATEGORIES,
               "too many categories");
_Static_assert(B_COUNT <= OP_CATALOG_MAX_BRANDS, "too many brands");

size_t op_catalog_ncategories(void)
{
    return sizeof(categories) / sizeof(categories[0]);
}

const op_catalog_category_t *op_catalog_category(size_t i)
{
    return &categories[i];
}

size_t op_catalog_nbrands(void)
{
    return B_COUNT;
}

op_catalog_str_t op_catalog_brand(size_t i)
{
    return brands[i];
}

/* ---- users ----------------------------------------------------------------- */

/* Single-character surnames and distinct given names: a name is
 * surname + given name + optional number, and since every surname is exactly
 * one character and no given name contains a digit, the three parts can be
 * read back from the name, which makes the names distinct by construction. */
static const char surnames[] = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
                               "彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金"
                               "石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵"
                               "万钱严覃武戴莫孔向汤";
#define NSURNAMES ((sizeof(surnames) - 1) / 3)

static const op_catalog_str_t given[] = {
    S("伟"),   S("芳"),   S("娜"),   S("秀英"), S("敏"),   S("静"),   S("丽"),   S("强"),
    S("磊"),   S("军"),   S("洋"),   S("勇"),   S("艳"),   S("杰"),   S("娟"),   S("涛"),
    S("明"),   S("超"),   S("秀兰"), S("霞"),   S("平"),   S("刚"),   S("桂英"), S("浩然"),
    S("子轩"), S("欣怡"), S("梓涵"), S("雨泽"), S("一诺"), S("宇航"), S("思远"), S("晨曦"),
    S("佳怡"), S("俊杰"), S("雪"),   S("婷"),   S("鹏"),   S("华"),   S("建国"), S("建华"),
    S("志强"), S("文"),   S("斌"),   S("宁"),   S("欢"),   S("晶"),   S("玲"),   S("飞"),
    S("鑫"),   S("波"),   S("海燕"), S("红梅"), S("小红"), S("嘉怡"), S("博文"), S("天佑"),
    S("若汐"), S("诗涵"), S("昊天"), S("子豪"), S("梦琪"), S("语嫣"), S("皓轩"), S("可馨"),
};
#define NGIVEN (sizeof(given) / sizeof(given[0]))

/* The same given names (and a few more) by the sex they are usually given
 * to, for names that agree with the gender an order carries. The three
 * lists are disjoint, so names of different classes never collide. */
static const op_catalog_str_t given_male[] = {
    S("伟"),   S("强"),   S("磊"),   S("军"),   S("洋"),   S("勇"),   S("杰"),   S("涛"),
    S("明"),   S("超"),   S("刚"),   S("浩然"), S("子轩"), S("雨泽"), S("宇航"), S("思远"),
    S("俊杰"), S("鹏"),   S("建国"), S("建华"), S("志强"), S("斌"),   S("飞"),   S("鑫"),
    S("波"),   S("博文"), S("天佑"), S("昊天"), S("子豪"), S("皓轩"), S("文"),   S("浩"),
};
static const op_catalog_str_t given_female[] = {
    S("芳"),   S("娜"),   S("秀英"), S("静"),   S("丽"),   S("艳"),   S("娟"),   S("秀兰"),
    S("霞"),   S("桂英"), S("欣怡"), S("佳怡"), S("雪"),   S("婷"),   S("晶"),   S("玲"),
    S("海燕"), S("红梅"), S("小红"), S("嘉怡"), S("若汐"), S("诗涵"), S("梦琪"), S("语嫣"),
    S("可馨"), S("梓涵"), S("敏"),   S("丹"),   S("慧"),   S("颖"),   S("倩"),   S("悦"),
};
static const op_catalog_str_t given_any[] = {
    S("平"), S("一诺"), S("晨曦"), S("华"), S("宁"), S("欢"), S("安"), S("乐"),
};
#define COUNT(a) (sizeof(a) / sizeof(a[0]))

static size_t user_name(uint64_t idx, const op_catalog_str_t *names, size_t nnames, char *buf)
{
    uint64_t combos = NSURNAMES * nnames;
    uint64_t base = idx % combos, suffix = idx / combos;
    size_t s = base % NSURNAMES;
    /* Spread the given names over consecutive indices, so that the most
     * frequent users (the lowest ranks) do not all share one given name. */
    size_t g = (base / NSURNAMES + s * 13) % nnames;
    char *p = buf;
    memcpy(p, surnames + 3 * s, 3);
    p += 3;
    memcpy(p, names[g].s, names[g].len);
    p += names[g].len;
    if (suffix)
        p = op_fmt_u64(p, suffix);
    return (size_t)(p - buf);
}

size_t op_catalog_user_name(uint64_t idx, char *buf)
{
    return user_name(idx, given, NGIVEN, buf);
}

size_t op_catalog_user_name_as(uint64_t idx, op_catalog_sex_t sex, char *buf)
{
    switch (sex) {
    case OP_CATALOG_MALE:
        return user_name(idx, given_male, COUNT(given_male), buf);
    case OP_CATALOG_FEMALE:
        return user_name(idx, given_female, COUNT(given_female), buf);
    default:
        return user_name(idx, given_any, COUNT(given_any), buf);
    }
}

op_catalog_sex_t op_catalog_sex_of(const char *gender)
{
    static const char *const male[] = {"男", "M", "m", "male", "Male", "MALE", "男性"};
    static const char *const female[] = {"女", "F", "f", "female", "Female", "FEMALE", "女性"};
    for (size_t i = 0; i < COUNT(male); i++) {
        if (strcmp(gender, male[i]) == 0)
            return OP_CATALOG_MALE;
        if (strcmp(gender, female[i]) == 0)
            return OP_CATALOG_FEMALE;
    }
    return OP_CATALOG_ANY;
}

/* ---- addresses, phones, statuses -------------------------------------------- */

static const op_catalog_str_t cities[] = {
    S("北京市朝阳区"),       S("北京市海淀区"),       S("上海市浦东新区"),
    S("上海市徐汇区"),       S("广东省广州市天河区"), S("广东省深圳市南山区"),
    S("浙江省杭州市西湖区"), S("江苏省南京市鼓楼区"), S("四川省成都市武侯区"),
    S("湖北省武汉市洪山区"), S("陕西省西安市雁塔区"), S("重庆市渝中区"),
    S("天津市和平区"),       S("山东省青岛市市南区"), S("福建省厦门市思明区"),
    S("湖南省长沙市岳麓区"),
};
static const op_catalog_str_t streets[] = {
    S("建国路"),   S("人民路"),   S("中山路"),   S("解放路"), S("长安街"),   S("南京路"),
    S("科技园路"), S("文三路"),   S("珠江新城"), S("春熙路"), S("光谷大道"), S("高新路"),
    S("滨江大道"), S("五一大道"), S("湖滨路"),   S("学院路"),
};

size_t op_catalog_address(uint64_t hash, char *buf, size_t *split_at)
{
    const op_catalog_str_t *c = &cities[hash % (sizeof(cities) / sizeof(cities[0]))];
    hash /= sizeof(cities) / sizeof(cities[0]);
    const op_catalog_str_t *st = &streets[hash % (sizeof(streets) / sizeof(streets[0]))];
    hash /= sizeof(streets) / sizeof(streets[0]);
    char *p = buf;
    memcpy(p, c->s, c->len);
    p += c->len;
    *split_at = c->len;
    memcpy(p, st->s, st->len);
    p += st->len;
    p = op_fmt_u64(p, 1 + hash % 999);
    memcpy(p, "号", 3);
    p += 3;
    return (size_t)(p - buf);
}

uint64_t op_catalog_phone(uint64_t hash)
{
    static const uint16_t prefixes[] = {130, 131, 132, 133, 135, 136, 137, 138, 139, 150, 151,
                                        152, 155, 156, 157, 158, 159, 166, 176, 177, 178, 180,
                                        181, 182, 183, 185, 186, 187, 188, 189, 199};
    uint64_t pre = prefixes[hash % (sizeof(prefixes) / sizeof(prefixes[0]))];
    return pre * 100000000ULL + (hash >> 16) % 100000000ULL;
}

op_catalog_str_t op_catalog_status(unsigned u)
{
    static const op_catalog_str_t paid = S("paid"), shipped = S("shipped"),
                                  delivered = S("delivered"), completed = S("completed"),
                                  refunded = S("refunded");
    if (u < 50)
        return paid;
    if (u < 75)
        return shipped;
    if (u < 90)
        return delivered;
    if (u < 97)
        return completed;
    return refunded;
}
