/*
 * test_config.c: the puma.rb parser, the directive table, flags, env and
 * the load pipeline (src/config/).
 */
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

/* ---- helpers --------------------------------------------------------- */

static const char *const env_names[] = {
    "WEB_CONCURRENCY", "MIN_THREADS", "MAX_THREADS", "PUMA_MIN_THREADS", "PUMA_MAX_THREADS", "PORT",
    "APP_ENV", "RACK_ENV", "RAILS_ENV", "SV_TEST_A", "SV_TEST_B", "RAILS_MAX_THREADS", "RAILS_MIN_THREADS",
    "PIDFILE", "SOLID_QUEUE_IN_PUMA", "WEB_PORT",
};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
        unsetenv(env_names[i]);
}

/* Parses text on top of the defaults; the caller frees c. */
static int parse(sv_config_t *c, const char *text, sv_diag_t *d)
{
    sv_config_defaults(c);
    d->msg[0] = '\0';
    return sv_config_parse_text(c, "puma.rb", text, d);
}

static void expect_ok(const char *text)
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
static void expect_error(const char *text, const char *msg)
{
    sv_config_t c;
    sv_diag_t d;
    int rc = parse(&c, text, &d);
    assert_int_equal(rc, SV_ECONFIG);
    assert_string_equal(d.msg, msg);
    sv_config_free(&c);
}

/* Parsing must fail with a message containing part. */
static void expect_error_has(const char *text, const char *part)
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
static void expect_warning(const char *text, const char *part)
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
static int load(sv_config_t *c, sv_diag_t *d, sv_config_action_t *action, ...)
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

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *json_of(const sv_config_t *c)
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
static int enter_tmpdir(void **state)
{
    clear_env();
    if (!getcwd(saved_cwd, sizeof(saved_cwd)))
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sv_config_test_XXXXXX");
    if (!mkdtemp(tmpdir) || chdir(tmpdir) < 0)
        return -1;
    return 0;
}

static int leave_tmpdir(void **state)
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

/* ---- defaults -------------------------------------------------------- */

static void test_defaults(void **state)
{
    sv_config_t c;
    sv_config_defaults(&c);
    assert_null(c.config_file);
    assert_int_equal(c.workers, 0);
    assert_int_equal(c.min_threads, 0);
    assert_int_equal(c.max_threads, 5);
    assert_false(c.preload);
    assert_false(c.fork_worker);
    assert_int_equal(c.n_refork_thresholds, 1);
    assert_int_equal(c.refork_thresholds[0], 1000);
    assert_false(c.nakayoshi_fork);
    assert_int_equal(c.worker_culling_strategy, SV_CULL_YOUNGEST);
    assert_int_equal(c.n_binds, 0);
    assert_null(c.app_path);
    assert_null(c.directory);
    assert_string_equal(c.environment, "development");
    assert_null(c.tag);
    assert_null(c.control_url);
    assert_null(c.control_token);
    assert_false(c.control_no_token);
    assert_true(c.quiet);
    assert_false(c.log_requests);
    assert_null(c.stdout_redirect);
    assert_false(c.redirect_append);
    assert_true(c.persistent_timeout == 65);
    assert_true(c.first_data_timeout == 30);
    assert_true(c.request_timeout == 60);
    assert_true(c.force_shutdown_after == -1);
    assert_true(c.worker_timeout == 60);
    assert_true(c.worker_boot_timeout == 60);
    assert_true(c.worker_shutdown_timeout == 30);
    assert_true(c.worker_check_interval == 5);
    assert_true(c.wait_for_less_busy_worker == 0.005);
    assert_int_equal(c.max_keep_alive, 1000);
    assert_int_equal(c.max_request_line, 8192);
    assert_int_equal(c.max_header_size, 65536);
    assert_int_equal(c.max_headers, 100);
    assert_int_equal(c.max_body_size, 100 * 1024 * 1024);
    assert_int_equal(c.body_buffer_size, 1024 * 1024);
    assert_int_equal(c.phased_restart_batch, 1);
    assert_true(c.phased_restart_surge);
    assert_true(c.hot_restart_preflight);
    assert_false(c.tmp_restart);
    assert_int_equal(c.max_requests, 0);
    assert_int_equal(c.max_worker_memory, 0);
    assert_false(c.check_only);
    sv_diag_t d;
    assert_int_equal(sv_config_validate(&c, &d), 0);
    sv_config_free(&c);
}

static void test_default_bind(void **state)
{
    sv_config_t c;
    sv_config_defaults(&c);
    assert_int_equal(sv_config_bind_count(&c), 1);
    assert_string_equal(sv_config_bind(&c, 0), "tcp://0.0.0.0:9292");
    assert_null(sv_config_bind(&c, 1));
    sv_config_free(&c);
}

/* ---- the language ---------------------------------------------------- */

/* The example from CONTRACT.md and docs/configuration.md, unchanged. */
static const char contract_example[] =
    "# config/puma.rb\n"
    "workers 4\n"
    "threads 5, 5\n"
    "bind \"tcp://127.0.0.1:9292\"\n"
    "port 9293\n"
    "fork_worker 1000\n"
    "preload_app!\n"
    "directory \"/srv/app/current\"\n"
    "activate_control_app \"tcp://127.0.0.1:9294\", { auth_token: \"secret\" }\n"
    "state_path \"tmp/puma.state\"\n"
    "pidfile \"tmp/puma.pid\"\n"
    "environment \"production\"\n"
    "tag \"myapp\"\n"
    "quiet\n"
    "stdout_redirect \"log/out.log\", \"log/err.log\", true\n"
    "persistent_timeout 20\n"
    "first_data_timeout 30\n"
    "force_shutdown_after 10\n"
    "worker_timeout 60\n"
    "worker_boot_timeout 60\n"
    "worker_shutdown_timeout 30\n"
    "worker_check_interval 5\n"
    "wait_for_less_busy_worker 0.005\n"
    "app \"build/examples/hello.so\"\n";

static void test_contract_example(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, contract_example, &d), 0);
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.min_threads, 5);
    assert_int_equal(c.max_threads, 5);
    assert_int_equal(c.n_binds, 2);
    assert_string_equal(c.binds[0], "tcp://127.0.0.1:9292");
    assert_string_equal(c.binds[1], "tcp://0.0.0.0:9293");
    assert_true(c.fork_worker);
    assert_int_equal(c.n_refork_thresholds, 1);
    assert_int_equal(c.refork_thresholds[0], 1000);
    assert_true(c.preload);
    assert_string_equal(c.directory, "/srv/app/current");
    assert_string_equal(c.control_url, "tcp://127.0.0.1:9294");
    assert_string_equal(c.control_token, "secret");
    assert_string_equal(c.state_path, "tmp/puma.state");
    assert_string_equal(c.pidfile, "tmp/puma.pid");
    assert_string_equal(c.environment, "production");
    assert_string_equal(c.tag, "myapp");
    assert_true(c.quiet);
    assert_string_equal(c.stdout_redirect, "log/out.log");
    assert_string_equal(c.stderr_redirect, "log/err.log");
    assert_true(c.redirect_append);
    assert_true(c.persistent_timeout == 20);
    assert_true(c.force_shutdown_after == 10);
    assert_true(c.wait_for_less_busy_worker == 0.005);
    assert_string_equal(c.app_path, "build/examples/hello.so");
    assert_int_equal(sv_config_validate(&c, &d), 0);
    sv_config_free(&c);
}

/* Rails 7.0's generated config/puma.rb, and the 7.1/8 one. */
static const char rails70[] =
    "max_threads_count = ENV.fetch(\"RAILS_MAX_THREADS\") { 5 }\n"
    "min_threads_count = ENV.fetch(\"RAILS_MIN_THREADS\") { max_threads_count }\n"
    "threads min_threads_count, max_threads_count\n"
    "\n"
    "# Specifies the `worker_timeout` threshold\n"
    "worker_timeout 3600 if ENV.fetch(\"RAILS_ENV\", \"development\") == \"development\"\n"
    "port ENV.fetch(\"PORT\") { 3000 }\n"
    "environment ENV.fetch(\"RAILS_ENV\") { \"development\" }\n"
    "pidfile ENV.fetch(\"PIDFILE\") { \"tmp/pids/server.pid\" }\n"
    "# workers ENV.fetch(\"WEB_CONCURRENCY\") { 2 }\n"
    "# preload_app!\n"
    "plugin :tmp_restart\n";

static const char rails8[] =
    "threads_count = ENV.fetch(\"RAILS_MAX_THREADS\", 3)\n"
    "threads threads_count, threads_count\n"
    "port ENV.fetch(\"PORT\", 3000)\n"
    "plugin :tmp_restart\n"
    "plugin :solid_queue if ENV[\"SOLID_QUEUE_IN_PUMA\"]\n"
    "pidfile ENV[\"PIDFILE\"] if ENV[\"PIDFILE\"]\n";

/* The docs' examples must parse as they are; skipped when the tree is not around. */
static void test_docs_examples(void **state)
{
    char path[PATH_MAX];
    const char *slash = strrchr(__FILE__, '/');
    snprintf(path, sizeof(path), "%.*s/../../docs/configuration.md", slash ? (int)(slash - __FILE__) : 1,
             slash ? __FILE__ : ".");
    FILE *f = fopen(path, "r");
    if (!f)
        skip();
    sv_buf_t doc = SV_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        sv_buf_append(&doc, chunk, n);
    fclose(f);
    clear_env();
    int blocks = 0;
    for (char *p = doc.data; (p = strstr(p, "```ruby\n")); blocks++) {
        p += 8;
        char *end = strstr(p, "```");
        assert_non_null(end);
        *end = '\0';
        if (blocks == 0)
            assert_string_equal(p, contract_example);
        expect_ok(p);
        p = end + 1;
    }
    assert_true(blocks >= 2);
    sv_buf_free(&doc);
}

static void test_rails_templates(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    clear_env();
    assert_int_equal(parse(&c, rails70, &d), 0);
    assert_int_equal(c.min_threads, 5);
    assert_int_equal(c.max_threads, 5);
    assert_true(c.worker_timeout == 3600);
    assert_string_equal(c.binds[0], "tcp://0.0.0.0:3000");
    assert_string_equal(c.environment, "development");
    assert_string_equal(c.pidfile, "tmp/pids/server.pid");
    assert_true(c.tmp_restart);
    sv_config_free(&c);

    setenv("RAILS_ENV", "production", 1);
    setenv("RAILS_MAX_THREADS", "16", 1);
    setenv("PORT", "8080", 1);
    assert_int_equal(parse(&c, rails70, &d), 0);
    assert_int_equal(c.min_threads, 16);
    assert_int_equal(c.max_threads, 16);
    assert_true(c.worker_timeout == 60);
    assert_string_equal(c.binds[0], "tcp://0.0.0.0:8080");
    assert_string_equal(c.environment, "production");
    sv_config_free(&c);
    clear_env();

    assert_int_equal(parse(&c, rails8, &d), 0);
    assert_int_equal(c.max_threads, 3);
    assert_string_equal(c.binds[0], "tcp://0.0.0.0:3000");
    assert_null(c.pidfile);
    sv_config_free(&c);
    setenv("PIDFILE", "/run/app.pid", 1);
    assert_int_equal(parse(&c, rails8, &d), 0);
    assert_string_equal(c.pidfile, "/run/app.pid");
    sv_config_free(&c);
    setenv("SOLID_QUEUE_IN_PUMA", "1", 1);
    expect_warning(rails8, "puma.rb:5: warning: plugin :solid_queue is a Ruby plugin, which serval cannot run: "
                           "skipped");
    clear_env();
}

