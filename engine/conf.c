/* conf.c — options from a config file, the environment and the command line.
 *
 * The three sources are applied in order of increasing priority, each one
 * overwriting what the previous set, so "the command line wins" needs no
 * special casing. The config file is a list of "name = value" lines (the
 * same names as the long options, '#' starts a comment), which keeps one
 * vocabulary for the three sources.
 */
#include "engine/conf.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int op_conf_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static long spec_index(const op_conf_spec_t *spec, size_t nspec, const char *name, size_t namelen)
{
    for (size_t i = 0; i < nspec; i++)
        if (strlen(spec[i].name) == namelen && memcmp(spec[i].name, name, namelen) == 0)
            return (long)i;
    return -1;
}

static int set_value(op_conf_t *conf, size_t i, const char *value, const char *origin)
{
    char *v = strdup(value);
    char *o = strdup(origin);
    if (!v || !o) {
        free(v);
        free(o);
        return -ENOMEM;
    }
    free(conf->values[i]);
    free(conf->origins[i]);
    conf->values[i] = v;
    conf->origins[i] = o;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    return -EINVAL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int load_file(op_conf_t *conf, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return op_conf_error(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
    char line[4096], origin[512];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        size_t keylen = strcspn(s, " \t=");
        char *rest = s + keylen;
        while (*rest == ' ' || *rest == '\t')
            rest++;
        /* "name value" or a bare "name" is a typo more often than not: no
         * guessing, the line is refused. */
        if (*rest != '=' || keylen == 0) {
            rc = op_conf_error(err, errlen, "%s:%d: expected 'name = value', got '%s'", path,
                               lineno, s);
            goto out;
        }
        char *value = trim(rest + 1);
        long i = spec_index(conf->spec, conf->nspec, s, keylen);
        if (i < 0 || strcmp(conf->spec[i].name, "config") == 0) {
            rc = op_conf_error(err, errlen, "%s:%d: unknown option '%.*s'", path, lineno,
                               (int)keylen, s);
            goto out;
        }
        snprintf(origin, sizeof(origin), "%s:%d", path, lineno);
        if (conf->spec[i].kind == OP_CONF_FLAG) {
            int b;
            if (parse_bool(value, &b) < 0) {
                rc = op_conf_error(err, errlen, "%s: '%s' is not true or false", origin, value);
                goto out;
            }
            value = b ? "1" : "0";
        }
        if ((rc = set_value(conf, (size_t)i, value, origin)) < 0)
            goto out;
    }
    if (ferror(f))
        rc = op_conf_error(err, errlen, "error reading config file %s", path);
out:
    fclose(f);
    return rc;
}

static void env_name(char *buf, size_t len, const char *prefix, const char *name)
{
    size_t n = (size_t)snprintf(buf, len, "%s%s", prefix, name);
    for (size_t i = strlen(prefix); i < n && i < len; i++)
        buf[i] = buf[i] == '-' ? '_' : (char)toupper((unsigned char)buf[i]);
}

static int load_env(op_conf_t *conf, const char *prefix, char *err, size_t errlen)
{
    char name[256];
    for (size_t i = 0; i < conf->nspec; i++) {
        env_name(name, sizeof(name), prefix, conf->spec[i].name);
        const char *v = getenv(name);
        if (!v || strcmp(conf->spec[i].name, "config") == 0)
            continue;
        if (conf->spec[i].kind == OP_CONF_FLAG) {
            int b;
            if (parse_bool(v, &b) < 0)
                return op_conf_error(err, errlen, "%s: '%s' is not true or false", name, v);
            v = b ? "1" : "0";
        }
        int rc = set_value(conf, i, v, name);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Walks argv twice: first only to find --config (the file is the lowest
 * layer and must be applied before anything else), then to apply every
 * option. Both passes share this function so that they agree on syntax. */
static int scan_argv(op_conf_t *conf, int argc, char **argv, int apply, const char **config,
                     char *err, size_t errlen)
{
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return OP_CONF_HELP;
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
            return op_conf_error(err, errlen, "unexpected argument '%s' (see --help)", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t namelen = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : NULL;
        long i = spec_index(conf->spec, conf->nspec, name, namelen);
        if (i < 0 && namelen == 6 && strncmp(name, "config", 6) == 0) {
            /* Accepted by every binary, whether or not its table lists it. */
            if (!value && a + 1 >= argc)
                return op_conf_error(err, errlen, "--config needs a value (FILE)");
            *config = value ? value : argv[++a];
            continue;
        }
        if (i < 0)
            return op_conf_error(err, errlen, "unknown option '--%.*s' (see --help)", (int)namelen,
                                 name);
        if (conf->spec[i].kind == OP_CONF_FLAG) {
            if (value) {
                int b;
                if (parse_bool(value, &b) < 0)
                    return op_conf_error(err, errlen, "--%s: '%s' is not true or false",
                                         conf->spec[i].name, value);
                value = b ? "1" : "0";
            } else {
                value = "1";
            }
        } else if (!value) {
            if (a + 1 >= argc)
                return op_conf_error(err, errlen, "--%s needs a value (%s)", conf->spec[i].name,
                                     conf->spec[i].metavar ? conf->spec[i].metavar : "VALUE");
            value = argv[++a];
        }
        if (strcmp(conf->spec[i].name, "config") == 0) {
            *config = value;
            continue;
        }
        if (apply) {
            char origin[300];
            snprintf(origin, sizeof(origin), "--%s", conf->spec[i].name);
            int rc = set_value(conf, (size_t)i, value, origin);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int op_conf_load(op_conf_t *conf, const op_conf_spec_t *spec, size_t nspec, const char *env_prefix,
                 int argc, char **argv, char *err, size_t errlen)
{
    memset(conf, 0, sizeof(*conf));
    conf->spec = spec;
    conf->nspec = nspec;
    conf->prog = argc > 0 ? argv[0] : "orderpulse";
    conf->values = calloc(nspec, sizeof(char *));
    conf->origins = calloc(nspec, sizeof(char *));
    if (!conf->values || !conf->origins) {
        op_conf_dispose(conf);
        return -ENOMEM;
    }

    const char *config = NULL;
    int rc = scan_argv(conf, argc, argv, 0, &config, err, errlen);
    if (rc != 0)
        goto fail;
    if (!config) {
        char name[256];
        env_name(name, sizeof(name), env_prefix, "config");
        config = getenv(name);
    }
    if (config && *config && (rc = load_file(conf, config, err, errlen)) < 0)
        goto fail;
    if ((rc = load_env(conf, env_prefix, err, errlen)) < 0)
        goto fail;
    if ((rc = scan_argv(conf, argc, argv, 1, &config, err, errlen)) != 0)
        goto fail;
    return 0;
fail:
    /* Nothing is kept on error or --help: the caller disposes only after 0. */
    op_conf_dispose(conf);
    return rc;
}

void op_conf_dispose(op_conf_t *conf)
{
    for (size_t i = 0; conf->values && i < conf->nspec; i++) {
        free(conf->values[i]);
        free(conf->origins[i]);
    }
    free(conf->values);
    free(conf->origins);
    conf->values = conf->origins = NULL;
}

static size_t must_index(const op_conf_t *conf, const char *name)
{
    long i = spec_index(conf->spec, conf->nspec, name, strlen(name));
    if (i < 0) {
        /* A programming error, not a user error: the name is a literal. */
        fprintf(stderr, "BUG: option '%s' is not in the spec\n", name);
        abort();
    }
    return (size_t)i;
}

const char *op_conf_get(const op_conf_t *conf, const char *name)
{
    size_t i = must_index(conf, name);
    return conf->values[i] ? conf->values[i] : conf->spec[i].defval;
}

int op_conf_flag(const op_conf_t *conf, const char *name)
{
    const char *v = op_conf_get(conf, name);
    int b = 0;
    return v && parse_bool(v, &b) == 0 && b;
}

const char *op_conf_origin(const op_conf_t *conf, const char *name)
{
    size_t i = must_index(conf, name);
    return conf->origins[i] ? conf->origins[i] : "by default";
}

void op_conf_locate_error(const op_conf_t *conf, char *err, size_t errlen)
{
    if (!conf->values || strncmp(err, "--", 2) != 0)
        return;
    size_t n = strspn(err + 2, "abcdefghijklmnopqrstuvwxyz0123456789-");
    long i = spec_index(conf->spec, conf->nspec, err + 2, n);
    const char *origin = i >= 0 ? conf->origins[i] : NULL;
    if (!origin || strncmp(origin, "--", 2) == 0)
        return; /* from the command line (or the default): the flag names it */
    char located[1024];
    if (strchr(origin, ':')) /* file:line */
        snprintf(located, sizeof(located), "%s: %s", origin, err + 2);
    else /* an environment variable: its name instead of the flag's */
        snprintf(located, sizeof(located), "%s%s", origin, err + 2 + n);
    snprintf(err, errlen, "%s", located);
}

void op_conf_usage(const op_conf_spec_t *spec, size_t nspec, const char *env_prefix,
                   const char *usage, const char *description, FILE *f)
{
    char env[256], left[128];
    fprintf(f, "usage: %s\n\n%s\n\noptions:\n", usage, description);
    for (size_t i = 0; i < nspec; i++) {
        snprintf(left, sizeof(left), "--%s%s%s", spec[i].name, spec[i].metavar ? " " : "",
                 spec[i].metavar ? spec[i].metavar : "");
        fprintf(f, "  %-28s %s", left, spec[i].help);
        if (spec[i].defval)
            fprintf(f, " [default: %s]", spec[i].defval);
        fputc('\n', f);
    }
    int has_config = spec_index(spec, nspec, "config", 6) >= 0;
    if (!has_config)
        fprintf(f, "  %-28s %s\n", "--config FILE", "read options from FILE (name = value lines)");
    fprintf(f, "  %-28s %s\n\n", "--help", "print this help and exit");
    char example[256];
    env_name(env, sizeof(env), env_prefix, "NAME");
    env_name(example, sizeof(example), env_prefix, nspec ? spec[0].name : "name");
    fprintf(f,
            "Every option can also be set in the environment as %s (dashes become\n"
            "underscores, e.g. %s) or in the file given by --config, one\n"
            "\"name = value\" per line. The command line wins over the environment, which\n"
            "wins over the file.\n",
            env, example);
}

/* strtoll/strtod accept leading spaces and "+"; options should not, so that
 * "--rate ' 5'" in a quoting accident is reported instead of guessed. */
static int plain_number_start(const char *s)
{
    return s && (isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1])) ||
                 (s[0] == '.' && isdigit((unsigned char)s[1])));
}

int op_conf_parse_i64(const char *what, const char *s, int64_t min, int64_t max, int64_t *out,
                      char *err, size_t errlen)
{
    char *end;
    if (!plain_number_start(s))
        return op_conf_error(err, errlen, "%s: '%s' is not an integer", what, s ? s : "");
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno)
        return op_conf_error(err, errlen, "%s: '%s' is not an integer", what, s);
    if (v < min || v > max)
        return op_conf_error(err, errlen, "%s: %lld is out of range [%lld, %lld]", what, v,
                             (long long)min, (long long)max);
    *out = v;
    return 0;
}

int op_conf_parse_double(const char *what, const char *s, double min, double max, double *out,
                         char *err, size_t errlen)
{
    char *end;
    if (!plain_number_start(s))
        return op_conf_error(err, errlen, "%s: '%s' is not a number", what, s ? s : "");
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno || !isfinite(v))
        return op_conf_error(err, errlen, "%s: '%s' is not a number", what, s);
    if (v < min || v > max)
        return op_conf_error(err, errlen, "%s: %g is out of range [%g, %g]", what, v, min, max);
    *out = v;
    return 0;
}

int op_conf_parse_duration_ms(const char *what, const char *s, int64_t min_ms, int64_t max_ms,
                              int64_t *out, char *err, size_t errlen)
{
    static const struct {
        const char *suffix;
        double ms;
    } units[] = {{"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}, {"d", 86400e3}, {"", 1e3}};
    char *end;
    if (!plain_number_start(s) || s[0] == '-')
        return op_conf_error(err, errlen, "%s: '%s' is not a duration (e.g. 500ms, 5s, 2m)", what,
                             s ? s : "");
    errno = 0;
    double v = strtod(s, &end);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suffix) != 0)
            continue;
        double ms = v * units[i].ms;
        if (errno || !isfinite(ms) || ms < (double)min_ms || ms > (double)max_ms)
            return op_conf_error(err, errlen, "%s: '%s' is out of range [%lldms, %lldms]", what, s,
                                 (long long)min_ms, (long long)max_ms);
        *out = (int64_t)llround(ms);
        return 0;
    }
    return op_conf_error(err, errlen, "%s: '%s' is not a duration (e.g. 500ms, 5s, 2m)", what, s);
}

