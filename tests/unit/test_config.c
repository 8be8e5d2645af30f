/*
 * test_config.c: the directive table and what reads it (src/config/
 * directives.c, args.c, binds.c, control_app.c, compat.c, config.c,
 * value.c, edge.c): defaults, every directive's values and errors, whole
 * real-world files, validate, copy, JSON and --help. The puma.rb language
 * is in test_config_ruby.c, flags/env/files in test_config_load.c.
 */
#include "config_test.h"

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
                 "puma.rb:1: bad bind 'http://0.0.0.0:80': expected tcp://HOST:PORT, unix://PATH or "
                 "ssl://HOST:PORT?cert=PATH&key=PATH");
    /* an ssl:// URI's own form, not tcp://'s */
    expect_error("bind \"ssl://0.0.0.0?cert=c&key=k\"\n",
                 "puma.rb:1: bad bind 'ssl://0.0.0.0?cert=c&key=k': expected ssl://HOST:PORT?cert=PATH&key=PATH");
    expect_error("bind \"ssl://[::1?cert=c&key=k\"\n",
                 "puma.rb:1: bad bind 'ssl://[::1?cert=c&key=k': expected ssl://[IPV6]:PORT?cert=PATH&key=PATH");
    expect_error("bind \"ssl://::1:443?cert=c&key=k\"\n",
                 "puma.rb:1: bad bind 'ssl://::1:443?cert=c&key=k': IPv6 hosts go in brackets, e.g. "
                 "ssl://[::1]:9292");
    expect_error("bind \"tcp://[::1\"\n", "puma.rb:1: bad bind 'tcp://[::1': expected tcp://[IPV6]:PORT");
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
                 "puma.rb:1: control URL 'auto' is not supported (hint: give a tcp://127.0.0.1:PORT, "
                 "unix://PATH or ssl://127.0.0.1:PORT?cert=PATH&key=PATH URL)");
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_remote_address_and_activation),
        cmocka_unit_test(test_default_bind),
        cmocka_unit_test(test_contract_example),
        cmocka_unit_test(test_docs_examples),
        cmocka_unit_test(test_rails_templates),
        cmocka_unit_test(test_unknown_directives),
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
        cmocka_unit_test(test_check_paths),
        cmocka_unit_test(test_bind_parameters),
        cmocka_unit_test(test_compat_directives),
    };
    clear_env();
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
