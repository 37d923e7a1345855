/* test_conf.c — options from config files, the environment and the command
 * line (engine/conf): strict config-file syntax, error messages that say
 * where a bad value came from (file:line, variable, flag), and the start-up
 * check of files the program will write. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/conf.h"

static const op_conf_spec_t spec[] = {
    {"tick", OP_CONF_VALUE, "DURATION", "1s", "tick"},
    {"name", OP_CONF_VALUE, "NAME", NULL, "a name"},
    {"once", OP_CONF_FLAG, NULL, NULL, "a flag"},
};
#define NSPEC (sizeof(spec) / sizeof(spec[0]))

static char conf_path[64];

static void write_conf(const char *text)
{
    snprintf(conf_path, sizeof(conf_path), "/tmp/op-test-conf-%d.conf", (int)getpid());
    FILE *f = fopen(conf_path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* Loads with --config conf_path plus extra arguments. */
static int load(op_conf_t *c, char *err, size_t errlen, const char *extra)
{
    char *argv[] = {(char *)"prog", (char *)"--config", conf_path, (char *)extra, NULL};
    err[0] = '\0';
    return op_conf_load(c, spec, NSPEC, "OPTEST_", extra ? 4 : 3, argv, err, errlen);
}

/* What main() prints for a bad --tick: the typed parser's message, located. */
static void tick_error(op_conf_t *c, char *err, size_t errlen)
{
    int64_t ms;
    cr_assert_lt(
        op_conf_parse_duration_ms("--tick", op_conf_get(c, "tick"), 10, 3600000, &ms, err, errlen),
        0);
    op_conf_locate_error(c, err, errlen);
}

Test(conf, a_line_without_equals_is_an_error_with_file_and_line)
{
    static const char *const bad[] = {"tick 5s\n", "# ok\n\nonce\n", "tick\n", "= 5s\n"};
    static const int line[] = {1, 3, 1, 1};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_conf(bad[i]);
        op_conf_t c;
        char err[OP_CONF_ERRLEN], want[128];
        cr_expect_lt(load(&c, err, sizeof(err), NULL), 0, "'%s' accepted", bad[i]);
        snprintf(want, sizeof(want), "%s:%d: expected 'name = value'", conf_path, line[i]);
        cr_expect(strstr(err, want) == err, "'%s': %s", bad[i], err);
    }
    write_conf("tick = 5s  # a comment\nonce = yes\nname=x = y\n");
    op_conf_t c;
    char err[OP_CONF_ERRLEN];
    cr_assert_eq(load(&c, err, sizeof(err), NULL), 0, "%s", err);
    cr_expect_str_eq(op_conf_get(&c, "tick"), "5s");
    cr_expect_str_eq(op_conf_get(&c, "name"), "x = y");
    cr_expect(op_conf_flag(&c, "once"));
    op_conf_dispose(&c);
    unlink(conf_path);
}

Test(conf, a_bad_value_says_where_it_came_from)
{
    char err[OP_CONF_ERRLEN], want[128];
    op_conf_t c;

    write_conf("name = a\n\ntick = soon\n");
    cr_assert_eq(load(&c, err, sizeof(err), NULL), 0, "%s", err);
    tick_error(&c, err, sizeof(err));
    snprintf(want, sizeof(want), "%s:3: tick: 'soon' is not a duration", conf_path);
    cr_expect(strstr(err, want) == err, "%s", err);
    op_conf_dispose(&c);

    setenv("OPTEST_TICK", "later", 1);
    cr_assert_eq(load(&c, err, sizeof(err), NULL), 0, "%s", err);
    tick_error(&c, err, sizeof(err));
    cr_expect(strstr(err, "OPTEST_TICK: 'later' is not a duration") == err, "%s", err);
    op_conf_dispose(&c);

    cr_assert_eq(load(&c, err, sizeof(err), "--tick=never"), 0, "%s", err);
    tick_error(&c, err, sizeof(err));
    cr_expect(strstr(err, "--tick: 'never' is not a duration") == err, "%s", err);
    op_conf_dispose(&c);
    unsetenv("OPTEST_TICK");

    /* Messages that do not start with an option are left alone. */
    cr_assert_eq(load(&c, err, sizeof(err), NULL), 0, "%s", err);
    snprintf(err, sizeof(err), "out of memory");
    op_conf_locate_error(&c, err, sizeof(err));
    cr_expect_str_eq(err, "out of memory");
    op_conf_dispose(&c);
    unlink(conf_path);
}

Test(conf, output_files_are_checked_at_start)
{
    char err[OP_CONF_ERRLEN];
    char dir[64], file[96];
    snprintf(dir, sizeof(dir), "/tmp/op-test-out-%d", (int)getpid());
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(file, sizeof(file), "%s/s.json", dir);
    cr_expect_eq(op_conf_check_output_file("--snapshot-file", file, err, sizeof(err)), 0, "%s",
                 err);
    cr_expect_eq(op_conf_check_output_file("--snapshot-file", "s.json", err, sizeof(err)), 0);
    cr_expect_lt(
        op_conf_check_output_file("--snapshot-file", "/nonexistent/dir/s.json", err, sizeof(err)),
        0);
    cr_expect(strstr(err, "--snapshot-file: directory /nonexistent/dir: No such file") == err, "%s",
              err);
    cr_expect_lt(op_conf_check_output_file("--snapshot-file", dir, err, sizeof(err)), 0);
    cr_expect(strstr(err, "is a directory") != NULL, "%s", err);
    cr_expect_lt(op_conf_check_output_file("--snapshot-file", "/tmp/", err, sizeof(err)), 0);
    snprintf(file, sizeof(file), "%s/plain", dir);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fclose(f);
    snprintf(file, sizeof(file), "%s/plain/s.json", dir);
    cr_expect_lt(op_conf_check_output_file("--snapshot-file", file, err, sizeof(err)), 0);
    cr_expect(strstr(err, "is not a directory") != NULL, "%s", err);
    snprintf(file, sizeof(file), "%s/plain", dir);
    unlink(file);
    rmdir(dir);
}