static void test_statement_forms(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    const char *text = "workers(2); threads(1, 3) # trailing comment\n"
                       "preload_app!()\n"
                       "max_keep_alive (7)\n"
                       "bind(\n  \"tcp://127.0.0.1:1\"\n)\n"
                       "threads 2,\n        4\n"
                       "port \\\n  5\n";
    assert_int_equal(parse(&c, text, &d), 0);
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.min_threads, 2);
    assert_int_equal(c.max_threads, 4);
    assert_true(c.preload);
    assert_int_equal(c.max_keep_alive, 7);
    assert_int_equal(c.n_binds, 2);
    assert_string_equal(c.binds[1], "tcp://0.0.0.0:5");
    sv_config_free(&c);
}

static void test_embedded_docs_and_end_marker(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    const char *text = "=begin\nworkers \"broken\n=end\nworkers 3\n__END__\nthis is not ruby (\n";
    assert_int_equal(parse(&c, text, &d), 0);
    assert_int_equal(c.workers, 3);
    sv_config_free(&c);
    expect_error("=begin\n=end\nworkers 3\nwokers 1\n", "puma.rb:4: unknown directive 'wokers' (did you mean 'workers'?)");
}

static void test_numbers(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "max_requests 1_000, 25\npersistent_timeout 2.5\nworker_boot_timeout 1e2\n", &d), 0);
    assert_int_equal(c.max_requests, 1000);
    assert_int_equal(c.max_requests_jitter, 25);
    assert_true(c.persistent_timeout == 2.5);
    assert_true(c.worker_boot_timeout == 100);
    sv_config_free(&c);
    expect_error("workers 0x10\n", "puma.rb:1: malformed number '0x10' (serval reads decimal numbers only)");
    expect_error("workers 09\n", "puma.rb:1: malformed number '09' (a leading 0 makes it octal: digits 0-7 only)");
    assert_int_equal(parse(&c, "max_headers 0100\nworkers 0\n", &d), 0);
    assert_int_equal(c.max_headers, 64);
    sv_config_free(&c);
    expect_warning("rackup DefaultRackup if defined?(DefaultRackup)\nworkers 2 if defined?(Bundler)\n",
                   "puma.rb:2: warning: 'workers' skipped: defined?(...) (serval has no Ruby constants or methods)");
    expect_error("workers 1__0\n", "puma.rb:1: malformed number '1__0' (serval reads decimal numbers only)");
    expect_error("workers 99999999999999999999\n", "puma.rb:1: number 99999999999999999999 is too large");
    expect_error("workers -1\n", "puma.rb:1: workers must be at least 0 (got -1)");
    expect_error("workers - x\n", "puma.rb:1: undefined local variable 'x' (assign it first: x = value; or, meant "
                                  "as a string, quote it: \"x\")");
    expect_error("workers - \"x\"\n", "puma.rb:1: '-' needs a number");
}

static void test_strings(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "tag \"a\\tb\\n\\\"q\\\\ \\d\"\npidfile 'x\\ny\\'z\\\\'\n", &d), 0);
    assert_string_equal(c.tag, "a\tb\n\"q\\ d");
    assert_string_equal(c.pidfile, "x\\ny'z\\");
    sv_config_free(&c);
    /* a multi-line string still counts lines */
    expect_error("tag \"a\nb\"\nwokers 1\n", "puma.rb:3: unknown directive 'wokers' (did you mean 'workers'?)");
    expect_error("pidfile \"tmp/#{name}.pid\"\n",
                 "puma.rb:1: undefined local variable 'name' (assign it first: name = value; or, meant as a "
                 "string, quote it: \"name\")");
    expect_ok("pidfile 'tmp/#{name}.pid'\n");
    expect_error("workers 1\npidfile \"tmp\n", "puma.rb:2: unterminated string (a \" opened here is never closed)");
}

static void test_symbols_and_literals(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "force_shutdown_after :immediately\nworker_culling_strategy :oldest\n"
                               "phased_restart_order :stop_first\npreload_app! false\nnakayoshi_fork nil\n",
                           &d),
                     0);
    assert_true(c.force_shutdown_after == 0);
    assert_int_equal(c.worker_culling_strategy, SV_CULL_OLDEST);
    assert_false(c.phased_restart_surge);
    assert_false(c.preload);
    assert_false(c.nakayoshi_fork);
    sv_config_free(&c);
    expect_error("x = ::Foo\n", "puma.rb:1: syntax error: unexpected '::' (expected a value)");
    expect_error("workers :\n", "puma.rb:1: syntax error: unexpected ':' (expected a value)");
}

static void test_env_access(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    clear_env();
    setenv("SV_TEST_A", "7", 1);
    assert_int_equal(parse(&c, "workers ENV[\"SV_TEST_A\"]\nmax_headers ENV['SV_TEST_B'] || 9\n"
                               "threads ENV.fetch(\"SV_TEST_B\", 2), ENV.fetch(\"SV_TEST_B\") { 6 }\n"
                               "tag ENV.fetch('SV_TEST_A')\n",
                           &d),
                     0);
    assert_int_equal(c.workers, 7);
    assert_int_equal(c.max_headers, 9);
    assert_int_equal(c.min_threads, 2);
    assert_int_equal(c.max_threads, 6);
    assert_string_equal(c.tag, "7");
    sv_config_free(&c);
    expect_error("x = 1\nworkers ENV.fetch(\"SV_TEST_B\")\n",
                 "puma.rb:2: ENV variable SV_TEST_B is not set (hint: give a default, "
                 "ENV.fetch(\"SV_TEST_B\", value))");
    expect_error("workers ENV[1]\n", "puma.rb:1: ENV keys are strings, got 1");
    expect_error("workers ENV.keys\n",
                 "puma.rb:1: unsupported use of ENV (serval reads ENV[\"X\"], ENV.fetch(\"X\"), "
                 "ENV.fetch(\"X\", default), ENV.fetch(\"X\") { default } and ENV.key?(\"X\"))");
    expect_error_has("workers ENV.fetch(\"A\") { |k| 2 }\n", "block takes no parameters");
    /* ENV values are strings: integer directives accept digit strings */
    setenv("SV_TEST_B", "abc", 1);
    expect_error("workers ENV['SV_TEST_B']\n", "puma.rb:1: workers expects a whole number or :auto, got \"abc\"");
    clear_env();
}

static void test_conversions(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "workers Integer(\"12\")\nmax_headers \"12abc\".to_i\nmax_keep_alive \"abc\".to_i\n"
                               "persistent_timeout \"2.5\".to_f\nfirst_data_timeout Float(\"3\")\n"
                               "worker_culling_strategy \"oldest\".to_sym\ntag 5.to_s\nrequest_timeout 7.9.to_i\n"
                               "worker_shutdown_timeout nil.to_i\nphased_restart_batch Integer(2.7)\n",
                           &d),
                     0);
    assert_int_equal(c.workers, 12);
    assert_int_equal(c.max_headers, 12);
    assert_int_equal(c.max_keep_alive, 0);
    assert_true(c.persistent_timeout == 2.5);
    assert_true(c.first_data_timeout == 3);
    assert_int_equal(c.worker_culling_strategy, SV_CULL_OLDEST);
    assert_string_equal(c.tag, "5");
    assert_true(c.request_timeout == 7);
    assert_true(c.worker_shutdown_timeout == 0);
    assert_int_equal(c.phased_restart_batch, 2);
    sv_config_free(&c);
    expect_error("workers Integer(\"abc\")\n", "puma.rb:1: Integer(): cannot convert \"abc\"");
    expect_error("workers Integer(nil)\n", "puma.rb:1: Integer(): cannot convert nil");
    expect_error("workers Float(\"x\")\n", "puma.rb:1: Float(): cannot convert \"x\"");
    expect_error("workers true.to_i\n", "puma.rb:1: .to_i: cannot convert true");
    expect_error("workers 3.upcase\n", "puma.rb:1: undefined method 'upcase' for 3");
    expect_warning("workers 3.frobnicate\n", "puma.rb:1: warning: 'workers' skipped: serval does not know the "
                                             "method .frobnicate (called on 3)");
}

static void test_operators(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    clear_env();
    assert_int_equal(parse(&c, "port ENV[\"SV_TEST_A\"] || 3000\n"
                               "workers 2 if \"a\" == \"a\"\n"
                               "workers 5 if 1 != 1\n"
                               "max_headers 11 if true && 1 == 1.0\n"
                               "max_keep_alive 3 unless !nil\n"
                               "preload_app! (not false) and true\n"
                               "quiet false or nil\n"
                               "tag nil || false || \"t\"\n",
                           &d),
                     0);
    assert_string_equal(c.binds[0], "tcp://0.0.0.0:3000");
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.max_headers, 11);
    assert_int_equal(c.max_keep_alive, 1000);
    assert_true(c.preload);
    assert_false(c.quiet);
    assert_true(c.log_requests);
    assert_string_equal(c.tag, "t");
    sv_config_free(&c);
}

static void test_variables(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "n = 3\nworkers n\nAPP_DIR = \"/srv\"\ndirectory APP_DIR\nn = n.to_s\ntag n\n"
                               "workers = 4\nworkers workers\nn\n",
                           &d),
                     0);
    assert_int_equal(c.workers, 4);
    assert_string_equal(c.directory, "/srv");
    assert_string_equal(c.tag, "3");
    sv_config_free(&c);
    expect_error("workers count\n", "puma.rb:1: undefined local variable 'count' (assign it first: count = value; "
                                    "or, meant as a string, quote it: \"count\")");
    /* a misspelt variable: the closest one assigned */
    expect_error("max_threads_count = 5\nthreads min_threads_count, max_threads_count\n",
                 "puma.rb:2: undefined local variable 'min_threads_count' (did you mean 'max_threads_count'? or "
                 "assign it first: min_threads_count = value)");
    /* `environment production`: a word meant as a string */
    expect_error("environment production\n", "puma.rb:1: undefined local variable 'production' (assign it first: "
                                             "production = value; or, meant as a string, quote it: \"production\")");
    /* as in Ruby, an assignment that does not run still defines the variable, as nil */
    expect_error("x = \"a\" if false\npidfile x\n",
                 "puma.rb:2: pidfile expects a string, got nil (hint: ENV[\"NAME\"] is nil when NAME is unset: "
                 "ENV.fetch(\"NAME\", DEFAULT) gives a default)");
    expect_error("x = {a: 1}\n", "puma.rb:1: a hash can only be given directly as a directive's argument");
    expect_warning("Foo\n", "puma.rb:1: warning: 'Foo' skipped: serval does not run Ruby code");
}

