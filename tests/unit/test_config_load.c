/*
 * test_config_load.c: sv_config_load, the pipeline for one process
 * (src/config/cli.c): flags, environment fallbacks, config file discovery,
 * precedence, warnings and --strict. Each test runs in an empty scratch
 * directory with a clean environment.
 */
#include "config_test.h"

static void test_load_warnings_and_strict(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    sv_config_action_t a;
    mkdir("config", 0755);
    write_file("config/puma.rb", "workers 2\nrequire 'x'\nprune_bundler\n");
    int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2); /* the warnings go to stderr */
    int rc1 = load(&c, &d, &a, (char *)NULL);
    int n = rc1 == 0 ? c.n_warnings : -1;
    if (rc1 == 0)
        sv_config_free(&c);
    int rc2 = load(&c, &d, &a, "--strict", (char *)NULL);
    dup2(saved, 2);
    close(saved);
    close(devnull);
    assert_int_equal(rc1, 0);
    assert_int_equal(n, 2);
    assert_int_equal(rc2, SV_ECONFIG);
    assert_string_equal(d.msg, "serval: --strict: the 2 warnings above are errors");
    write_file("config/puma.rb", "workers 2\n");
    assert_int_equal(load(&c, &d, &a, "--strict", (char *)NULL), 0);
    assert_null(c.warnings);
    sv_config_free(&c);
}

static void test_load_flags(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    sv_config_action_t act;
    assert_int_equal(load(&c, &d, &act, "-w", "4", "-t", "2:8", "-b", "tcp://127.0.0.1:9000", "--bind",
                          "unix:///tmp/x.sock", "--preload", "--dir", "/srv", "-e", "production", "--tag", "t",
                          "-v", "-S", "s.state", "--pidfile", "p.pid", "--control-url", "tcp://127.0.0.1:9001",
                          "--control-token", "tok", "--redirect-stdout", "o.log", "--redirect-stderr", "e.log",
                          "--redirect-append", "--fork-worker", "app.so", NULL),
                     0);
    assert_int_equal(act, SV_CONFIG_RUN);
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.min_threads, 2);
    assert_int_equal(c.max_threads, 8);
    assert_int_equal(c.n_binds, 2);
    assert_string_equal(c.binds[1], "unix:///tmp/x.sock");
    assert_true(c.preload);
    assert_string_equal(c.directory, "/srv");
    assert_string_equal(c.environment, "production");
    assert_string_equal(c.tag, "t");
    assert_true(c.log_requests);
    assert_false(c.quiet);
    assert_string_equal(c.state_path, "s.state");
    assert_string_equal(c.pidfile, "p.pid");
    assert_string_equal(c.control_url, "tcp://127.0.0.1:9001");
    assert_string_equal(c.control_token, "tok");
    assert_string_equal(c.stdout_redirect, "o.log");
    assert_string_equal(c.stderr_redirect, "e.log");
    assert_true(c.redirect_append);
    assert_true(c.fork_worker);
    assert_int_equal(c.refork_thresholds[0], 1000);
    assert_string_equal(c.app_path, "app.so");
    assert_null(c.config_file);
    assert_false(c.check_only);
    sv_config_free(&c);
}

static void test_load_flag_forms(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    sv_config_action_t act;
    assert_int_equal(load(&c, &d, &act, "--workers=3", "-t4", "--environment=test", "-p8080", "-q", "--check",
                          "--no-redirect-append", "--", "-odd.so", NULL),
                     0);
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.min_threads, 4);
    assert_int_equal(c.max_threads, 4);
    assert_string_equal(c.environment, "test");
    assert_string_equal(c.binds[0], "tcp://0.0.0.0:8080");
    assert_true(c.quiet);
    assert_true(c.check_only);
    assert_false(c.redirect_append);
    assert_string_equal(c.app_path, "-odd.so");
    sv_config_free(&c);
    assert_int_equal(load(&c, &d, &act, "-w2", "--threads=1:3", "-f", "500", "x.so", NULL), 0);
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.max_threads, 3);
    assert_int_equal(c.n_refork_thresholds, 1);
    assert_int_equal(c.refork_thresholds[0], 500);
    assert_string_equal(c.app_path, "x.so");
    sv_config_free(&c);
    assert_int_equal(load(&c, &d, &act, "-w", "2", "--fork-worker=0", NULL), 0);
    assert_true(c.fork_worker);
    assert_int_equal(c.n_refork_thresholds, 0);
    sv_config_free(&c);
    assert_int_equal(load(&c, &d, &act, "-w", "2", "--fork-worker", NULL), 0);
    assert_int_equal(c.refork_thresholds[0], 1000);
    sv_config_free(&c);
    /* values are passed on verbatim, whatever quotes or backslashes they hold */
    assert_int_equal(load(&c, &d, &act, "--tag", "it's \\ \"#{x}\"", "--dir", "a'b", NULL), 0);
    assert_string_equal(c.tag, "it's \\ \"#{x}\"");
    assert_string_equal(c.directory, "a'b");
    sv_config_free(&c);
}

