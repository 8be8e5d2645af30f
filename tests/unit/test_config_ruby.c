/*
 * test_config_ruby.c: the Ruby that puma.rb files use around their
 * directives (src/config/lex.c, expr.c, eval.c, builtins.c, parse.c):
 * statements, values, operators, variables, conditions, ENV, conversions,
 * methods, and what is skipped with a warning or is a syntax error.
 */
#include "config_test.h"

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
    /* `workers = 4`: valid Ruby Puma ignores silently; named like a directive and never read, it is a warning */
    expect_warning("threads 1, 2\nworkers = 4\n", "puma.rb:2: warning: 'workers = ...' sets a local variable that "
                                                 "nothing reads, not the directive (hint: workers VALUE, without '=')");
    expect_warning("port = 3000 if false\n", "puma.rb:1: warning: 'port = ...' sets a local variable");
    assert_int_equal(parse(&c, "port = 3000\nif false\n  port port\nend\n", &d), 0);
    assert_null(c.warnings); /* read where it does not run: still read */
    sv_config_free(&c);
    /* `if ENV["X"] = "y"`: an assignment where a comparison was meant */
    expect_error("port 3000 if ENV[\"RAILS_ENV\"] = \"production\"\n",
                 "puma.rb:1: syntax error: unexpected '=' (expected end of line; == compares, = assigns)");
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
    /* a value serval cannot evaluate in a multiple assignment: one warning, every name unknown (a fuzz find) */
    assert_int_equal(parse(&c, "a, b, x = Foo.bar, 2, Baz.qux\nworkers 3\n", &d), 0);
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.n_warnings, 1);
    assert_non_null(strstr(c.warnings, "puma.rb:1: warning: 'a, b = ...' skipped"));
    sv_config_free(&c);
    expect_warning("a, b = Foo.bar, 2\nworkers b\n", "puma.rb:2: warning: 'workers' skipped");
    expect_error("workers nil.positive?\n", "puma.rb:1: undefined method 'positive?' for nil");
    /* a failed ENV key frees what it evaluated (a fuzz find, seen under ASan) */
    expect_error("workers ENV[-\"X\"]\n", "puma.rb:1: '-' needs a number");
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

int main(void)
{
    const struct CMUnitTest tests[] = {
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
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_ruby_comparisons_and_arithmetic),
        cmocka_unit_test(test_ruby_case_when),
        cmocka_unit_test(test_ruby_strings_and_interpolation),
        cmocka_unit_test(test_ruby_env_and_methods),
        cmocka_unit_test(test_ruby_cpus_and_files),
        cmocka_unit_test(test_ruby_soft_failures),
        cmocka_unit_test(test_ruby_malformed),
    };
    clear_env();
    return cmocka_run_group_tests_name("config_ruby", tests, NULL, NULL);
}