static void test_modifiers(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    clear_env();
    /* the arguments of a statement whose condition fails are never evaluated */
    assert_int_equal(parse(&c, "pidfile ENV.fetch(\"PIDFILE\") if ENV[\"PIDFILE\"]\n"
                               "workers 2 unless ENV[\"SV_TEST_A\"]\n"
                               "workers undefined_thing if false\n",
                           &d),
                     0);
    assert_null(c.pidfile);
    assert_int_equal(c.workers, 2);
    sv_config_free(&c);
    /* but a misspelt directive is caught even where it would not run */
    expect_error("wokers 2 if false\n", "puma.rb:1: unknown directive 'wokers' (did you mean 'workers'?)");
    expect_error("workers 2 if\n", "puma.rb:1: syntax error: unexpected end of line (expected a value)");
    expect_error("workers 2 3\n", "puma.rb:1: syntax error: unexpected '3' (expected end of line)");
    expect_error("workers 2 )\n", "puma.rb:1: syntax error: unexpected ')' (expected end of line)");
}

static void test_if_blocks(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    clear_env();
    setenv("RACK_ENV", "production", 1);
    const char *text = "if ENV[\"RACK_ENV\"] == \"production\"\n"
                       "  workers 4\n"
                       "  if false\n    workers 9\n  else\n    preload_app!\n  end\n"
                       "elsif ENV.fetch(\"NEVER_EVALUATED\")\n  workers 8\n"
                       "else\n  workers 1\nend\n"
                       "unless true\n  workers 7\nelse\n  max_headers 12\nend\n"
                       "if true then threads 1, 2 end\n";
    assert_int_equal(parse(&c, text, &d), 0);
    assert_int_equal(c.workers, 4);
    assert_true(c.preload);
    assert_int_equal(c.max_headers, 12);
    assert_int_equal(c.max_threads, 2);
    sv_config_free(&c);
    setenv("RACK_ENV", "development", 1);
    assert_int_equal(parse(&c, "if ENV[\"RACK_ENV\"] == \"production\"\n workers 4\nelse\n workers 1\nend\n", &d), 0);
    assert_int_equal(c.workers, 1);
    sv_config_free(&c);
    clear_env();
    expect_error("workers 1\nif true\n  workers 2\n", "puma.rb:2: 'if' has no matching 'end'");
    expect_error("workers 1\nend\n", "puma.rb:2: syntax error: unexpected 'end' (expected a directive)");
    expect_error("if true\nwokers 1\nend\n", "puma.rb:2: unknown directive 'wokers' (did you mean 'workers'?)");
}

static void test_hashes(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "activate_control_app \"unix:///tmp/ctl.sock\", auth_token: \"t1\"\n", &d), 0);
    assert_string_equal(c.control_url, "unix:///tmp/ctl.sock");
    assert_string_equal(c.control_token, "t1");
    sv_config_free(&c);
    assert_int_equal(parse(&c, "activate_control_app(\"tcp://127.0.0.1:9293\", {\n  :auth_token => 't2',\n"
                               "  \"data_only\" => true,\n  umask: 0,\n})\n",
                           &d),
                     0);
    assert_string_equal(c.control_token, "t2");
    sv_config_free(&c);
    /* a hash may be a hash's value (ssl_bind's reuse:), and each option checks its type */
    expect_error("activate_control_app \"tcp://127.0.0.1:1\", { auth_token: { a: 1 } }\n",
                 "puma.rb:1: auth_token expects a string, got a hash");
    expect_error("activate_control_app \"tcp://127.0.0.1:1\", { 1 => 2 }\n",
                 "puma.rb:1: syntax error: unexpected '1' (expected a hash key such as auth_token:)");
    expect_error("activate_control_app \"tcp://127.0.0.1:1\", { :a 2 }\n",
                 "puma.rb:1: syntax error: unexpected '2' (expected '=>')");
}

/* A hook block is skipped with a warning naming the C hook; the rest of the file applies. */
static void test_blocks_warned(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "workers 2\n\non_worker_boot do |index|\n  puts \"#{index}\"\n  if x\n    y\n  end\n"
                               "end\nthreads 1, 2\n",
                           &d),
                     0);
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.max_threads, 2);
    assert_int_equal(c.n_warnings, 1);
    assert_string_equal(c.warnings, "puma.rb:3: warning: on_worker_boot takes a Ruby block, which serval cannot "
                                    "run: skipped (hint: hooks are C functions of the app: use the C hook "
                                    "on_worker_boot in its serval_app_t, see docs/hooks.md)\n");
    sv_config_free(&c);
    expect_warning("before_worker_boot(:key) do |i, data| end\nworkers 1\n",
                   "puma.rb:1: warning: before_worker_boot takes a Ruby block, which serval cannot run: skipped "
                   "(hint: hooks are C functions of the app: use the C hook on_worker_boot in its serval_app_t");
    expect_warning("before_fork { Thing.stop }\n", "use the C hook before_fork in its serval_app_t");
    expect_warning("after_refork do\nend\n", "and serval has no after_refork hook: see docs/hooks.md)");
    /* a brace block with a parameter, on one line (lobsters) */
    expect_warning("on_worker_boot { |index| sleep f(index, 2) }\nworkers 1\n", "puma.rb:1: warning: on_worker_boot");
    static const char *const hooks[] = {
        "on_worker_shutdown", "on_worker_fork", "after_worker_fork", "on_refork", "out_of_band", "on_restart",
        "on_booted", "on_stopped", "before_worker_shutdown", "before_restart", "after_booted",
        "after_stopped", "before_refork", "before_worker_fork", "after_worker_shutdown",
        "before_thread_start", "on_thread_start", "after_worker_boot", "before_thread_exit", "on_thread_exit",
    };
    for (size_t i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "%s do |x|\n  x.y { z }\nend\n", hooks[i]);
        expect_warning(text, "takes a Ruby block, which serval cannot run: skipped (hint: hooks are C functions");
    }
    /* a block after a real directive is still a mistake */
    expect_error("workers 2 do\nend\n",
                 "puma.rb:1: workers does not take a block: serval cannot run Ruby code (hint: see "
                 "docs/configuration.md)");
    expect_error("workers(2) { 3 }\n",
                 "puma.rb:1: workers does not take a block: serval cannot run Ruby code (hint: see "
                 "docs/configuration.md)");
    /* an unclosed block is an error at its line */
    expect_error("workers 1\non_worker_boot do\n  x\n", "puma.rb:2: this Ruby block has no matching 'end' or "
                                                        "closing bracket");
}

static void test_unknown_directives(void **state)
{
    expect_error("workers 1\n\nfoo 1\n", "puma.rb:3: unknown directive 'foo' (hint: see docs/configuration.md)");
    expect_error("wrkers 1\n", "puma.rb:1: unknown directive 'wrkers' (did you mean 'workers'?)");
    expect_error("preload_app\n", "puma.rb:1: unknown directive 'preload_app' (did you mean 'preload_app!'?)");
    expect_error("worker_timout 60\n", "puma.rb:1: unknown directive 'worker_timout' (did you mean 'worker_timeout'?)");
    /* known Puma directives and Ruby calls: warnings, the statement skipped */
    expect_warning("rackup DefaultRackup\nworkers 1\n",
                   "puma.rb:1: warning: Puma's rackup is not supported by serval: skipped (hint: serval loads a "
                   "shared object, not a Rack app: use app \"path.so\")");
    expect_warning("prune_bundler\n", "puma.rb:1: warning: Puma's prune_bundler is not supported by serval: skipped "
                                      "(hint: Ruby-only, for Bundler; serval does not need it: delete the line)");
    expect_warning("extra_runtime_dependencies ['a']\n", "extra_runtime_dependencies is not supported by serval");
    expect_warning("lowlevel_error_handler do |e, env|\n  [500, {}, [\"x\"]]\nend\n",
                   "puma.rb:1: warning: Puma's lowlevel_error_handler is not supported");
    expect_warning("log_formatter do |str|\n  \"x #{str}\"\nend\n", "puma.rb:1: warning: Puma's log_formatter");
    expect_warning("require \"etc\"\n", "puma.rb:1: warning: require is Ruby, which serval cannot run: skipped");
    expect_warning("require_relative 'x'\n", "require_relative is Ruby, which serval cannot run");
    expect_warning("supported_http_methods %w[GET HEAD]\n", "Puma's supported_http_methods is not supported");
    expect_error("ssl_bind \"127.0.0.1\", \"9292\", { key: \"k\" }\n",
                 "puma.rb:1: bad bind 'ssl://127.0.0.1:9292': ssl:// needs cert=PATH&key=PATH (a key for every "
                 "cert)");
    expect_warning("daemonize false\n", "puma.rb:1: warning: daemonize false does nothing: serval never daemonizes");
    expect_error("daemonize\n", "puma.rb:1: daemonize is not supported by serval (hint: it was removed in Puma 5: "
                                "run serval in the foreground under systemd or another supervisor)");
    expect_warning("queue_requests false\n", "queue_requests false is not honoured");
    expect_warning("raise_exception_on_sigterm true\n", "raise_exception_on_sigterm true is not honoured");
    expect_warning("drain_on_shutdown false\n", "drain_on_shutdown false is not honoured");
    expect_ok("queue_requests true\nraise_exception_on_sigterm false\ndrain_on_shutdown\nenable_keep_alives true\n");
    /* statements of Ruby serval does not run */
    expect_warning("FileUtils.mkdir_p(\"tmp\")\n", "puma.rb:1: warning: 'FileUtils.mkdir_p(\"tmp\")' skipped: serval "
                                                   "does not run Ruby code");
    expect_warning("$stdout.sync = true\n", "'$stdout.sync = true' skipped");
    expect_warning("begin\n  x\nrescue\n  y\nend\nworkers 1\n", "puma.rb:1: warning: 'begin' skipped");
    /* flag-only settings are not directives */
    expect_error_has("control_url \"tcp://127.0.0.1:1\"\n", "puma.rb:1: unknown directive 'control_url'");
}