static void expect_load_error(const char *msg, ...)
{
    char *argv[32] = {"serval"};
    int argc = 1;
    va_list ap;
    va_start(ap, msg);
    for (char *a; (a = va_arg(ap, char *)) && argc < 31;)
        argv[argc++] = a;
    va_end(ap);
    sv_config_t c;
    sv_diag_t d;
    sv_config_action_t act;
    assert_int_equal(sv_config_load(&c, argc, argv, &act, &d), SV_ECONFIG);
    assert_string_equal(d.msg, msg);
    sv_config_free(&c);
}

static void test_load_flag_errors(void **state)
{
    expect_load_error("serval: unknown option '--foo' (see serval --help)", "--foo", NULL);
    expect_load_error("serval: unknown option '--foo' (see serval --help)", "--foo=1", NULL);
    /* Puma's flags serval does not take: errors that say what to do instead */
    expect_load_error("serval: option '--prune-bundler' is Puma's, not serval's (hint: Ruby-only, for Bundler: drop "
                      "it)", "--prune-bundler", NULL);
    expect_load_error("serval: option '-s' is Puma's, not serval's (hint: serval has no silent mode; its request log "
                      "is off unless -v)", "-s", NULL);
    expect_load_error("serval: option '--idle-timeout' is Puma's, not serval's (hint: serval does not stop itself "
                      "when idle; use systemd socket activation for that)", "--idle-timeout=30", NULL);
    expect_load_error("serval: unknown option '-z' (see serval --help)", "-z", NULL);
    expect_load_error("serval: unknown option '-qv' (see serval --help)", "-qv", NULL);
    expect_load_error("serval: option '-w' needs a value", "-w", NULL);
    expect_load_error("serval: option '-w' needs a value", "-w", "--preload", NULL);
    expect_load_error("serval: option '--bind' needs a value", "--bind", NULL);
    expect_load_error("serval: option '--preload' takes no value", "--preload=yes", NULL);
    expect_load_error("serval: -w: 'abc' is not a whole number", "-w", "abc", NULL);
    expect_load_error("serval: -w: workers must be at least 0 (got -1)", "-w", "-1", NULL);
    expect_load_error("serval: --workers: '' is not a whole number", "--workers=", NULL);
    expect_load_error("serval: -t: threads minimum (8) must not exceed the maximum (2)", "-t", "8:2", NULL);
    expect_load_error("serval: -t: 'x' is not a whole number", "-t", "x:3", NULL);
    expect_load_error("serval: -t: '' is not a whole number", "-t", "3:", NULL);
    expect_load_error("serval: -p: port must be at most 65535 (got 99999)", "-p", "99999", NULL);
    expect_load_error("serval: -b: bad bind 'nope': expected tcp://HOST:PORT, unix://PATH or "
                      "ssl://HOST:PORT?cert=PATH&key=PATH", "-b", "nope", NULL);
    /* an address without its scheme: the one it meant */
    expect_load_error("serval: -b: bad bind '127.0.0.1:3000': expected tcp://HOST:PORT, unix://PATH or "
                      "ssl://HOST:PORT?cert=PATH&key=PATH (hint: "
                      "\"tcp://127.0.0.1:3000\")", "-b", "127.0.0.1:3000", NULL);
    expect_load_error("serval: -b: bad bind './puma.sock': expected tcp://HOST:PORT, unix://PATH or "
                      "ssl://HOST:PORT?cert=PATH&key=PATH (hint: "
                      "\"unix://./puma.sock\")", "-b", "./puma.sock", NULL);
    expect_load_error("serval: --fork-worker: '5, 5' is not a whole number", "-w", "1", "--fork-worker=5, 5", NULL);
    expect_load_error("serval: --fork-worker: fork_worker request counts must be at least 1 (got -5; "
                      "fork_worker 0 alone turns automatic refork off)",
                      "-w", "1", "--fork-worker=-5", NULL);
    expect_load_error("serval: unexpected argument 'b.so' (only one APP may be given)", "a.so", "b.so", NULL);
    expect_load_error("serval: config file 'missing.rb' not found", "-C", "missing.rb", NULL);
    expect_load_error("serval: option '--config' given twice (serval reads one config file)", "-C", "a",
                      "--config", "b", NULL);
    expect_load_error("serval: --fork-worker: fork_worker needs cluster mode (hint: set workers 1 or more, or pass "
                      "-w N)",
                      "--fork-worker", NULL);
    expect_load_error("serval: --control-url: control URL 'auto' is not supported (hint: give a "
                      "tcp://127.0.0.1:PORT, unix://PATH or ssl://127.0.0.1:PORT?cert=PATH&key=PATH URL)",
                      "--control-url", "auto", NULL);
    expect_load_error("serval: APP: app must not be empty", "", NULL);
    expect_load_error("serval: -w: 'a?b' is not a whole number", "-w", "a\nb", NULL);
}