int op_conf_parse_size(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                       char *err, size_t errlen)
{
    char *end;
    if (!s || !isdigit((unsigned char)s[0]))
        return op_conf_error(err, errlen, "%s: '%s' is not a size (e.g. 512, 64k, 16M)", what,
                             s ? s : "");
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || errno || (shift && v > (UINT64_MAX >> shift)))
        return op_conf_error(err, errlen, "%s: '%s' is not a size (e.g. 512, 64k, 16M)", what, s);
    v <<= shift;
    if (v < min || v > max)
        return op_conf_error(err, errlen, "%s: %llu is out of range [%llu, %llu]", what, v,
                             (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

int op_conf_parse_choice(const char *what, const char *s, const char *const *choices, int *out,
                         char *err, size_t errlen)
{
    char list[256] = "";
    for (int i = 0; choices[i]; i++) {
        if (s && strcmp(s, choices[i]) == 0)
            return *out = i, 0;
        strncat(list, i ? "|" : "", sizeof(list) - strlen(list) - 1);
        strncat(list, choices[i], sizeof(list) - strlen(list) - 1);
    }
    return op_conf_error(err, errlen, "%s: '%s' is not one of %s", what, s ? s : "", list);
}

int op_conf_check_output_file(const char *what, const char *path, char *err, size_t errlen)
{
    if (!path || !*path)
        return op_conf_error(err, errlen, "%s: empty path", what);
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash && !slash[1])
        return op_conf_error(err, errlen, "%s: '%s' names a directory, not a file", what, path);
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else if ((size_t)(slash - path) >= sizeof(dir))
        return op_conf_error(err, errlen, "%s: path too long", what);
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    struct stat st;
    if (stat(dir, &st) != 0)
        return op_conf_error(err, errlen, "%s: directory %s: %s", what, dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return op_conf_error(err, errlen, "%s: %s is not a directory", what, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return op_conf_error(err, errlen, "%s: directory %s is not writable: %s", what, dir,
                             strerror(errno));
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return op_conf_error(err, errlen, "%s: '%s' is a directory, not a file", what, path);
    return 0;
}