static void test_remote_address_and_activation(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "set_remote_address proxy_protocol: :v1\n", &d), 0);
    assert_int_equal(c.proxy_protocol, 1);
    assert_null(c.remote_address_header);
    assert_null(c.warnings);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "set_remote_address proxy_protocol: :v2, header: \"X-Forwarded-For\", "
                               "trusted_proxies: [\"10.0.0.0/8\", \"192.0.2.7, fd00::/8\"]\n", &d), 0);
    assert_int_equal(c.proxy_protocol, 2);
    assert_string_equal(c.remote_address_header, "X-Forwarded-For");
    assert_string_equal(c.trusted_proxies, "10.0.0.0/8,192.0.2.7,fd00::/8");
    char *j = json_of(&c);
    assert_non_null(strstr(j, "\"set_remote_address\":{\"value\":null,\"proxy_protocol\":\"v2\",\"header\":"
                              "\"X-Forwarded-For\",\"trusted_proxies\":[\"10.0.0.0/8\",\"192.0.2.7\",\"fd00::/8\"]}"));
    free(j);
    sv_config_free(&c);
    /* each call replaces the previous setting, as in Puma */
    assert_int_equal(parse(&c, "set_remote_address header: 'X-Real-IP'\nset_remote_address :localhost\n", &d), 0);
    assert_null(c.remote_address_header);
    assert_string_equal(c.remote_address_value, "127.0.0.1");
    sv_config_free(&c);
    assert_int_equal(parse(&c, "set_remote_address \"192.0.2.1\"\nset_remote_address :socket\n", &d), 0);
    assert_null(c.remote_address_value);
    assert_int_equal(c.proxy_protocol, 0);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "set_remote_address header: \"X-Forwarded-For\"\n", &d), 0);
    j = json_of(&c);
    assert_non_null(strstr(j, "\"trusted_proxies\":[\"127.0.0.0/8\",\"::1\",\"10.0.0.0/8\""));
    free(j);
    sv_config_free(&c);
    expect_error("set_remote_address proxy_protocol: :v3\n",
                 "puma.rb:1: proxy_protocol expects :v1, :v2 or :any, got :v3");
    expect_error_has("set_remote_address header: \"X-Forwarded-For\", trusted_proxies: [\"10.0.0.0/33\"]\n",
                     "puma.rb:1: trusted_proxies: '10.0.0.0/33' is not an IP address or network");
    expect_error_has("set_remote_address trusted_proxies: [\"10.0.0.0/8\"]\n", "there is no header:");
    expect_error_has("set_remote_address header: \"HTTP_X_FORWARDED_FOR\"\n", "not the Rack key");
    expect_error_has("set_remote_address header: \"X Forwarded\"\n", "a header name such as");
    expect_error_has("set_remote_address proxy_protocol: :v1, tls: true\n", "unknown option 'tls'");
    expect_error_has("set_remote_address 42\n", "set_remote_address expects :socket, :localhost");
    expect_error_has("set_remote_address \"a b\"\n", "printable characters without spaces");

    assert_int_equal(parse(&c, "bind_to_activated_sockets\n", &d), 0);
    assert_int_equal(c.bind_to_activated_sockets, 1);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "bind_to_activated_sockets 'only'\n", &d), 0);
    assert_int_equal(c.bind_to_activated_sockets, 2);
    j = json_of(&c);
    assert_non_null(strstr(j, "\"bind_to_activated_sockets\":\"only\""));
    free(j);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "bind_to_activated_sockets false\n", &d), 0);
    assert_int_equal(c.bind_to_activated_sockets, 0);
    sv_config_free(&c);
    expect_error("bind_to_activated_sockets \"sometimes\"\n",
                 "puma.rb:1: bind_to_activated_sockets expects true, false or \"only\", got \"sometimes\"");
}

static void test_limits(void **state)
{
    sv_buf_t t = SV_BUF_INIT;
    sv_buf_puts(&t, "workers ");
    for (int i = 0; i < 100; i++)
        sv_buf_putc(&t, '(');
    sv_buf_puts(&t, "1");
    for (int i = 0; i < 100; i++)
        sv_buf_putc(&t, ')');
    expect_error(t.data, "puma.rb:1: nested too deeply (more than 64 levels)");
    sv_buf_reset(&t);
    sv_buf_puts(&t, "workers ");
    for (int i = 0; i < 100; i++)
        sv_buf_puts(&t, "!");
    sv_buf_puts(&t, "1");
    expect_error(t.data, "puma.rb:1: nested too deeply (more than 64 levels)");
    sv_buf_reset(&t);
    sv_buf_puts(&t, "workers nil");
    for (int i = 0; i < 5000; i++)
        sv_buf_puts(&t, " || nil");
    expect_error(t.data, "puma.rb:1: expression too long (more than 4096 parts)");
    sv_buf_reset(&t);
    for (int i = 0; i < 70; i++)
        sv_buf_puts(&t, "if true\n");
    expect_error(t.data, "puma.rb:65: nested too deeply (more than 64 levels)");
    sv_buf_reset(&t);
    /* many statements are fine: the limits are per expression */
    for (int i = 0; i < 10000; i++)
        sv_buf_puts(&t, "workers 1 || 2\n");
    expect_ok(t.data);
    sv_buf_free(&t);
    expect_ok("\xEF\xBB\xBFworkers 2\n");
}

static void test_syntax_errors(void **state)
{
    expect_error("workers 2\n| x\n", "puma.rb:2: syntax error: unexpected '|' (expected a directive)");
    expect_error("threads 1,\n", "puma.rb:2: syntax error: unexpected end of file (expected a value)");
    expect_error("bind(\"x\"\n", "puma.rb:2: syntax error: unexpected end of file (expected ',' or ')')");
    expect_error("workers (1\n", "puma.rb:2: syntax error: unexpected end of file (expected ')')");
    expect_error("workers [1]\n", "puma.rb:1: workers expects a whole number or :auto, got an array");
    expect_error("workers 1 ? 2\n", "puma.rb:1: syntax error: unexpected end of line (expected ':' of the ?: operator)");
    expect_error("workers (1 + )\n", "puma.rb:1: syntax error: unexpected ')' (expected a value)");
}


/* ---- the Ruby subset ------------------------------------------------- */

static void test_ruby_comparisons_and_arithmetic(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    clear_env();
    assert_int_equal(parse(&c, "n = 4\nworkers n if n > 1\nmax_headers 10 if n >= 4 && n <= 4 && n < 5\n"
                               "max_keep_alive n * 3 + 1 - 6 / 4\nphased_restart_batch (n - 10) / 4 + 5\n"
                               "max_requests -7 % 3 + 10\npersistent_timeout 1.5 * 2\n"
                               "tag \"a\" + \"b\" if \"abc\" < \"abd\" and not n == 3\n"
                               "preload_app! n > 3 ? true : false\nquiet n.zero? ? true : n.even?\n",
                           &d),
                     0);
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.max_headers, 10);
    assert_int_equal(c.max_keep_alive, 12);
    assert_int_equal(c.phased_restart_batch, 3); /* -6 / 4 is -2, as Ruby floors */
    assert_int_equal(c.max_requests, 12);        /* -7 % 3 is 2 */
    assert_true(c.persistent_timeout == 3.0);
    assert_string_equal(c.tag, "ab");
    assert_true(c.preload);
    assert_true(c.quiet);
    sv_config_free(&c);
    /* ENV values are strings: comparing one with a number is Ruby's error too */
    setenv("SV_TEST_A", "3", 1);
    expect_error("workers 2 if ENV[\"SV_TEST_A\"] > 1\n",
                 "puma.rb:1: comparison of \"3\" with 1 failed (hint: ENV values are strings: convert with .to_i "
                 "or Integer())");
    expect_error("workers 1 / 0\n", "puma.rb:1: divided by 0");
    expect_error("workers \"a\" + 1\n", "puma.rb:1: cannot compute \"a\" + 1 (hint: ENV values are strings: "
                                        "convert with .to_i or Integer())");
    clear_env();
}

static void test_ruby_case_when(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    const char *text = "case ENV.fetch(\"RAILS_ENV\", \"development\")\n"
                       "when \"production\", \"staging\"\n  workers 4\n  preload_app!\n"
                       "when \"development\" then worker_timeout 3600\n"
                       "else\n  workers 1\nend\n"
                       "case n = Integer(ENV.fetch(\"SV_TEST_A\", 2))\nwhen 0..1 then max_headers 1\n"
                       "when (2..)\n  max_headers n * 10\nend\n"
                       "case :x\nwhen :y then tag \"y\"\nwhen :x then tag \"x\"\nend\n"
                       "case\nwhen false then quiet false\nwhen 1 == 1 then log_requests\nend\n"
                       "case 5\nwhen 1...5 then max_keep_alive 1\nwhen [5] then max_keep_alive 2\n"
                       "else max_keep_alive 3\nend\n";
    clear_env();
    assert_int_equal(parse(&c, text, &d), 0);
    assert_int_equal(c.workers, 0);
    assert_true(c.worker_timeout == 3600);
    assert_int_equal(c.max_headers, 20);
    assert_string_equal(c.tag, "x");
    assert_true(c.log_requests);
    assert_int_equal(c.max_keep_alive, 3);
    sv_config_free(&c);
    setenv("RAILS_ENV", "staging", 1);
    setenv("SV_TEST_A", "1", 1);
    assert_int_equal(parse(&c, text, &d), 0);
    assert_int_equal(c.workers, 4);
    assert_true(c.preload);
    assert_true(c.worker_timeout == 60);
    assert_int_equal(c.max_headers, 1);
    sv_config_free(&c);
    setenv("RAILS_ENV", "test", 1);
    assert_int_equal(parse(&c, text, &d), 0);
    assert_int_equal(c.workers, 1);
    sv_config_free(&c);
    clear_env();
    expect_warning("case 2\nwhen Foo.bar, 2 then workers 5\nelse workers 6\nend\nthreads 1, 1\n",
                   "puma.rb:2: warning: 'case (all its branches)' skipped: serval does not know Foo.bar");
    expect_error("case 1\nworkers 2\nend\n", "puma.rb:2: syntax error: unexpected 'workers' (expected 'when')");
    expect_error("case 1\nwhen 1\n  workers 2\n", "puma.rb:1: 'case' has no matching 'end'");
    expect_error("case 1\nwhen 1\n  wokers 2\nend\n", "puma.rb:3: unknown directive 'wokers' (did you mean "
                                                    "'workers'?)");
}

static void test_ruby_strings_and_interpolation(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    clear_env();
    setenv("SV_TEST_A", "10.0.0.1", 1);
    assert_int_equal(parse(&c, "host = ENV.fetch('SV_TEST_A', '127.0.0.1')\nport = 3000\n"
                               "bind \"tcp://#{host}:#{port + 1}\"\n"
                               "bind \"unix://#{ENV.fetch(\"SV_TEST_B\", \"/tmp\")}/#{:s}.sock\"\n"
                               "tag \"#{nil}x\\#{y}#{'}'}\"\npidfile 'no #{interpolation}'\n",
                           &d),
                     0);
    assert_string_equal(c.binds[0], "tcp://10.0.0.1:3001");
    assert_string_equal(c.binds[1], "unix:///tmp/s.sock");
    assert_string_equal(c.tag, "x#{y}}");
    assert_string_equal(c.pidfile, "no #{interpolation}");
    sv_config_free(&c);
    clear_env();
    expect_error("tag \"a#{}\"\n", "puma.rb:1: empty #{} in a string");
    expect_error("tag \"a#{1 +}\"\n", "puma.rb:1: syntax error: unexpected end of file (expected a value)");
    expect_error("x = 1\ntag \"#{x x}\"\n", "puma.rb:2: syntax error: unexpected 'x' (expected '}' closing #{)");
    expect_error("tag \"#{1\n", "puma.rb:1: unterminated string (a \" opened here is never closed)");
}