static void test_load_actions(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    sv_config_action_t act;
    assert_int_equal(load(&c, &d, &act, "-h", "--whatever", NULL), 0);
    assert_int_equal(act, SV_CONFIG_HELP);
    sv_config_free(&c);
    assert_int_equal(load(&c, &d, &act, "-w", "2", "--version", NULL), 0);
    assert_int_equal(act, SV_CONFIG_VERSION);
    sv_config_free(&c);
    assert_int_equal(load(&c, &d, &act, NULL), 0);
    assert_int_equal(act, SV_CONFIG_RUN);
    assert_int_equal(sv_config_bind_count(&c), 1);
    sv_config_free(&c);
    char *argv[] = {"serval"};
    assert_int_equal(sv_config_load(&c, 0, argv, &act, &d), 0);
    sv_config_free(&c);
}

static void test_load_precedence(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    sv_config_action_t act;
    setenv("WEB_CONCURRENCY", "2", 1);
    assert_int_equal(load(&c, &d, &act, NULL), 0);
    assert_int_equal(c.workers, 2);
    sv_config_free(&c);
    mkdir("config", 0755);
    write_file("config/puma.rb", "workers 3\nbind \"tcp://127.0.0.1:7001\"\nbind \"tcp://127.0.0.1:7002\"\n");
    assert_int_equal(load(&c, &d, &act, NULL), 0);
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.n_binds, 2);
    assert_string_equal(c.config_file, "config/puma.rb");
    sv_config_free(&c);
    assert_int_equal(load(&c, &d, &act, "-w", "4", NULL), 0);
    assert_int_equal(c.workers, 4);
    sv_config_free(&c);
    /* command-line binds replace the file's */
    assert_int_equal(load(&c, &d, &act, "-b", "tcp://127.0.0.1:7003", "-p", "7004", NULL), 0);
    assert_int_equal(c.n_binds, 2);
    assert_string_equal(c.binds[0], "tcp://127.0.0.1:7003");
    assert_string_equal(c.binds[1], "tcp://0.0.0.0:7004");
    sv_config_free(&c);
    /* --no-config: env only */
    assert_int_equal(load(&c, &d, &act, "--no-config", NULL), 0);
    assert_int_equal(c.workers, 2);
    assert_null(c.config_file);
    sv_config_free(&c);    /* set_default_host is the file's: -p keeps 0.0.0.0, as the contract says (and Puma's -p) */
    write_file("config/puma.rb", "set_default_host \"::\"\nport 7005\n");
    assert_int_equal(load(&c, &d, &act, NULL), 0);
    assert_string_equal(c.binds[0], "tcp://[::]:7005");
    sv_config_free(&c);
    assert_int_equal(load(&c, &d, &act, "-p", "7006", NULL), 0);
    assert_string_equal(c.binds[0], "tcp://0.0.0.0:7006");
    sv_config_free(&c);
    /* a rule between settings names where the setting it is about was made, even when a flag broke it */
    write_file("config/puma.rb", "workers 2\nfork_worker\n");
    expect_load_error("config/puma.rb:2: fork_worker needs cluster mode (hint: set workers 1 or more, or pass -w N)",
                      "-w", "0", NULL);
}

