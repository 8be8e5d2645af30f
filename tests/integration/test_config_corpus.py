"""Real-world puma.rb files (tests/config_corpus/) as their projects ship them.

Each file must be accepted unchanged, with exactly the expected warnings
(file:line, what serval cannot run), and the effective configuration
(`serval --print-config`) must be what Puma would run with. Each case runs
with a clean environment plus the variables it names, so the same file is
checked the way development and production would read it.
"""

import json
import os
import subprocess

import pytest

from conftest import BUILD, ROOT

SERVAL = os.path.join(BUILD, "serval")
CORPUS = os.path.join(ROOT, "tests", "config_corpus")
TESTS_DIR = os.path.join(ROOT, "tests")


def load(name, env=None, *flags):
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    e.update(env or {})
    path = os.path.join(CORPUS, name)
    r = subprocess.run([SERVAL, "-C", path, "--print-config", *flags], capture_output=True, text=True, env=e,
                       timeout=10, cwd=CORPUS)
    warnings = [l for l in r.stderr.splitlines() if l.strip()]
    return r, warnings


def warning_lines(name, warnings):
    """The line numbers the warnings name, checking each is 'FILE:N: warning: ...'."""
    prefix = os.path.join(CORPUS, name) + ":"
    lines = []
    for w in warnings:
        assert w.startswith(prefix) and ": warning: " in w, w
        lines.append(int(w[len(prefix):].split(":", 1)[0]))
    return lines


HOOK = "which serval cannot run: skipped (hint: hooks are C functions of the app"