static void test_ruby_env_and_methods(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    clear_env();
    setenv("SV_TEST_A", "  ", 1);
    const char *text = "threads_count = ENV.fetch(\"RAILS_MAX_THREADS\") { 5 }\n"
                       "min = ENV.fetch(\"RAILS_MIN_THREADS\") {\n  if ENV.key?(\"SV_TEST_B\")\n    1\n  else\n"
                       "    threads_count\n  end\n}\n"
                       "threads min, threads_count\n"
                       "workers ENV[\"SV_TEST_A\"].blank? ? 2 : 3\n"
                       "max_headers ENV[\"SV_TEST_B\"].presence&.to_i || 7\n"
                       "tag %w[a b c].include?(\"b\") ? [4, 9, 2].max.to_s : \"no\"\n"
                       "x ||= \"first\"\nx ||= \"second\"\npidfile x\n"
                       "environment \"PROD\".downcase.to_sym\n"
                       "max_keep_alive Integer(\"oops\", exception: false) || 11\n"
                       "ENV[\"SV_TEST_B\"] ||= \"42\"\nmax_requests ENV[\"SV_TEST_B\"].to_i\n";
    assert_int_equal(parse(&c, text, &d), 0);
    assert_int_equal(c.min_threads, 5);
    assert_int_equal(c.max_threads, 5);
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.max_headers, 7);
    assert_string_equal(c.tag, "9");
    assert_string_equal(c.pidfile, "first");
    assert_string_equal(c.environment, "prod");
    assert_int_equal(c.max_keep_alive, 11);
    assert_int_equal(c.max_requests, 42);
    assert_string_equal(getenv("SV_TEST_B"), "42");
    sv_config_free(&c);
    /* now SV_TEST_B is set (by the file itself, as Puma's master would) */
    assert_int_equal(parse(&c, text, &d), 0);
    assert_int_equal(c.min_threads, 1);
    assert_int_equal(c.max_headers, 42);
    sv_config_free(&c);
    clear_env();
    assert_int_equal(parse(&c, "lo, hi = 2, 6\nthreads lo, hi\na, b = \"3:4\".split(\":\")\nworkers b\n", &d), 0);
    assert_int_equal(c.min_threads, 2);
    assert_int_equal(c.max_threads, 6);
    assert_int_equal(c.workers, 4);
    sv_config_free(&c);
    expect_error("workers nil.positive?\n", "puma.rb:1: undefined method 'positive?' for nil");
    expect_error("workers Integer(\"1\", 2)\n", "puma.rb:1: Integer(): serval reads one argument (and exception: "
                                                "false)");
}

static void test_ruby_cpus_and_files(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    clear_env();
    assert_int_equal(parse(&c, "workers Etc.nprocessors\nmax_headers Concurrent.processor_count\n"
                               "max_keep_alive Concurrent.physical_processor_count\n"
                               "phased_restart_batch Concurrent.available_processor_count.floor\n"
                               "directory File.expand_path(\"../srv/./app\", \"/x/y\")\n"
                               "pidfile File.join(\"/run/\", \"/app\", \"p.pid\")\n"
                               "tag File.basename(File.dirname(\"/a/b/c.rb\"))\n",
                           &d),
                     0);
    assert_int_equal(c.workers, sv_cfg_cpu_count());
    assert_int_equal(c.max_headers, sv_cfg_cpu_count());
    assert_true(c.max_keep_alive >= 1 && c.max_keep_alive <= sv_cfg_cpu_count());
    assert_true(c.phased_restart_batch >= 1 && c.phased_restart_batch <= sv_cfg_cpu_count());
    assert_string_equal(c.directory, "/x/srv/app");
    assert_string_equal(c.pidfile, "/run/app/p.pid");
    assert_string_equal(c.tag, "b");
    sv_config_free(&c);
    /* the JRuby and Windows guards read as MRI on Linux */
    assert_int_equal(parse(&c, "workers 3 unless Gem.win_platform?\nthreads 2, 2 if RUBY_ENGINE == 'ruby'\n"
                               "preload_app! RUBY_PLATFORM.end_with?(\"linux\")\n",
                           &d),
                     0);
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.max_threads, 2);
    assert_true(c.preload);
    sv_config_free(&c);
    /* __dir__ is the config file's directory, absolute */
    sv_config_defaults(&c);
    assert_int_equal(sv_config_parse_text(&c, "/etc/app/config/puma.rb", "directory File.expand_path(\"..\", __dir__)\n",
                                          &d),
                     0);
    assert_string_equal(c.directory, "/etc/app");
    sv_config_free(&c);
}

/* Valid Ruby that serval does not evaluate: a warning, the statement skipped, the rest applied. */
static void test_ruby_soft_failures(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    clear_env();
    const char *text = "fmt = Foo::Bar.new\nlog_requests fmt\n"
                       "def per_worker(i)\n  i * 2\nend\n"
                       "worker_boot_timeout per_worker(3) + 1\n"
                       "if Rails.env.production?\n  workers 9\nelse\n  workers 8\nend\n"
                       "threads 1, 2\nworkers 3 if ENV.fetch(\"X_UNSET\", \"a\").squish == \"a\"\n";
    assert_int_equal(parse(&c, text, &d), 0);
    assert_int_equal(c.max_threads, 2);
    assert_int_equal(c.workers, 0);
    assert_false(c.log_requests);
    assert_true(c.worker_boot_timeout == 60);
    assert_int_equal(c.n_warnings, 6);
    const char *want[] = {
        "puma.rb:1: warning: 'fmt = ...' skipped: serval does not know Foo::Bar.new",
        "puma.rb:2: warning: 'log_requests' skipped: fmt could not be evaluated at line 1",
        "puma.rb:3: warning: 'def per_worker' skipped: serval does not run Ruby methods",
        "puma.rb:6: warning: 'worker_boot_timeout' skipped: per_worker is a method defined in the file",
        "puma.rb:7: warning: 'if (all its branches)' skipped: serval does not know Rails.env",
        "puma.rb:13: warning: 'workers' skipped: serval does not know the method .squish (called on \"a\")",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (!strstr(c.warnings, want[i]))
            print_error("warnings <%s> lack <%s>\n", c.warnings, want[i]);
        assert_non_null(strstr(c.warnings, want[i]));
    }
    sv_config_free(&c);
    /* a lowercase name nobody assigned is a typo, not Ruby serval lacks */
    expect_error("workers wrker_count\n", "puma.rb:1: undefined local variable 'wrker_count' (assign it first: "
                                          "wrker_count = value; or, meant as a string, quote it: \"wrker_count\")");
}

/* Malformed expressions: one line, file:line, what was expected. */
static void test_ruby_malformed(void **state)
{
    expect_error("workers 1\nworkers (1 +\n", "puma.rb:3: syntax error: unexpected end of file (expected a value)");
    expect_error("x = \n", "puma.rb:2: syntax error: unexpected end of file (expected a value)");
    expect_error("workers [1, 2\n", "puma.rb:2: syntax error: unexpected end of file (expected ',' or ']')");
    expect_error("n = if true\n 1\n", "puma.rb:3: syntax error: unexpected end of file (expected 'else', 'elsif' "
                                      "or 'end' (a value if holds one expression per branch))");
    expect_error("workers 2 if 1 <\n", "puma.rb:2: syntax error: unexpected end of file (expected a value)");
    expect_error("workers 2 if (1 < 2\n", "puma.rb:2: syntax error: unexpected end of file (expected ')')");
    expect_error("workers 1 ==\n", "puma.rb:2: syntax error: unexpected end of file (expected a value)");
    expect_error("workers File.\n", "puma.rb:2: syntax error: unexpected end of file (expected a method name after "
                                    "'.')");
    expect_error("workers File.(1)\n", "puma.rb:1: syntax error: unexpected '(' (expected a method name after '.')");
    expect_error("threads 1,, 2\n", "puma.rb:1: syntax error: unexpected ',' (expected a value)");
    expect_error("workers 1\n)\n", "puma.rb:2: syntax error: unexpected ')' (expected a directive)");
}

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

static void test_check_paths(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    sv_config_defaults(&c);
    assert_int_equal(sv_config_check_paths(&c, &d), 0);
    assert_int_equal(sv_config_apply(&c, "pidfile", "'/nonexistent-dir/x.pid'", &d), 0);
    assert_int_equal(sv_config_check_paths(&c, &d), SV_ECONFIG);
    assert_string_equal(d.msg, "serval: pidfile '/nonexistent-dir/x.pid' cannot be created: directory "
                               "'/nonexistent-dir' does not exist");
    assert_int_equal(sv_config_apply(&c, "pidfile", "'x.pid'", &d), 0);
    assert_int_equal(sv_config_apply(&c, "state_path", "'/tmp'", &d), 0);
    assert_int_equal(sv_config_check_paths(&c, &d), SV_ECONFIG);
    assert_string_equal(d.msg, "serval: state_path '/tmp' is a directory");
    assert_int_equal(sv_config_apply(&c, "state_path", "'s.yml'", &d), 0);
    assert_int_equal(sv_config_apply(&c, "bind", "'unix:///nonexistent-dir/s.sock'", &d), 0);
    assert_int_equal(sv_config_check_paths(&c, &d), SV_ECONFIG);
    assert_string_equal(d.msg, "serval: bind 'unix:///nonexistent-dir/s.sock': directory '/nonexistent-dir' does "
                               "not exist");
    sv_config_free(&c);
}

static void test_bind_parameters(void **state)
{
    expect_ok("bind \"unix:///tmp/a.sock?umask=0111&mode=0660&backlog=64\"\n");
    expect_ok("bind \"tcp://127.0.0.1:1?low_latency=true\"\n");
    expect_error("bind \"unix:///tmp/a.sock?umask=9\"\n",
                 "puma.rb:1: bad bind 'unix:///tmp/a.sock?umask=9': umask must be octal, e.g. umask=0111");
    expect_error("bind \"tcp://127.0.0.1:1?low_latency=false\"\n",
                 "puma.rb:1: bad bind 'tcp://127.0.0.1:1?low_latency=false': low_latency=false is not supported "
                 "(serval always sets TCP_NODELAY; drop the parameter)");
    expect_error("bind \"tcp://127.0.0.1:1?reuse_port=true\"\n",
                 "puma.rb:1: bad bind 'tcp://127.0.0.1:1?reuse_port=true': unknown parameter 'reuse_port'");
}

static void test_compat_directives(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "enable_keep_alives false\nhttp_content_length_limit 1_000_000\n"
                               "bind \"tcp://127.0.0.1:1\"\nclear_binds!\nbind \"tcp://127.0.0.1:2\"\n",
                           &d),
                     0);
    assert_int_equal(c.max_keep_alive, 1);
    assert_int_equal(c.max_body_size, 1000000);
    assert_int_equal(c.n_binds, 1);
    assert_string_equal(c.binds[0], "tcp://127.0.0.1:2");
    assert_null(c.warnings);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "http_content_length_limit nil\n", &d), 0);
    assert_int_equal(c.max_body_size, 0);
    sv_config_free(&c);
    /* Puma 7's: what serval does already, a warning where it cannot, no limit as serval's 0 */
    assert_int_equal(parse(&c, "allow_underscore_headers\nallow_underscore_headers true\n"
                               "max_keep_alive Float::INFINITY\n", &d), 0);
    assert_null(c.warnings);
    assert_int_equal(c.max_keep_alive, 0);
    sv_config_free(&c);
    expect_warning("allow_underscore_headers false\n",
                   "puma.rb:1: warning: allow_underscore_headers false is not honoured: serval hands the app every "
                   "header under its own name");
    expect_warning("max_io_threads 5\n", "puma.rb:1: warning: Puma's max_io_threads is not supported by serval: "
                                         "skipped (hint: serval has no IO-bound thread class");
    expect_error("workers Float::INFINITY\n", "puma.rb:1: workers expects a whole number, got Infinity");
}

/* ---- directives ------------------------------------------------------ */