static void test_load_env(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    sv_config_action_t act;
    setenv("WEB_CONCURRENCY", "auto", 1);
    setenv("MIN_THREADS", "2", 1);
    setenv("MAX_THREADS", "9", 1);
    setenv("PUMA_MAX_THREADS", "12", 1);
    setenv("PORT", "8123", 1);
    setenv("RAILS_ENV", "rails", 1);
    setenv("RACK_ENV", "rack", 1);
    assert_int_equal(load(&c, &d, &act, NULL), 0);
    assert_int_equal(c.workers, sv_cfg_cpu_count());
    assert_int_equal(c.min_threads, 2);
    assert_int_equal(c.max_threads, 12);
    assert_int_equal(c.n_binds, 1);
    assert_string_equal(sv_config_bind(&c, 0), "tcp://0.0.0.0:8123");
    assert_string_equal(c.environment, "rack");
    sv_config_free(&c);
    setenv("APP_ENV", "app", 1);
    /* PORT only moves the default bind */
    assert_int_equal(load(&c, &d, &act, "-b", "unix:///tmp/e.sock", NULL), 0);
    assert_string_equal(c.environment, "app");
    assert_int_equal(c.n_binds, 1);
    assert_string_equal(c.binds[0], "unix:///tmp/e.sock");
    sv_config_free(&c);
    clear_env();
    setenv("WEB_CONCURRENCY", "  ", 1);
    setenv("MIN_THREADS", "", 1);
    assert_int_equal(load(&c, &d, &act, NULL), 0);
    assert_int_equal(c.workers, 0);
    assert_int_equal(c.min_threads, 0);
    sv_config_free(&c);
    /* a minimum above the default maximum is fine when something else raises the maximum */
    setenv("MIN_THREADS", "8", 1);
    assert_int_equal(load(&c, &d, &act, "-t", "8:16", NULL), 0);
    sv_config_free(&c);
    expect_load_error("serval: threads minimum (8) must not exceed the maximum (5)", NULL);
    clear_env();
}

static void test_load_env_errors(void **state)
{
    setenv("WEB_CONCURRENCY", "abc", 1);
    expect_load_error("serval: WEB_CONCURRENCY: 'abc' is not a whole number", NULL);
    setenv("WEB_CONCURRENCY", "5000", 1);
    expect_load_error("serval: WEB_CONCURRENCY: workers must be at most 1024 (got 5000)", NULL);
    clear_env();
    setenv("MAX_THREADS", "lots", 1);
    expect_load_error("serval: MAX_THREADS: 'lots' is not a whole number", NULL);
    setenv("MAX_THREADS", "0", 1);
    expect_load_error("serval: MAX_THREADS: must be 1 to 1024 (got 0)", NULL);
    clear_env();
    setenv("PUMA_MIN_THREADS", "-1", 1);
    expect_load_error("serval: PUMA_MIN_THREADS: must be 0 to 1024 (got -1)", NULL);
    clear_env();
    setenv("PORT", "http", 1);
    expect_load_error("serval: PORT: 'http' is not a whole number", NULL);
    setenv("PORT", "70000", 1);
    expect_load_error("serval: PORT: must be 0 to 65535 (got 70000)", NULL);
    clear_env();
    setenv("RACK_ENV", "a\"b", 1);
    sv_config_t c;
    sv_diag_t d;
    sv_config_action_t act;
    assert_int_equal(load(&c, &d, &act, NULL), 0);
    assert_string_equal(c.environment, "a\"b");
    sv_config_free(&c);
    clear_env();
}

static void test_load_config_discovery(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    sv_config_action_t act;
    mkdir("config", 0755);
    mkdir("config/puma", 0755);
    write_file("config/puma.rb", "workers 1\n");
    write_file("config/puma/production.rb", "workers 5\n");
    assert_int_equal(load(&c, &d, &act, NULL), 0);
    assert_int_equal(c.workers, 1);
    assert_string_equal(c.config_file, "config/puma.rb");
    sv_config_free(&c);
    assert_int_equal(load(&c, &d, &act, "-e", "production", NULL), 0);
    assert_int_equal(c.workers, 5);
    assert_string_equal(c.config_file, "config/puma/production.rb");
    sv_config_free(&c);
    setenv("RACK_ENV", "production", 1);
    assert_int_equal(load(&c, &d, &act, NULL), 0);
    assert_int_equal(c.workers, 5);
    sv_config_free(&c);
    write_file("other.rb", "workers 7\nenvironment \"staging\"\n");
    assert_int_equal(load(&c, &d, &act, "-C", "other.rb", "-e", "qa", NULL), 0);
    assert_int_equal(c.workers, 7);
    assert_string_equal(c.environment, "qa");
    assert_string_equal(c.config_file, "other.rb");
    sv_config_free(&c);
    assert_int_equal(load(&c, &d, &act, "--no-config", NULL), 0);
    assert_int_equal(c.workers, 0);
    sv_config_free(&c);
    clear_env();
}