# (file, env, expected config subset, [(line, part of the warning)])
CASES = [
    ("rails.rb", {}, {"workers": 0, "threads": [3, 3], "environment": "development", "worker_timeout": 3600,
                      "bind": ["tcp://0.0.0.0:3000"], "plugin": ["tmp_restart"], "pidfile": None,
                      "preload_app!": False},
     [(41, "require is Ruby, which serval cannot run")]),
    ("rails.rb", {"RAILS_ENV": "production", "WEB_CONCURRENCY": "3", "RAILS_MAX_THREADS": "5", "PORT": "8080",
                  "PIDFILE": "/run/app.pid"},
     {"workers": 3, "threads": [5, 5], "environment": "production", "worker_timeout": 60, "preload_app!": True,
      "bind": ["tcp://0.0.0.0:8080"], "pidfile": "/run/app.pid"},
     [(41, "require is Ruby")]),
    # WEB_CONCURRENCY=auto: Concurrent.available_processor_count in the file, or (one CPU) the env default
    ("rails.rb", {"RAILS_ENV": "production", "WEB_CONCURRENCY": "auto"},
     {"workers": len(os.sched_getaffinity(0)), "preload_app!": True}, [(41, "require is Ruby")]),
    ("mastodon.rb", {}, {"workers": 2, "threads": [5, 5], "persistent_timeout": 20, "preload_app!": True,
                         "bind": ["tcp://127.0.0.1:3000"], "environment": "development", "plugin": ["tmp_restart"],
                         "set_remote_address": {"value": None, "proxy_protocol": None, "header": None,
                                                "trusted_proxies": None}},
     [(23, "on_worker_boot takes a Ruby block, " + HOOK)]),
    ("mastodon.rb", {"SOCKET": "/run/mastodon/web.sock", "MAX_THREADS": "8", "MIN_THREADS": "2",
                     "WEB_CONCURRENCY": "4", "RAILS_ENV": "production", "PROXY_PROTO_V1": "true"},
     {"workers": 4, "threads": [2, 8], "bind": ["unix:///run/mastodon/web.sock"], "environment": "production",
      "set_remote_address": {"value": None, "proxy_protocol": "v1", "header": None, "trusted_proxies": None}},
     [(23, "on_worker_boot")]),
    ("gitlab.rb", {}, {"workers": 3, "threads": [1, 16], "preload_app!": True, "tag": "gitlab-puma-worker",
                       "worker_timeout": 60, "wait_for_less_busy_worker": 0.001,
                       "pidfile": "/home/git/gitlab/tmp/pids/puma.pid",
                       "state_path": "/home/git/gitlab/tmp/pids/puma.state",
                       "bind": ["unix:///home/git/gitlab/tmp/sockets/gitlab.socket"],
                       "stdout_redirect": {"stdout": "/home/git/gitlab/log/puma.stdout.log",
                                           "stderr": "/home/git/gitlab/log/puma.stderr.log", "append": True}},
     [(10, "Puma's rackup is not supported"), (33, "queue_requests false is not honoured"),
      (41, "require_relative is Ruby"), (43, "on_restart takes a Ruby block"), (48, "before_fork takes a Ruby block"),
      (53, "'Gitlab::Cluster::LifecycleEvents.set_puma_opt...' skipped: serval does not run Ruby code"),
      (54, "on_worker_boot takes a Ruby block"), (59, "on_worker_shutdown takes a Ruby block"),
      (80, "require_relative is Ruby"),
      (82, "'json_formatter = ...' skipped: serval does not know Gitlab::PumaLogging::JSONFormatter.new"),
      (83, "Puma's log_formatter is not supported"), (87, "Puma's lowlevel_error_handler is not supported")]),
    ("discourse.rb", {}, {"workers": 0, "threads": [0, 5], "bind": ["tcp://0.0.0.0:9292"], "pidfile": None}, []),
    ("discourse.rb", {"RAILS_ENV": "production", "NUM_WEBS": "6"},
     {"workers": 6, "threads": [8, 32], "preload_app!": True,
      "bind": ["unix:///home/discourse/discourse/tmp/sockets/puma.sock"],
      "pidfile": "/home/discourse/discourse/tmp/pids/puma.pid",
      "state_path": "/home/discourse/discourse/tmp/pids/puma.state",
      "stdout_redirect": {"stdout": "/home/discourse/discourse/log/puma.log",
                          "stderr": "/home/discourse/discourse/log/puma.err.log", "append": False}}, []),
    ("discourse.rb", {"RAILS_ENV": "production", "APP_ROOT": "/srv/d"},
     {"workers": 4, "bind": ["unix:///srv/d/tmp/sockets/puma.sock"]}, []),
    ("forem.rb", {}, {"workers": 2, "threads": [5, 5], "worker_timeout": 15, "worker_shutdown_timeout": 8,
                      "preload_app!": True, "bind": ["tcp://0.0.0.0:3000"], "environment": "development"},
     [(13, "Puma's rackup is not supported"), (17, "on_worker_boot takes"), (22, "before_fork takes")]),
    ("forem.rb", {"WEB_CONCURRENCY": "5", "MAX_THREADS": "10", "PORT": "5000", "RACK_ENV": "production"},
     {"workers": 5, "threads": [10, 10], "bind": ["tcp://0.0.0.0:5000"], "environment": "production"},
     [(13, "rackup"), (17, "on_worker_boot"), (22, "before_fork")]),
    ("chatwoot.rb", {}, {"threads": [5, 5], "bind": ["tcp://0.0.0.0:3000"], "environment": "development",
                         "pidfile": "tmp/pids/server.pid", "plugin": ["tmp_restart"], "workers": 0}, []),
    ("chatwoot.rb", {"RAILS_MAX_THREADS": "10", "RAILS_MIN_THREADS": "1"}, {"threads": [1, 10]}, []),
    ("huginn.rb", {}, {"workers": 2, "worker_timeout": 180, "threads": [1, 1], "directory": TESTS_DIR,
                       "environment": "development", "bind": ["tcp://0.0.0.0:3000"], "fork_worker": False,
                       "pidfile": os.path.join(TESTS_DIR, "tmp/pids/puma.pid"),
                       "state_path": os.path.join(TESTS_DIR, "tmp/pids/puma.state"),
                       "stdout_redirect": {"stdout": os.path.join(TESTS_DIR, "log/stdout.log"),
                                           "stderr": os.path.join(TESTS_DIR, "log/stderr.log"), "append": True}},
     [(4, "require is Ruby"), (5, "require is Ruby"), (11, "'FileUtils.mkdir_p([' skipped"),
      (22, "'FileUtils.mkdir_p(File.join(app_dir, \"log\"))' skipped"), (44, "on_refork takes"),
      (49, "before_fork takes"), (53, "on_worker_boot takes")]),
    ("huginn.rb", {"RAILS_ENV": "production", "WEB_CONCURRENCY": "1", "RAILS_LOG_TO_STDOUT": "1"},
     # WEB_CONCURRENCY itself is the workers default, as in Puma: the file's `when (2..)` does not run
     {"workers": 1, "worker_timeout": 60, "environment": "production",
      "bind": ["unix://" + os.path.join(TESTS_DIR, "tmp/sockets/puma.sock") + "?umask=0111"],
      "stdout_redirect": {"stdout": None, "stderr": None, "append": False}},
     # Ruby serval cannot run is reported wherever it stands, also in a branch not taken here (line 22)
     [(4, "require"), (5, "require"), (11, "FileUtils"), (22, "FileUtils"), (44, "on_refork"), (49, "before_fork"),
      (53, "on_worker_boot")]),
    ("huginn.rb", {"WEB_CONCURRENCY": "4", "PUMA_FORK_WORKER_AFTER_REQUESTS": "500", "IP": "127.0.0.1",
                   "PORT": "4000"},
     {"workers": 4, "fork_worker": [500], "bind": ["tcp://127.0.0.1:4000"]},
     [(4, "require"), (5, "require"), (11, "FileUtils"), (22, "FileUtils"), (44, "on_refork"),
      (49, "before_fork"), (53, "on_worker_boot")]),
    ("lobsters.rb", {"RAILS_ENV": "production"},
     {"workers": 4, "threads": [5, 5], "bind": ["tcp://0.0.0.0:3000"], "environment": "production",
      "pidfile": "/srv/lobste.rs/run/puma.pid", "worker_boot_timeout": 60, "plugin": ["tmp_restart"]},
     [(6, "require is Ruby"),
      (48, "'def sleep_for_index' skipped: serval does not run Ruby methods"),
      (53, "'worker_boot_timeout' skipped: sleep_for_index is a method defined in the file"),
      (54, "on_worker_boot takes"), (65, "Puma's prune_bundler is not supported")]),
    ("lobsters.rb", {"RAILS_ENV": "development", "PUMA_WORKERS": "2", "PIDFILE": "/tmp/l.pid"},
     {"workers": 2, "pidfile": "/tmp/l.pid", "environment": "development"},
     [(6, "require"), (48, "def sleep_for_index"), (53, "worker_boot_timeout"), (54, "on_worker_boot"),
      (65, "prune_bundler")]),
    ("maybe.rb", {}, {"workers": 0, "threads": [3, 3], "worker_timeout": 3600, "bind": ["tcp://0.0.0.0:3000"],
                      "plugin": ["tmp_restart"]}, []),
    ("maybe.rb", {"RAILS_ENV": "production", "WEB_CONCURRENCY": "2", "SOLID_QUEUE_IN_PUMA": "1"},
     {"workers": 2, "preload_app!": True, "worker_timeout": 60},
     [(27, "plugin :solid_queue is a Ruby plugin, which serval cannot run")]),
    ("openproject.rb", {}, {"threads": [4, 16], "workers": 0, "bind": ["tcp://0.0.0.0:3000"],
                            "preload_app!": False, "plugin": ["tmp_restart"]}, []),
    ("openproject.rb", {"RAILS_ENV": "production", "RAILS_MIN_THREADS": "20", "OPENPROJECT_WEB_WORKERS": "2"},
     {"threads": [20, 20], "workers": 2, "preload_app!": True, "plugin": [], "environment": "production"}, []),
    ("zammad.rb", {}, {"workers": 0, "threads": [5, 30], "preload_app!": True},
     [(16, "on_booted takes"), (21, "on_worker_boot takes")]),
    ("zammad.rb", {"WEB_CONCURRENCY": "3", "MIN_THREADS": "2", "MAX_THREADS": "8"},
     {"workers": 3, "threads": [2, 8]}, [(16, "on_booted"), (21, "on_worker_boot")]),
    ("openstreetmap.rb", {}, {"threads": [3, 3], "bind": ["tcp://0.0.0.0:3000"], "plugin": ["tmp_restart"]}, []),
]