static void test_workers(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "workers :auto\n", &d), 0);
    assert_int_equal(c.workers, sv_cfg_cpu_count());
    assert_true(c.workers >= 1);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "workers \"auto\"\nworkers \"3\"\n", &d), 0);
    assert_int_equal(c.workers, 3);
    sv_config_free(&c);
    expect_error("workers \"abc\"\n", "puma.rb:1: workers expects a whole number or :auto, got \"abc\"");
    /* a fractional CPU count (a cgroup quota) is cut, as Puma's count.to_i, with a warning */
    expect_warning("workers 2.5\n", "puma.rb:1: warning: workers 2.5 taken as 2, as Puma does (count.to_i)");
    expect_error("workers 0.5\n", "puma.rb:1: workers expects a whole number or :auto, got 0.5");
    /* Concurrent.available_processor_count is a Float: a whole one counts */
    assert_int_equal(parse(&c, "workers 2.0\n", &d), 0);
    assert_int_equal(c.workers, 2);
    sv_config_free(&c);
    expect_error("workers 1025\n", "puma.rb:1: workers must be at most 1024 (got 1025)");
    expect_error("workers\n", "puma.rb:1: workers expects 1 argument, got 0");
    expect_error("workers 1, 2\n", "puma.rb:1: workers expects 1 argument, got 2");
}

static void test_threads(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "threads 8\n", &d), 0);
    assert_int_equal(c.min_threads, 8);
    assert_int_equal(c.max_threads, 8);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "threads 0, 1024\n", &d), 0);
    assert_int_equal(c.max_threads, 1024);
    sv_config_free(&c);
    expect_error("threads -1, 4\n", "puma.rb:1: threads minimum must be at least 0 (got -1)");
    expect_error("threads 0, 0\n", "puma.rb:1: threads maximum must be at least 1 (got 0)");
    expect_error("threads 1, 1025\n", "puma.rb:1: threads maximum must be at most 1024 (got 1025)");
    expect_error("threads 8, 2\n", "puma.rb:1: threads minimum (8) must not exceed the maximum (2)");
    expect_error("threads 1, \"x\"\n", "puma.rb:1: threads expects a whole number, got \"x\"");
    expect_error("threads\n", "puma.rb:1: threads expects at least 1 argument, got 0");
}

static void test_bind_and_port(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "bind \"unix:///tmp/s.sock?mode=0600\"\nport 3000, \"127.0.0.1\"\nport \"3001\", \"::1\"\n"
                               "port 3002, \"[::]\"\nport 3003, :localhost\n",
                           &d),
                     0);
    assert_int_equal(c.n_binds, 5);
    assert_string_equal(c.binds[0], "unix:///tmp/s.sock?mode=0600");
    assert_string_equal(c.binds[1], "tcp://127.0.0.1:3000");
    assert_string_equal(c.binds[2], "tcp://[::1]:3001");
    assert_string_equal(c.binds[3], "tcp://[::]:3002");
    assert_string_equal(c.binds[4], "tcp://localhost:3003");
    assert_int_equal(sv_config_bind_count(&c), 5);
    assert_string_equal(sv_config_bind(&c, 4), "tcp://localhost:3003");
    sv_config_free(&c);
    expect_error("bind \"http://0.0.0.0:80\"\n",
                 "puma.rb:1: bad bind 'http://0.0.0.0:80': expected tcp://HOST:PORT or unix://PATH");
    expect_error("bind \"ssl://0.0.0.0:443\"\n",
                 "puma.rb:1: bad bind 'ssl://0.0.0.0:443': ssl:// needs cert=PATH&key=PATH (a key for every cert)");
    expect_error("bind \"ssl://0.0.0.0:443?cert=c&key=k&verify_mode=peer\"\n",
                 "puma.rb:1: bad bind 'ssl://0.0.0.0:443': verify_mode peer needs ca=PATH (the CAs that sign client "
                 "certificates)");
    expect_error("bind \"ssl://0.0.0.0:443?cert=c&key=k&no_tlsv1_1=false\"\n",
                 "puma.rb:1: bad bind 'ssl://0.0.0.0:443': no_tlsv1_1=false: serval never enables TLS 1.0 or 1.1 "
                 "(delete the option)");
    expect_error("bind \"ssl://0.0.0.0:443?cert=c&key=k&cert_pem=x\"\n",
                 "puma.rb:1: bad bind 'ssl://0.0.0.0:443': cert_pem goes in ssl_bind's options, not in a bind URI "
                 "(hint: in a URI, give the PEM file's path as cert)");
    expect_error("bind \"ssl://0.0.0.0:443?cert=c&key=k&sni=x\"\n",
                 "puma.rb:1: bad bind 'ssl://0.0.0.0:443': unknown ssl parameter 'sni' (known: cert, key, ca, "
                 "verify_mode, ssl_cipher_filter, ssl_ciphersuites, key_password_command, min_version, no_tlsv1, "
                 "no_tlsv1_1, reuse, backlog, low_latency)");
    {
        sv_config_t t;
        sv_diag_t td;
        int trc = parse(&t, "ssl_bind \"::1\", 9443, { cert: \"/a b/c.pem\", key: :k, verify_mode: \"none\", "
                            "no_tlsv1_1: true, cert: \"d&e\", key: \"f\" }\n", &td);
        assert_int_equal(trc, 0);
        assert_string_equal(t.binds[0], "ssl://[::1]:9443?cert=/a%20b/c.pem&key=k&verify_mode=none&no_tlsv1_1=true"
                                        "&cert=d%26e&key=f");
        sv_config_free(&t);
    }
    {
        /* Puma's cert_pem/key_pem: the text goes to the store, the URI names it store:N (Puma's spelling) */
        sv_config_t t;
        sv_diag_t td;
        int trc = parse(&t, "ssl_bind \"127.0.0.1\", 9443, { cert_pem: \"-----BEGIN CERT\nA\n\", "
                            "key_pem: \"-----BEGIN KEY\nB\n\" }\n", &td);
        assert_int_equal(trc, 0);
        int ci = sv_tls_store_pem("-----BEGIN CERT\nA\n"), ki = sv_tls_store_pem("-----BEGIN KEY\nB\n");
        assert_true(ci >= 0 && ki >= 0 && ci != ki);
        char want[128];
        snprintf(want, sizeof(want), "ssl://127.0.0.1:9443?cert=store:%d&key=store:%d", ci, ki);
        assert_string_equal(t.binds[0], want);
        sv_config_free(&t);
        /* reading the config again gives the same URI (the hand-over key of a hot restart) */
        assert_int_equal(parse(&t, "ssl_bind \"127.0.0.1\", 9443, { cert_pem: \"-----BEGIN CERT\nA\n\", "
                                   "key_pem: \"-----BEGIN KEY\nB\n\" }\n", &td), 0);
        assert_string_equal(t.binds[0], want);
        sv_config_free(&t);
    }
    {
        /* Puma's reuse: { size:, timeout: } (a session cache size; serval resumes by tickets) */
        sv_config_t t;
        sv_diag_t td;
        assert_int_equal(parse(&t, "ssl_bind \"h\", 1, { cert: \"c\", key: \"k\", reuse: { size: 2_000, "
                                   "timeout: 20 } }\n", &td), 0);
        assert_string_equal(t.binds[0], "ssl://h:1?cert=c&key=k&reuse=2000,20");
        sv_config_free(&t);
    }
    expect_error("ssl_bind \"127.0.0.1\", 9443, { cert_pem: \"\", key: \"k\" }\n",
                 "puma.rb:1: ssl_bind: cert_pem is empty (hint: is its ENV variable set?)");
    expect_error("port 1\nport 1\n", "puma.rb:2: bind 'tcp://0.0.0.0:1' is given twice (hint: keep one; port N is "
                                     "bind \"tcp://0.0.0.0:N\")");
    /* set_default_host: the host of a later port without one in the file (Puma's) */
    sv_config_t dh, dh2;
    assert_int_equal(parse(&dh, "port 3000\nset_default_host \"::\"\nport 3001\nport 3002, \"127.0.0.1\"\n", &d), 0);
    assert_int_equal(dh.n_binds, 3);
    assert_string_equal(dh.binds[0], "tcp://0.0.0.0:3000");
    assert_string_equal(dh.binds[1], "tcp://[::]:3001");
    assert_string_equal(dh.binds[2], "tcp://127.0.0.1:3002");
    assert_string_equal(dh.default_host, "::");
    assert_int_equal(sv_config_copy(&dh2, &dh), 0);
    assert_string_equal(dh2.default_host, "::");
    sv_config_free(&dh2);
    sv_config_free(&dh);
    expect_error("port 65536\n", "puma.rb:1: port must be at most 65535 (got 65536)");
    expect_error("port \"http\"\n", "puma.rb:1: port expects a whole number, got \"http\"");
    expect_error("bind 80\n", "puma.rb:1: bind expects a string, got 80");
    sv_buf_t text = SV_BUF_INIT;
    for (int i = 1; i <= SV_CONFIG_MAX_BINDS + 1; i++)
        sv_buf_printf(&text, "port %d\n", i);
    expect_error(text.data, "puma.rb:17: too many binds (at most 16)");
    sv_buf_free(&text);
}

static void test_fork_worker(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "workers 2\nfork_worker\n", &d), 0);
    assert_true(c.fork_worker);
    assert_int_equal(c.n_refork_thresholds, 1);
    assert_int_equal(c.refork_thresholds[0], 1000);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "fork_worker 0\n", &d), 0);
    assert_true(c.fork_worker);
    assert_int_equal(c.n_refork_thresholds, 0);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "fork_worker 500, 1_000, \"4000\"\n", &d), 0);
    assert_int_equal(c.n_refork_thresholds, 3);
    assert_int_equal(c.refork_thresholds[0], 500);
    assert_int_equal(c.refork_thresholds[2], 4000);
    sv_config_free(&c);
    expect_error("fork_worker 100, 50\n",
                 "puma.rb:1: fork_worker request counts must be strictly ascending (50 after 100)");
    expect_error("fork_worker 100, 100\n",
                 "puma.rb:1: fork_worker request counts must be strictly ascending (100 after 100)");
    expect_error("fork_worker 0, 100\n",
                 "puma.rb:1: fork_worker request counts must be at least 1 (got 0; fork_worker 0 alone turns "
                 "automatic refork off)");
    expect_error("fork_worker -5\n",
                 "puma.rb:1: fork_worker request counts must be at least 1 (got -5; fork_worker 0 alone turns "
                 "automatic refork off)");
    expect_error("fork_worker 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\n",
                 "puma.rb:1: fork_worker expects at most 16 arguments, got 17");
}

static void test_control_app(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "activate_control_app \"tcp://127.0.0.1:9293\"\n", &d), 0);
    assert_string_equal(c.control_url, "tcp://127.0.0.1:9293");
    assert_null(c.control_token);
    assert_false(c.control_no_token);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "activate_control_app \"tcp://127.0.0.1:9293\", { auth_token: \"a\" }\n"
                               "activate_control_app \"tcp://127.0.0.1:9293\", { no_token: true }\n",
                           &d),
                     0);
    assert_null(c.control_token);
    assert_true(c.control_no_token);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "activate_control_app 'unix:///tmp/c.sock', auth_token: 'none'\n", &d), 0);
    assert_true(c.control_no_token);
    sv_config_free(&c);
    expect_error("activate_control_app \"tcp://127.0.0.1:9293\", { auth_token: \"a\", tls: true }\n",
                 "puma.rb:1: activate_control_app: unknown option 'tls' (known: auth_token, no_token, "
                 "data_only, data_url, allow_remote, umask)");
    expect_error("activate_control_app \"tcp://x\"\n",
                 "puma.rb:1: control URL: bad bind 'tcp://x': expected tcp://HOST:PORT");
    expect_error("activate_control_app\n",
                 "puma.rb:1: control URL 'auto' is not supported (hint: give a tcp://127.0.0.1:PORT or "
                 "unix://PATH URL)");
    expect_error("activate_control_app \"tcp://127.0.0.1:1\", \"secret\"\n",
                 "puma.rb:1: activate_control_app expects a hash of options such as { auth_token: \"secret\" }, "
                 "got \"secret\"");
    expect_error("activate_control_app \"tcp://127.0.0.1:1\", { no_token: 1 }\n",
                 "puma.rb:1: no_token expects true or false, got 1");
}