static void test_load_file_errors(void **state)
{
    mkdir("config", 0755);
    write_file("config/puma.rb", "workers 2\n\nthreads 9, 3\n");
    expect_load_error("config/puma.rb:3: threads minimum (9) must not exceed the maximum (3)", NULL);
    write_file("config/puma.rb", "fork_worker\n");
    expect_load_error("config/puma.rb:1: fork_worker needs cluster mode (hint: set workers 1 or more, or pass -w N)",
                      NULL);
    /* the flag fixes what the file left invalid */
    sv_config_t c;
    sv_diag_t d;
    sv_config_action_t act;
    assert_int_equal(load(&c, &d, &act, "-w", "2", NULL), 0);
    assert_true(c.fork_worker);
    sv_config_free(&c);
    write_file("nul.rb", "workers 1\n");
    FILE *f = fopen("nul.rb", "a");
    fputc('\0', f);
    fclose(f);
    expect_load_error("serval: cannot read config file 'nul.rb': it contains NUL bytes", "-C", "nul.rb", NULL);
    expect_load_error("serval: cannot read config file 'config': Is a directory", "-C", "config", NULL);
    sv_config_defaults(&c);
    assert_int_equal(sv_config_parse_file(&c, "absent.rb", &d), SV_ECONFIG);
    assert_string_equal(d.msg, "serval: cannot read config file 'absent.rb': No such file or directory");
    sv_config_free(&c);
}

static void test_load_control(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    sv_config_action_t act;
    mkdir("config", 0755);
    write_file("config/puma.rb", "activate_control_app \"tcp://127.0.0.1:9293\", { auth_token: \"file\" }\n");
    /* a command-line URL keeps the file's token, as Puma's separate options do */
    assert_int_equal(load(&c, &d, &act, "--control-url", "unix:///tmp/c.sock", NULL), 0);
    assert_string_equal(c.control_url, "unix:///tmp/c.sock");
    assert_string_equal(c.control_token, "file");
    sv_config_free(&c);
    assert_int_equal(load(&c, &d, &act, "--control-token", "none", NULL), 0);
    assert_true(c.control_no_token);
    assert_null(c.control_token);
    sv_config_free(&c);
    expect_load_error("serval: --control-token: a control token needs a control server (hint: activate_control_app "
                      "\"URL\" or --control-url URL)",
                      "--no-config", "--control-token", "x", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_flags, enter_tmpdir, leave_tmpdir),
        cmocka_unit_test_setup_teardown(test_load_flag_forms, enter_tmpdir, leave_tmpdir),
        cmocka_unit_test_setup_teardown(test_load_flag_errors, enter_tmpdir, leave_tmpdir),
        cmocka_unit_test_setup_teardown(test_load_actions, enter_tmpdir, leave_tmpdir),
        cmocka_unit_test_setup_teardown(test_load_precedence, enter_tmpdir, leave_tmpdir),
        cmocka_unit_test_setup_teardown(test_load_env, enter_tmpdir, leave_tmpdir),
        cmocka_unit_test_setup_teardown(test_load_env_errors, enter_tmpdir, leave_tmpdir),
        cmocka_unit_test_setup_teardown(test_load_config_discovery, enter_tmpdir, leave_tmpdir),
        cmocka_unit_test_setup_teardown(test_load_file_errors, enter_tmpdir, leave_tmpdir),
        cmocka_unit_test_setup_teardown(test_load_control, enter_tmpdir, leave_tmpdir),
        cmocka_unit_test_setup_teardown(test_load_warnings_and_strict, enter_tmpdir, leave_tmpdir),
    };
    clear_env();
    return cmocka_run_group_tests_name("config_load", tests, NULL, NULL);
}
