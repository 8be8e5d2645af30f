/*
 * config_test.h: what the config unit tests share (test_config.c,
 * test_config_ruby.c, test_config_load.c): parsing text on top of the
 * defaults, expecting an error or a warning, loading with argv, and a
 * scratch directory with a clean environment for load tests. Functions are
 * static inline: each test file uses some of them.
 */
#ifndef SV_CONFIG_TEST_H
#define SV_CONFIG_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "config/internal.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "tls/tls.h"

static inline void clear_env(void)
{
    static const char *const env_names[] = {
        "WEB_CONCURRENCY", "MIN_THREADS", "MAX_THREADS", "PUMA_MIN_THREADS", "PUMA_MAX_THREADS", "PORT",
        "APP_ENV", "RACK_ENV", "RAILS_ENV", "SV_TEST_A", "SV_TEST_B", "RAILS_MAX_THREADS", "RAILS_MIN_THREADS",
        "PIDFILE", "SOLID_QUEUE_IN_PUMA", "WEB_PORT",
    };
    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
        unsetenv(env_names[i]);
}

/* Parses text on top of the defaults; the caller frees c. */
static inline int parse(sv_config_t *c, const char *text, sv_diag_t *d)
{
    sv_config_defaults(c);
    d->msg[0] = '\0';
    return sv_config_parse_text(c, "puma.rb", text, d);
}

static inline void expect_ok(const char *text)
{
    sv_config_t c;
    sv_diag_t d;
    int rc = parse(&c, text, &d);
    if (rc)
        print_error("unexpected error for <%s>: %s\n", text, d.msg);
    assert_int_equal(rc, 0);
    sv_config_free(&c);
}

/* Parsing text must fail with exactly msg. */
static inline void expect_error(const char *text, const char *msg)
{
    sv_config_t c;
    sv_diag_t d;
    int rc = parse(&c, text, &d);
    assert_int_equal(rc, SV_ECONFIG);
    assert_string_equal(d.msg, msg);
    sv_config_free(&c);
}

/* Parsing must fail with a message containing part. */
static inline void expect_error_has(const char *text, const char *part)
{
    sv_config_t c;
    sv_diag_t d;
    int rc = parse(&c, text, &d);
    assert_int_equal(rc, SV_ECONFIG);
    if (!strstr(d.msg, part))
        print_error("message <%s> lacks <%s>\n", d.msg, part);
    assert_non_null(strstr(d.msg, part));
    sv_config_free(&c);
}

/* Parsing text succeeds, with a warning containing part (the file still applies). */
static inline void expect_warning(const char *text, const char *part)
{
    sv_config_t c;
    sv_diag_t d;
    int rc = parse(&c, text, &d);
    if (rc)
        print_error("unexpected error for <%s>: %s\n", text, d.msg);
    assert_int_equal(rc, 0);
    if (!c.warnings || !strstr(c.warnings, part))
        print_error("warnings <%s> lack <%s>\n", c.warnings ? c.warnings : "", part);
    assert_non_null(c.warnings);
    assert_non_null(strstr(c.warnings, part));
    sv_config_free(&c);
}

/* argv from a NULL-terminated list, argv[0] = "serval". */
static inline int load(sv_config_t *c, sv_diag_t *d, sv_config_action_t *action, ...)
{
    char *argv[64] = {"serval"};
    int argc = 1;
    va_list ap;
    va_start(ap, action);
    for (char *a; (a = va_arg(ap, char *)) && argc < 63;)
        argv[argc++] = a;
    va_end(ap);
    return sv_config_load(c, argc, argv, action, d);
}

static inline void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static inline char *json_of(const sv_config_t *c)
{
    sv_buf_t b = SV_BUF_INIT;
    sv_json_t w;
    sv_json_init(&w, &b);
    sv_config_to_json(c, &w);
    assert_int_equal(w.err, 0);
    return b.data;
}

static char saved_cwd[PATH_MAX];
static char tmpdir[64];

/* Load tests run in an empty directory with a clean environment. */
static inline int enter_tmpdir(void **state)
{
    clear_env();
    if (!getcwd(saved_cwd, sizeof(saved_cwd)))
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sv_config_test_XXXXXX");
    if (!mkdtemp(tmpdir) || chdir(tmpdir) < 0)
        return -1;
    return 0;
}

static inline int leave_tmpdir(void **state)
{
    unlink("config/puma/production.rb");
    unlink("config/puma/development.rb");
    rmdir("config/puma");
    unlink("config/puma.rb");
    rmdir("config");
    unlink("other.rb");
    unlink("nul.rb");
    if (chdir(saved_cwd) < 0)
        return -1;
    rmdir(tmpdir);
    clear_env();
    return 0;
}

#endif