static void test_redirects_and_logging(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "stdout_redirect \"o.log\"\nlog_requests\n", &d), 0);
    assert_string_equal(c.stdout_redirect, "o.log");
    assert_null(c.stderr_redirect);
    assert_false(c.redirect_append);
    assert_true(c.log_requests);
    assert_false(c.quiet);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "stdout_redirect \"o.log\", \"e.log\", true\nstdout_redirect nil, \"e2.log\"\n"
                               "quiet\n",
                           &d),
                     0);
    assert_null(c.stdout_redirect);
    assert_string_equal(c.stderr_redirect, "e2.log");
    assert_false(c.redirect_append);
    assert_true(c.quiet);
    assert_false(c.log_requests);
    sv_config_free(&c);
    expect_error("stdout_redirect \"o\", \"e\", \"yes\"\n", "puma.rb:1: stdout_redirect expects true or false, got \"yes\"");
    expect_error("stdout_redirect \"\"\n", "puma.rb:1: stdout_redirect must not be empty");
    expect_error("log_requests 1, 2\n", "puma.rb:1: log_requests expects at most 1 argument, got 2");
}

static void test_durations(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "persistent_timeout \"20\"\nforce_shutdown_after :forever\nworker_timeout 6\n"
                               "worker_check_interval 0.5\nwait_for_less_busy_worker 0\nworker_shutdown_timeout 0\n",
                           &d),
                     0);
    assert_true(c.persistent_timeout == 20);
    assert_true(c.force_shutdown_after == -1);
    assert_true(c.worker_timeout == 6);
    assert_true(c.worker_check_interval == 0.5);
    assert_true(c.wait_for_less_busy_worker == 0);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "wait_for_less_busy_worker 0.5\nwait_for_less_busy_worker\n"
                               "force_shutdown_after \"7.5\"\n",
                           &d),
                     0);
    assert_true(c.wait_for_less_busy_worker == 0.005);
    assert_true(c.force_shutdown_after == 7.5);
    sv_config_free(&c);
    expect_error("worker_timeout 2\n", "puma.rb:1: worker_timeout must be at least 6 (got 2)");
    expect_error("persistent_timeout 0\n", "puma.rb:1: persistent_timeout must be greater than 0 (got 0)");
    expect_error("worker_check_interval -1\n", "puma.rb:1: worker_check_interval must be greater than 0 (got -1)");
    expect_error("first_data_timeout 99999999999\n",
                 "puma.rb:1: first_data_timeout must be at most 31536000 (got 99999999999)");
    expect_error("wait_for_less_busy_worker 2\n", "puma.rb:1: wait_for_less_busy_worker must be at most 1 (got 2)");
    expect_error("request_timeout \"soon\"\n", "puma.rb:1: request_timeout expects a number of seconds, got \"soon\"");
    expect_error("request_timeout \"inf\"\n", "puma.rb:1: request_timeout expects a number of seconds, got \"inf\"");
    expect_error("force_shutdown_after :later\n",
                 "puma.rb:1: force_shutdown_after expects a number of seconds, :forever or :immediately, got :later");
    expect_error("force_shutdown_after nil\n",
                 "puma.rb:1: force_shutdown_after expects a number of seconds, :forever or :immediately, got nil "
                 "(hint: ENV[\"NAME\"] is nil when NAME is unset: ENV.fetch(\"NAME\", DEFAULT) gives a default)");
    expect_error("force_shutdown_after -1\n", "puma.rb:1: force_shutdown_after must be at least 0 (got -1)");
}

static void test_sizes(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "max_request_line \"16KB\"\nmax_header_size \"1MB\"\nmax_body_size \"2GB\"\n"
                               "body_buffer_size \"64k\"\nmax_worker_memory \"512 mb\"\n",
                           &d),
                     0);
    assert_int_equal(c.max_request_line, 16 * 1024);
    assert_int_equal(c.max_header_size, 1024 * 1024);
    assert_int_equal(c.max_body_size, 2LL * 1024 * 1024 * 1024);
    assert_int_equal(c.body_buffer_size, 64 * 1024);
    assert_int_equal(c.max_worker_memory, 512LL * 1024 * 1024);
    sv_config_free(&c);
    assert_int_equal(parse(&c, "max_body_size 0\nbody_buffer_size 4096\nmax_worker_memory \"1g\"\n"
                               "max_request_line \"1_024B\"\n",
                           &d),
                     0);
    assert_int_equal(c.max_body_size, 0);
    assert_int_equal(c.body_buffer_size, 4096);
    assert_int_equal(c.max_worker_memory, 1LL << 30);
    assert_int_equal(c.max_request_line, 1024);
    sv_config_free(&c);
    expect_error("max_body_size \"1XB\"\n",
                 "puma.rb:1: max_body_size expects a size (bytes, or with a unit: 64KB, 1MB, 2GB), got \"1XB\"");
    expect_error("max_body_size \"1.5MB\"\n",
                 "puma.rb:1: max_body_size expects a size (bytes, or with a unit: 64KB, 1MB, 2GB), got \"1.5MB\"");
    expect_error("max_body_size -1\n", "puma.rb:1: max_body_size must be at least 0 (got -1)");
    expect_error("max_worker_memory \"99999999999999GB\"\n",
                 "puma.rb:1: max_worker_memory expects a size (bytes, or with a unit: 64KB, 1MB, 2GB), got "
                 "\"99999999999999GB\"");
    expect_error("max_request_line 10\n", "puma.rb:1: max_request_line must be at least 64 (got 10)");
    expect_error("max_header_size \"1GB\"\n", "puma.rb:1: max_header_size must be at most 67108864 (got 1073741824)");
}

static void test_other_directives(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "max_keep_alive 0\nmax_headers 50\nphased_restart_batch 2\n"
                               "phased_restart_order \"stop_first\"\nhot_restart_preflight false\n"
                               "max_requests 1000\nnakayoshi_fork\nsilence_single_worker_warning\n"
                               "plugin \"tmp_restart\"\napp \"x.so\"\nworker_culling_strategy :youngest\n"
                               "environment :staging\ntag \"\"\n",
                           &d),
                     0);
    assert_int_equal(c.max_keep_alive, 0);
    assert_int_equal(c.max_headers, 50);
    assert_int_equal(c.phased_restart_batch, 2);
    assert_false(c.phased_restart_surge);
    assert_false(c.hot_restart_preflight);
    assert_int_equal(c.max_requests, 1000);
    assert_int_equal(c.max_requests_jitter, 0);
    assert_true(c.nakayoshi_fork);
    assert_true(c.silence_single_worker_warning);
    assert_true(c.tmp_restart);
    assert_string_equal(c.app_path, "x.so");
    assert_string_equal(c.environment, "staging");
    assert_string_equal(c.tag, "");
    sv_config_free(&c);
    expect_error("phased_restart_batch 0\n", "puma.rb:1: phased_restart_batch must be at least 1 (got 0)");
    expect_error("phased_restart_order :fast\n",
                 "puma.rb:1: phased_restart_order expects :surge or :stop_first, got :fast");
    expect_error("worker_culling_strategy \"random\"\n",
                 "puma.rb:1: worker_culling_strategy expects :youngest or :oldest, got \"random\"");
    expect_error("hot_restart_preflight\n", "puma.rb:1: hot_restart_preflight expects 1 argument, got 0");
    expect_error("max_requests 10, -1\n", "puma.rb:1: max_requests jitter must be at least 0 (got -1)");
    expect_error("max_headers 0\n", "puma.rb:1: max_headers must be at least 1 (got 0)");
    expect_warning("plugin :puma_stats\n", "plugin :puma_stats is a Ruby plugin");
    if (0) expect_error("plugin :puma_stats\n",
                 "puma.rb:1: plugin :puma_stats is not supported (hint: serval runs no Ruby plugins; only "
                 "plugin :tmp_restart is built in)");
    expect_error("plugin 1\n", "puma.rb:1: plugin expects a plugin name such as :tmp_restart, got 1");
    expect_error("pidfile 3\n", "puma.rb:1: pidfile expects a string, got 3");
    expect_error("directory \"\"\n", "puma.rb:1: directory must not be empty");
    expect_error("silence_single_worker_warning 1, 2\n",
                 "puma.rb:1: silence_single_worker_warning expects at most 1 argument, got 2");
}

static void test_repeated_strings_replace(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "directory \"/a\"\ndirectory \"/b\"\nenvironment \"x\"\nenvironment \"y\"\n", &d), 0);
    assert_string_equal(c.directory, "/b");
    assert_string_equal(c.environment, "y");
    sv_config_free(&c);
    sv_config_free(&c); /* freeing twice is harmless */
}

/* ---- validate, apply, copy, json, help ------------------------------- */

static void expect_invalid(const char *text, const char *msg)
{
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, text, &d), 0);
    assert_int_equal(sv_config_validate(&c, &d), SV_ECONFIG);
    assert_string_equal(d.msg, msg);
    sv_config_free(&c);
}

static void test_validate(void **state)
{
    /* a rule between settings names the line of the setting it is about */
    expect_invalid("worker_check_interval 70\n",
                   "puma.rb:1: worker_timeout (60) must be greater than worker_check_interval (70)");
    expect_invalid("worker_timeout 10\nworker_check_interval 10\n",
                   "puma.rb:1: worker_timeout (10) must be greater than worker_check_interval (10)");
    expect_invalid("workers 0\n\nfork_worker\n",
                   "puma.rb:3: fork_worker needs cluster mode (hint: set workers 1 or more, or pass -w N)");
    expect_invalid("max_body_size \"1MB\"\nbody_buffer_size \"2MB\"\n",
                   "puma.rb:2: body_buffer_size (2097152) must not exceed max_body_size (1048576)");
    expect_invalid("max_request_line \"64KB\"\nmax_header_size \"32KB\"\n",
                   "puma.rb:1: max_request_line (65536) must not exceed max_header_size (32768)");
    expect_invalid("workers 2\nmax_requests 10, 10\n",
                   "puma.rb:2: max_requests jitter (10) must be less than max_requests (10)");
    /* an unlimited body has no buffer bound; no refork request count needs none either */
    sv_config_t c;
    sv_diag_t d;
    assert_int_equal(parse(&c, "max_body_size 0\nbody_buffer_size \"1GB\"\nworkers 1\nfork_worker 0\nmax_requests 0, 5\n", &d), 0);
    assert_int_equal(sv_config_validate(&c, &d), 0);
    /* min > max can only come from the environment; validate still catches it */
    c.min_threads = 9;
    assert_int_equal(sv_config_validate(&c, &d), SV_ECONFIG);
    assert_string_equal(d.msg, "serval: threads minimum (9) must not exceed the maximum (5)");
    c.min_threads = 0;
    c.control_token = strdup("t");
    assert_int_equal(sv_config_validate(&c, &d), SV_ECONFIG);
    assert_string_equal(d.msg, "serval: a control token needs a control server (hint: activate_control_app "
                               "\"URL\" or --control-url URL)");
    sv_config_free(&c);
}

