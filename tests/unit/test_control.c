/*
 * test_control.c: the control request judge (src/control/request.c) and the
 * safe file writer (src/os/file.c) the state file and pidfile go through.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control/request.h"
#include "os/file.h"

static const sv_control_policy_t with_token = {"tok", false, false, 9293};
static const sv_control_policy_t no_token = {NULL, false, true, 9293};
static const sv_control_policy_t data_only = {NULL, true, false, 9294};

static int judge(const sv_control_policy_t *p, const char *in, sv_control_req_t *r)
{
    int done = sv_control_request(p, in, strlen(in), r);
    return done ? r->status : -1;
}

static void test_valid_requests(void **state)
{
    (void)state;
    sv_control_req_t r;
    assert_int_equal(judge(&with_token, "GET /stats?token=tok HTTP/1.1\r\nHost: 127.0.0.1:9293\r\n\r\n", &r), 0);
    assert_string_equal(r.cmd->name, "stats");
    assert_false(r.http10);
    assert_int_equal(judge(&with_token, "GET /stop?a=1&token=tok;b HTTP/1.0\r\n\r\n", &r), 0);
    assert_string_equal(r.cmd->name, "stop");
    assert_true(r.http10);
    assert_int_equal(r.query_len, strlen("a=1&token=tok;b"));
}

static void test_incomplete_waits(void **state)
{
    (void)state;
    sv_control_req_t r;
    assert_int_equal(judge(&with_token, "", &r), -1);
    assert_int_equal(judge(&with_token, "GET /stats?token=tok HTTP/1.1\r\n", &r), -1);
    assert_int_equal(judge(&with_token, "GET /stats?token=tok HTTP/1.1\r\n\r", &r), -1);
}

static void test_strict_request_line(void **state)
{
    (void)state;
    sv_control_req_t r;
    assert_int_equal(judge(&with_token, "GETX /stats?token=tok HTTP/1.1\r\n\r\n", &r), 405);
    assert_int_equal(judge(&with_token, "HEAD /stats?token=tok HTTP/1.1\r\n\r\n", &r), 405);
    assert_int_equal(judge(&with_token, "GET /stats?token=tok HTTP/1.1\n", &r), 400); /* at once */
    assert_int_equal(judge(&with_token, "GET /stats?token=tok HTTP/1.1\r\nA: b\n", &r), 400);
    assert_int_equal(judge(&with_token, "GET /stats?token=tok HTTP/1.1\rX\r\n\r\n", &r), 400);
    assert_int_equal(judge(&with_token, "GET  /stats?token=tok HTTP/1.1\r\n\r\n", &r), 400);
    assert_int_equal(judge(&with_token, " GET /stats?token=tok HTTP/1.1\r\n\r\n", &r), 400);
    assert_int_equal(judge(&with_token, "GET /stats?token=tok HTTP/1.10\r\n\r\n", &r), 400);
    assert_int_equal(judge(&with_token, "GET /stats?token=tok http/1.1\r\n\r\n", &r), 400);
    assert_int_equal(judge(&with_token, "GET *?token=tok HTTP/1.1\r\n\r\n", &r), 400);
    assert_int_equal(judge(&with_token, "GET /st\x01s HTTP/1.1\r\n\r\n", &r), 400);
    assert_int_equal(judge(&with_token, "GET /stats?token=tok HTTP/1.1\r\nNo colon\r\n\r\n", &r), 400);
    assert_int_equal(judge(&with_token, "GET /stats?token=tok HTTP/1.1\r\nA: b\x7f\r\n\r\n", &r), 400);
    assert_int_equal(judge(&with_token, "GET /stats?token=tok HTTP/1.1\r\nContent-Length: 5\r\n\r\n", &r), 400);
    assert_int_equal(judge(&with_token, "GET /stats?token=tok HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r), 0);
}

static void test_exact_paths(void **state)
{
    (void)state;
    sv_control_req_t r;
    assert_int_equal(judge(&with_token, "GET /x/stats?token=tok HTTP/1.1\r\n\r\n", &r), 404);
    assert_int_equal(judge(&with_token, "GET /stats/?token=tok HTTP/1.1\r\n\r\n", &r), 404);
    assert_int_equal(judge(&with_token, "GET //stats?token=tok HTTP/1.1\r\n\r\n", &r), 404);
    assert_int_equal(judge(&with_token, "GET /stats HTTP/1.1\r\n\r\n", &r), 403); /* token first */
    assert_true(r.auth_failed);
}

static void test_token(void **state)
{
    (void)state;
    sv_control_req_t r;
    assert_int_equal(judge(&with_token, "GET /stats?token=to HTTP/1.1\r\n\r\n", &r), 403);
    assert_int_equal(judge(&with_token, "GET /stats?token=tokk HTTP/1.1\r\n\r\n", &r), 403);
    assert_int_equal(judge(&with_token, "GET /stats?xtoken=tok HTTP/1.1\r\n\r\n", &r), 403);
    assert_int_equal(judge(&with_token, "GET /stats?token= HTTP/1.1\r\n\r\n", &r), 403);
    assert_true(r.auth_failed);
}

static void test_host_and_origin_without_token(void **state)
{
    (void)state;
    sv_control_req_t r;
    assert_int_equal(judge(&no_token, "GET /stop HTTP/1.0\r\n\r\n", &r), 0);
    assert_int_equal(judge(&no_token, "GET /stop HTTP/1.1\r\nHost: 127.0.0.1:9293\r\n\r\n", &r), 0);
    assert_int_equal(judge(&no_token, "GET /stop HTTP/1.1\r\nHost: LOCALHOST\r\n\r\n", &r), 0);
    assert_int_equal(judge(&no_token, "GET /stop HTTP/1.1\r\nHost: [::1]:9293\r\n\r\n", &r), 0);
    assert_int_equal(judge(&no_token, "GET /stop HTTP/1.1\r\nHost: attacker.example\r\n\r\n", &r), 403);
    assert_true(r.foreign);
    assert_int_equal(judge(&no_token, "GET /stop HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n", &r), 403);
    assert_int_equal(judge(&no_token, "GET /stop HTTP/1.1\r\nHost: 127.0.0.1.evil.example\r\n\r\n", &r), 403);
    assert_int_equal(judge(&no_token, "GET /stop HTTP/1.1\r\nHost: localhost.evil\r\n\r\n", &r), 403);
    assert_int_equal(judge(&no_token, "GET /stop HTTP/1.1\r\nHost: [::1\r\n\r\n", &r), 403);
    assert_int_equal(judge(&no_token, "GET /stop HTTP/1.1\r\nOrigin: null\r\n\r\n", &r), 403);
    assert_int_equal(judge(&no_token, "GET /stop HTTP/1.1\r\nOrigin: https://127.0.0.1:9293\r\n\r\n", &r), 403);
    assert_int_equal(judge(&no_token, "GET /stop HTTP/1.1\r\nOrigin: http://127.0.0.1:9293\r\n\r\n", &r), 0);
    assert_int_equal(judge(&no_token, "GET /stop HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", &r), 400);
    /* with a token, the Host is the token's business */
    assert_int_equal(judge(&with_token, "GET /stop?token=tok HTTP/1.1\r\nHost: app.example\r\n\r\n", &r), 0);
}

static void test_data_only(void **state)
{
    (void)state;
    sv_control_req_t r;
    const char *ok[] = {"/stats", "/metrics", "/health", "/readyz", "/livez", "/gc-stats"};
    const char *no[] = {"/stop", "/halt", "/restart", "/phased-restart", "/refork", "/gc",
                        "/reload-worker-directory", "/thread-backtraces", "/operation"};
    char req[128];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: probe.example\r\n\r\n", ok[i]);
        assert_int_equal(judge(&data_only, req, &r), 0);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n\r\n", no[i]);
        assert_int_equal(judge(&data_only, req, &r), 404);
        assert_non_null(r.read_only_refused);
        assert_false(r.auth_failed);
    }
}

static char dir[64];

static int count_entries(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_atomic_write_replaces_a_symlink_not_its_target(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sv-unit-file-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[128], target[128], buf[64] = "";
    snprintf(path, sizeof(path), "%s/state", dir);
    snprintf(target, sizeof(target), "%s/target", dir);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(sv_file_write_atomic(path, "token: x\n", 9, 0600), 0);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0077, 0);
    assert_int_equal(access(target, F_OK), -1); /* the link's target never got it */
    FILE *f = fopen(path, "r");
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_string_equal(buf, "token: x\n");
    assert_int_equal(count_entries(), 1); /* no temp file left */
    /* a missing directory is an error, nothing is created */
    char bad[160];
    snprintf(bad, sizeof(bad), "%s/missing/state", dir);
    assert_int_equal(sv_file_write_atomic(bad, "x", 1, 0600), -ENOENT);
    assert_int_equal(count_entries(), 1);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_requests),
        cmocka_unit_test(test_incomplete_waits),
        cmocka_unit_test(test_strict_request_line),
        cmocka_unit_test(test_exact_paths),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_host_and_origin_without_token),
        cmocka_unit_test(test_data_only),
        cmocka_unit_test(test_atomic_write_replaces_a_symlink_not_its_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
