/*
 * test_log.c: log line prefixes (src/core/log.c): the ISO-8601 timestamp
 * that log_format "iso8601" (and "auto" off a terminal) puts on every line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

static void stamp_is(int64_t ms, const char *want)
{
    char buf[32];
    assert_int_equal(sv_log_timestamp(buf, sizeof buf, ms), 24);
    assert_string_equal(buf, want);
}

static void test_timestamp_known_instants(void **state)
{
    stamp_is(0, "1970-01-01T00:00:00.000Z");
    stamp_is(951782400123, "2000-02-29T00:00:00.123Z");    /* leap day of a /400 year */
    stamp_is(4107542399999, "2100-02-28T23:59:59.999Z");   /* 2100 is no leap year */
    stamp_is(4107542400000, "2100-03-01T00:00:00.000Z");
    stamp_is(1798761599999, "2026-12-31T23:59:59.999Z");
    stamp_is(-1, "1969-12-31T23:59:59.999Z");
}

static void test_timestamp_matches_gmtime(void **state)
{
    /* every day for 400 years, at a varying second of the day */
    for (int64_t day = -3653; day < 146097 - 3653; day += 1) {
        time_t t = (time_t)(day * 86400 + (day * 7919) % 86400);
        struct tm tm;
        gmtime_r(&t, &tm);
        char want[32], got[32];
        strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%S.042Z", &tm);
        assert_int_equal(sv_log_timestamp(got, sizeof got, (int64_t)t * 1000 + 42), 24);
        if (strcmp(got, want) != 0)
            fail_msg("day %lld: got %s want %s", (long long)day, got, want);
    }
}

static void test_timestamp_small_buffer(void **state)
{
    char buf[24];
    assert_int_equal(sv_log_timestamp(buf, sizeof buf, 0), 0);
}

static void test_format_names(void **state)
{
    assert_string_equal(sv_log_format_names[SV_LOG_FORMAT_AUTO], "auto");
    assert_string_equal(sv_log_format_names[SV_LOG_FORMAT_PLAIN], "plain");
    assert_string_equal(sv_log_format_names[SV_LOG_FORMAT_ISO8601], "iso8601");
}

static void log_to_pipe(char *out, size_t cap, const char *msg)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    sv_log_error("%s", "x"); /* resolve the format before stderr moves */
    int saved = dup(STDERR_FILENO);
    dup2(p[1], STDERR_FILENO);
    sv_log_error("%s", msg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(p[1]);
    ssize_t n = read(p[0], out, cap - 1);
    close(p[0]);
    assert_true(n > 0);
    out[n] = '\0';
}

static void test_lines_carry_the_prefix(void **state)
{
    char line[256];
    regex_t re;
    assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z \\[[0-9]+\\] hello\n$",
                             REG_EXTENDED), 0);
    sv_log_set_pid_prefix(true);
    sv_log_set_format(SV_LOG_FORMAT_ISO8601);
    assert_int_equal(sv_log_get_format(), SV_LOG_FORMAT_ISO8601);
    log_to_pipe(line, sizeof line, "hello");
    assert_int_equal(regexec(&re, line, 0, NULL, 0), 0);

    sv_log_set_format(SV_LOG_FORMAT_PLAIN);
    log_to_pipe(line, sizeof line, "hello");
    char want[64];
    snprintf(want, sizeof want, "[%d] hello\n", (int)getpid());
    assert_string_equal(line, want);
    sv_log_set_pid_prefix(false);
    regfree(&re);
}

static void test_auto_resolves_from_the_terminal(void **state)
{
    sv_log_set_format(SV_LOG_FORMAT_AUTO);
    sv_log_format_t want = isatty(STDOUT_FILENO) ? SV_LOG_FORMAT_PLAIN : SV_LOG_FORMAT_ISO8601;
    assert_int_equal(sv_log_get_format(), want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timestamp_known_instants),
        cmocka_unit_test(test_timestamp_matches_gmtime),
        cmocka_unit_test(test_timestamp_small_buffer),
        cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_lines_carry_the_prefix),
        cmocka_unit_test(test_auto_resolves_from_the_terminal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