@pytest.mark.parametrize("name,env,want,warns", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_corpus_file(name, env, want, warns):
    r, warnings = load(name, env)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    for key, value in want.items():
        assert got[key] == value, f"{key}: {got[key]!r} != {value!r}"
    assert warning_lines(name, warnings) == [line for line, _ in warns], "\n".join(warnings)
    for w, (_, part) in zip(warnings, warns):
        assert part in w, w


def test_corpus_holds_ten_real_files_with_their_sources():
    files = sorted(f for f in os.listdir(CORPUS) if f.endswith(".rb"))
    assert len(files) >= 10
    for f in files:
        head = open(os.path.join(CORPUS, f)).read(600)
        assert head.startswith("# Source: ") and "Licence: " in head, f
        assert any(c[0] == f for c in CASES), f"{f} has no case"


def test_strict_turns_corpus_warnings_into_errors():
    r, warnings = load("mastodon.rb", {}, "--strict")
    assert r.returncode != 0
    assert warnings[-1] == "serval: --strict: the warning above is an error"
    r, warnings = load("chatwoot.rb", {}, "--strict")
    assert r.returncode == 0 and warnings == []


# Mistakes a Puma user makes moving a config/puma.rb over. Each reads as one line naming
# the file, the line and the problem, with a hint where one is obvious; what serval knows
# but does not run is a warning and startup goes on; what Puma accepts, serval does too.
# (source, env, "error" | "warning" | "ok", line, part of the message)
MISTAKES = [
    ("wokers 4\n", {}, "error", 1, "unknown directive 'wokers' (did you mean 'workers'?)"),
    ("workers 2\npreload_app\n", {}, "error", 2, "unknown directive 'preload_app' (did you mean 'preload_app!'?)"),
    ("worker_timout 60\n", {}, "error", 1, "(did you mean 'worker_timeout'?)"),
    ("threads 5\n", {}, "ok", 0, ""),
    ("threads 5, 1\n", {}, "error", 1, "threads minimum (5) must not exceed the maximum (1)"),
    ("workers ENV.fetch(\"WEB_CONCURRENCY\") { 2 }\n", {}, "ok", 0, ""),
    ("workers ENV.fetch(\"WEB_CONCURRENCY\")\n", {}, "error", 1,
     "ENV variable WEB_CONCURRENCY is not set (hint: give a default, ENV.fetch(\"WEB_CONCURRENCY\", value))"),
    ("\nport ENV[\"PORT\"]\n", {}, "error", 2,
     "port expects a whole number, got nil (hint: ENV[\"NAME\"] is nil when NAME is unset"),
    ("bind \"tcp://0.0.0.0:3000\"\nport 3000\n", {}, "error", 2,
     "bind 'tcp://0.0.0.0:3000' is given twice (hint: keep one; port N is bind \"tcp://0.0.0.0:N\")"),
    ("preload_app!\n", {}, "ok", 0, ""),
    ("workers 2\non_worker_boot do\n  ActiveRecord::Base.establish_connection\nend\n", {}, "warning", 2,
     "on_worker_boot takes a Ruby block, which serval cannot run: skipped (hint: hooks are C functions"),
    ("plugin :tmp_restart\n", {}, "ok", 0, ""),
    ("plugin :puma_stats\n", {}, "warning", 1, "plugin :puma_stats is a Ruby plugin, which serval cannot run"),
    ("environment production\n", {}, "error", 1,
     "undefined local variable 'production' (assign it first: production = value; or, meant as a string, "
     "quote it: \"production\")"),
    ("max_threads_count = ENV.fetch(\"RAILS_MAX_THREADS\", 5)\nthreads min_threads_count, max_threads_count\n", {},
     "error", 2, "undefined local variable 'min_threads_count' (did you mean 'max_threads_count'?"),
    ("bind \"0.0.0.0:3000\"\n", {}, "error", 1,
     "bad bind '0.0.0.0:3000': expected tcp://HOST:PORT, unix://PATH or ssl://HOST:PORT?cert=PATH&key=PATH (hint: \"tcp://0.0.0.0:3000\")"),
    ("bind \"/run/app/puma.sock\"\n", {}, "error", 1, "(hint: \"unix:///run/app/puma.sock\")"),
    ("worker_timeout 2\n", {}, "error", 1, "worker_timeout must be at least 6 (got 2)"),
    ("force_shutdown_after :never\n", {}, "error", 1,
     "force_shutdown_after expects a number of seconds, :forever or :immediately, got :never"),
    ("daemonize\n", {}, "error", 1, "daemonize is not supported by serval (hint: it was removed in Puma 5"),
    ("port 3000\n\nfork_worker\n", {}, "error", 3, "fork_worker needs cluster mode (hint: set workers 1 or more"),
    ("rackup \"config.ru\"\n", {}, "warning", 1, "Puma's rackup is not supported by serval"),
    ("app \"config.ru\"\n", {}, "error", 1, "app 'config.ru' is a Rack file, which serval cannot run"),
    ("app do |env|\n  [200, {}, [\"ok\"]]\nend\n", {}, "error", 1, "app does not take a block"),
    ("max_io_threads 5\n", {}, "warning", 1, "Puma's max_io_threads is not supported by serval"),
    ("allow_underscore_headers false\n", {}, "warning", 1, "allow_underscore_headers false is not honoured"),
    ("set_default_host \"::\"\nport 3000\n", {}, "ok", 0, ""),
    ("max_keep_alive Float::INFINITY\n", {}, "ok", 0, ""),
    ("bind \"tcp://127.0.0.1:3000\n", {}, "error", 1, "unterminated string"),
    ("if ENV[\"X\"]\n  workers 2\n", {}, "error", 1, "'if' has no matching 'end'"),
    ("ssl_bind \"127.0.0.1\", 9292\n", {}, "error", 1, "ssl_bind expects 3 arguments, got 2"),
    ("activate_control_app \"127.0.0.1:9293\"\n", {}, "error", 1,
     "control URL: bad bind '127.0.0.1:9293': expected tcp://HOST:PORT, unix://PATH or ssl://HOST:PORT?cert=PATH&key=PATH (hint: \"tcp://127.0.0.1:9293\")"),
    ("quiet \"no\"\n", {}, "error", 1, "quiet expects true or false, got \"no\""),
    ("workers 2.5\n", {}, "warning", 1, "workers 2.5 taken as 2, as Puma does (count.to_i)"),
    ("require \"dotenv/load\"\nworkers 2\n", {}, "warning", 1, "require is Ruby, which serval cannot run"),
    ("persistent_timeout 20.minutes\n", {}, "warning", 1, "serval does not know the method .minutes"),
    ("threads 5, 5\nworkers = 4\n", {}, "warning", 2,
     "'workers = ...' sets a local variable that nothing reads, not the directive (hint: workers VALUE, without '=')"),
    ("port 3000 if ENV[\"RAILS_ENV\"] = \"production\"\n", {}, "error", 1,
     "syntax error: unexpected '=' (expected end of line; == compares, = assigns)"),
    ("port 99999\n", {}, "error", 1, "port must be at most 65535 (got 99999)"),
    ("worker_culling_strategy :newest\n", {}, "error", 1,
     "worker_culling_strategy expects :youngest or :oldest, got :newest"),
]


@pytest.mark.parametrize("src,env,kind,line,part", MISTAKES, ids=[f"mistake-{i}" for i in range(len(MISTAKES))])
def test_puma_user_mistake_reads_as_one_line(tmp_path, src, env, kind, line, part):
    path = tmp_path / "puma.rb"
    path.write_text(src)
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    e.update(env)
    r = subprocess.run([SERVAL, "-C", str(path), "--print-config"], capture_output=True, text=True, env=e,
                       timeout=10, cwd=tmp_path)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    if kind == "ok":
        assert r.returncode == 0 and lines == [], r.stderr
        return
    assert len(lines) == 1, r.stderr
    prefix = f"{path}:{line}: " + ("warning: " if kind == "warning" else "")
    assert lines[0].startswith(prefix) and part in lines[0], lines[0]
    assert (r.returncode == 0) == (kind == "warning"), r.stderr