static void test_apply(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    sv_config_defaults(&c);
    assert_int_equal(sv_config_apply(&c, "threads", "2, 8", &d), 0);
    assert_int_equal(c.min_threads, 2);
    assert_int_equal(c.max_threads, 8);
    assert_int_equal(sv_config_apply(&c, "preload_app!", "", &d), 0);
    assert_true(c.preload);
    assert_int_equal(sv_config_apply(&c, "preload_app!", NULL, &d), 0);
    assert_int_equal(sv_config_apply(&c, "control_url", "\"tcp://127.0.0.1:1\"", &d), 0);
    assert_string_equal(c.control_url, "tcp://127.0.0.1:1");
    assert_int_equal(sv_config_apply(&c, "workers", "'x'", &d), SV_ECONFIG);
    assert_string_equal(d.msg, "serval: workers expects a whole number or :auto, got \"x\"");
    assert_int_equal(sv_config_apply(&c, "nope", "1", &d), SV_ECONFIG);
    assert_string_equal(d.msg, "serval: unknown directive 'nope' (hint: see docs/configuration.md)");
    assert_int_equal(sv_config_apply(&c, "threads", "1 2", &d), SV_ECONFIG);
    assert_string_equal(d.msg, "serval: syntax error: unexpected '2' (expected ',' or the end of the arguments)");
    assert_int_equal(sv_config_apply(&c, "threads", "1 if true", &d), SV_ECONFIG);
    sv_config_free(&c);
}

static void test_copy(void **state)
{
    sv_config_t a, b;
    sv_diag_t d;
    assert_int_equal(parse(&a, contract_example, &d), 0);
    a.config_file = strdup("config/puma.rb");
    assert_int_equal(sv_config_copy(&b, &a), 0);
    assert_ptr_not_equal(a.directory, b.directory);
    assert_ptr_not_equal(a.binds[0], b.binds[0]);
    assert_string_equal(b.directory, "/srv/app/current");
    assert_string_equal(b.binds[1], "tcp://0.0.0.0:9293");
    assert_string_equal(b.config_file, "config/puma.rb");
    assert_string_equal(b.control_token, "secret");
    assert_int_equal(b.workers, 4);
    char *ja = json_of(&a), *jb = json_of(&b);
    assert_string_equal(ja, jb);
    free(ja);
    free(jb);
    sv_config_free(&a);
    assert_string_equal(b.environment, "production");
    sv_config_free(&b);
}

static void test_json(void **state)
{
    sv_config_t c;
    sv_diag_t d;
    sv_config_defaults(&c);
    char *j = json_of(&c);
    assert_int_equal(j[0], '{');
    assert_int_equal(j[strlen(j) - 1], '}');
    assert_non_null(strstr(j, "\"workers\":0,\"threads\":[0,5]"));
    assert_non_null(strstr(j, "\"bind\":[\"tcp://0.0.0.0:9292\"]"));
    assert_non_null(strstr(j, "\"fork_worker\":false"));
    assert_non_null(strstr(j, "\"force_shutdown_after\":\"forever\""));
    assert_non_null(strstr(j, "\"activate_control_app\":null"));
    assert_non_null(strstr(j, "\"max_body_size\":104857600"));
    assert_non_null(strstr(j, "\"wait_for_less_busy_worker\":0.005"));
    assert_null(strstr(j, "control_url"));
    assert_null(strstr(j, "\"port\""));
    static const char *const keys[] = {
        "workers", "threads", "preload_app!", "fork_worker", "nakayoshi_fork", "worker_culling_strategy",
        "silence_single_worker_warning", "bind", "app", "directory", "environment", "tag",
        "activate_control_app", "state_path", "pidfile", "quiet", "log_requests", "stdout_redirect",
        "persistent_timeout", "first_data_timeout", "request_timeout", "force_shutdown_after",
        "worker_timeout", "worker_boot_timeout", "worker_shutdown_timeout", "worker_check_interval",
        "wait_for_less_busy_worker", "max_keep_alive", "max_request_line", "max_header_size", "max_headers",
        "max_body_size", "body_buffer_size", "phased_restart_batch", "phased_restart_order",
        "hot_restart_preflight", "plugin", "max_requests", "max_worker_memory",
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char k[64];
        snprintf(k, sizeof(k), "\"%s\":", keys[i]);
        assert_non_null(strstr(j, k));
    }
    free(j);
    sv_config_free(&c);

    assert_int_equal(parse(&c, "workers 2\nfork_worker 10, 20\nactivate_control_app \"tcp://127.0.0.1:5\", "
                               "auth_token: \"s3cret\"\nforce_shutdown_after :immediately\nplugin :tmp_restart\n"
                               "stdout_redirect \"o\", nil, true\nmax_requests 100, 10\n",
                           &d),
                     0);
    j = json_of(&c);
    assert_non_null(strstr(j, "\"fork_worker\":[10,20]"));
    assert_non_null(strstr(j, "\"activate_control_app\":{\"url\":\"tcp://127.0.0.1:5\",\"auth\":\"token\"}"));
    assert_null(strstr(j, "s3cret"));
    assert_non_null(strstr(j, "\"force_shutdown_after\":0"));
    assert_non_null(strstr(j, "\"plugin\":[\"tmp_restart\"]"));
    assert_non_null(strstr(j, "\"stdout_redirect\":{\"stdout\":\"o\",\"stderr\":null,\"append\":true}"));
    assert_non_null(strstr(j, "\"max_requests\":[100,10]"));
    free(j);
    sv_config_free(&c);
}

static char *capture_help(void)
{
    char path[] = "/tmp/sv_help_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    sv_config_print_help("serval");
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)n + 1);
    assert_int_equal(pread(fd, text, (size_t)n, 0), n);
    close(fd);
    unlink(path);
    return text;
}

static void test_help(void **state)
{
    char *h = capture_help();
    static const char *const parts[] = {
        "Usage: serval [options] [APP]", "-C, --config PATH", "--no-config", "-w, --workers N",
        "-t, --threads MIN:MAX", "-b, --bind URI", "-p, --port PORT", "--fork-worker [N]", "--preload",
        "--dir DIR", "--control-url URI", "--control-token T", "-S, --state PATH", "--pidfile PATH",
        "-e, --environment ENV", "--tag NAME", "-q, --quiet", "-v, --log-requests", "--redirect-stdout PATH",
        "--redirect-stderr PATH", "--redirect-append", "-V, --version", "-h, --help", "--check",
        "workers N|:auto", "default: 0\n", "threads MIN, MAX", "default: 0, 5", "default: tcp://0.0.0.0:9292",
        "max_request_line SIZE", "default: 8KB", "default: 64KB", "default: 100MB", "default: 1MB",
        "default: 0.005", "default: 65\n", "default: :forever", "worker_timeout SECONDS", "default: :surge",
        "WEB_CONCURRENCY", "docs/configuration.md",
    };
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (!strstr(h, parts[i]))
            print_error("help lacks <%s>\n", parts[i]);
        assert_non_null(strstr(h, parts[i]));
    }
    assert_null(strstr(h, "redirect_stdout"));
    assert_null(strstr(h, "control_token"));
    free(h);
}

static void test_value_helpers(void **state)
{
    int64_t v;
    double f;
    assert_int_equal(sv_cfg_parse_whole(" 1_000 ", &v), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(sv_cfg_parse_whole("-3", &v), 0);
    assert_int_equal(v, -3);
    assert_int_equal(sv_cfg_parse_whole("", &v), -1);
    assert_int_equal(sv_cfg_parse_whole("1_", &v), -1);
    assert_int_equal(sv_cfg_parse_whole("_1", &v), -1);
    assert_int_equal(sv_cfg_parse_whole("9223372036854775808", &v), -1);
    assert_int_equal(sv_cfg_lenient_int("  42abc"), 42);
    assert_int_equal(sv_cfg_lenient_int("_1"), 0);
    assert_int_equal(sv_cfg_lenient_int("x"), 0);
    assert_int_equal(sv_cfg_parse_number("2.5", &f), 0);
    assert_true(f == 2.5);
    assert_int_equal(sv_cfg_parse_number("0x10", &f), -1);
    assert_int_equal(sv_cfg_parse_number("nan", &f), -1);
    sv_value_t a = {.type = SV_V_HASH}, b;
    a.pairs = calloc(1, sizeof(*a.pairs));
    a.npairs = 1;
    a.pairs[0].key = strdup("k");
    a.pairs[0].val.type = SV_V_STR;
    a.pairs[0].val.s = strdup("v");
    assert_int_equal(sv_cfg_value_copy(&b, &a), 0);
    assert_string_equal(b.pairs[0].val.s, "v");
    char out[32];
    sv_cfg_value_inspect(&b, out, sizeof(out));
    assert_string_equal(out, "a hash");
    sv_cfg_value_free(&a);
    sv_cfg_value_free(&b);
}

/* ---- load: flags, env, files ----------------------------------------- */

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
    expect_load_error("serval: -b: bad bind 'nope': expected tcp://HOST:PORT or unix://PATH", "-b", "nope", NULL);
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
                      "tcp://127.0.0.1:PORT or unix://PATH URL)",
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
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_remote_address_and_activation),
        cmocka_unit_test(test_default_bind),
        cmocka_unit_test(test_contract_example),
        cmocka_unit_test(test_docs_examples),
        cmocka_unit_test(test_rails_templates),
        cmocka_unit_test(test_statement_forms),
        cmocka_unit_test(test_embedded_docs_and_end_marker),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_symbols_and_literals),
        cmocka_unit_test(test_env_access),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_operators),
        cmocka_unit_test(test_variables),
        cmocka_unit_test(test_modifiers),
        cmocka_unit_test(test_if_blocks),
        cmocka_unit_test(test_hashes),
        cmocka_unit_test(test_blocks_warned),
        cmocka_unit_test(test_unknown_directives),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_workers),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_bind_and_port),
        cmocka_unit_test(test_fork_worker),
        cmocka_unit_test(test_control_app),
        cmocka_unit_test(test_redirects_and_logging),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_other_directives),
        cmocka_unit_test(test_repeated_strings_replace),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_value_helpers),
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
        cmocka_unit_test(test_ruby_comparisons_and_arithmetic),
        cmocka_unit_test(test_ruby_case_when),
        cmocka_unit_test(test_ruby_strings_and_interpolation),
        cmocka_unit_test(test_ruby_env_and_methods),
        cmocka_unit_test(test_ruby_cpus_and_files),
        cmocka_unit_test(test_ruby_soft_failures),
        cmocka_unit_test(test_ruby_malformed),
        cmocka_unit_test_setup_teardown(test_load_warnings_and_strict, enter_tmpdir, leave_tmpdir),
        cmocka_unit_test(test_check_paths),
        cmocka_unit_test(test_bind_parameters),
        cmocka_unit_test(test_compat_directives),
    };
    clear_env();
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
