"""Command line, config file, single mode, pid/state files, log redirection."""

import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BUILD
from helpers import get, read_state_file, wait_until

SERVAL = os.path.join(BUILD, "serval")


def run(*args, cwd=None, env=None, timeout=10):
    e = dict(os.environ)
    e.pop("WEB_CONCURRENCY", None)
    if env:
        e.update(env)
    return subprocess.run([SERVAL, *args], capture_output=True, text=True, cwd=cwd, env=e, timeout=timeout)


def one_line_error(res):
    assert res.returncode != 0
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_version_and_help():
    r = run("-V")
    assert r.returncode == 0 and r.stdout.startswith("serval ")
    r = run("--help")
    assert r.returncode == 0
    for flag in ("--workers", "--threads", "--bind", "--fork-worker", "--control-url", "--pidfile"):
        assert flag in r.stdout


@pytest.mark.parametrize(
    "args,culprit",
    [
        (["--bogus"], "--bogus"),
        (["-w", "abc"], "abc"),
        (["-t", "8:2"], "thread"),
        (["-b", "http://x:1"], "http://x:1"),
        (["-b", "tcp://127.0.0.1:99999"], "99999"),
        (["-w"], "-w"),
    ],
)
def test_bad_flags_fail_with_one_line_naming_the_culprit(args, culprit):
    line = one_line_error(run(*args))
    assert culprit in line


def test_bad_config_names_file_and_line(tmp_path):
    conf = tmp_path / "puma.rb"
    conf.write_text("workers 2\n\nthreads 1, 4\nfrobnicate 3\n")
    line = one_line_error(run("-C", str(conf), "--check"))
    assert f"{conf}:4:" in line and "frobnicate" in line


def test_ruby_block_is_a_warning_with_hint_and_strict_makes_it_an_error(tmp_path, port):
    conf = tmp_path / "puma.rb"
    conf.write_text(f'workers 2\non_worker_boot do\n  puts "x"\nend\nbind "tcp://127.0.0.1:{port}"\n')
    r = run("-C", str(conf), "--check")
    assert r.returncode == 0, r.stderr
    warning = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(warning) == 1 and f"{conf}:2: warning:" in warning[0] and "C hook on_worker_boot" in warning[0]
    r = run("-C", str(conf), "--check", "--strict")
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert lines == [warning[0], "serval: --strict: the warning above is an error"]


def test_a_simple_puma_rb_works_unchanged(tmp_path, port):
    conf = tmp_path / "puma.rb"
    conf.write_text(
        "# Puma config\n"
        'threads_count = ENV.fetch("MAX_THREADS") { 5 }\n'
        "threads threads_count, threads_count\n"
        f'port ENV.fetch("PORT", {port})\n'
        'environment ENV.fetch("RACK_ENV") { "production" }\n'
        "workers 2\n"
        "worker_timeout 60\n"
        "preload_app!\n"
        "plugin :tmp_restart\n"
    )
    r = run("-C", str(conf), "--check")
    assert r.returncode == 0, r.stderr


def test_check_rejects_unloadable_app(tmp_path):
    bad = tmp_path / "bad.so"
    bad.write_text("not an elf")
    line = one_line_error(run("--check", str(bad)))
    assert "bad.so" in line


def test_taken_port_is_a_clear_error(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        line = one_line_error(run("-b", f"tcp://127.0.0.1:{port}"))
    assert str(port) in line and "in use" in line


def test_flags_override_config_file(servers, testapp, tmp_path, port, port2):
    conf = tmp_path / "puma.rb"
    conf.write_text(f'workers 3\nbind "tcp://127.0.0.1:{port2}"\n')
    s = servers("-C", str(conf), "-w", "1", "-b", f"tcp://127.0.0.1:{port}", testapp, workers=1)
    assert len(s.wait_workers(1)) == 1
    assert get(port, "/").status == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port2), timeout=1)


def test_web_concurrency_env_fallback(servers, testapp, port):
    s = servers("-b", f"tcp://127.0.0.1:{port}", testapp, env={"WEB_CONCURRENCY": "2"}, workers=2)
    assert len(s.wait_workers(2)) == 2


def test_single_mode_serves_and_stops_gracefully(servers, testapp, port):
    s = servers("-b", f"tcp://127.0.0.1:{port}", testapp)
    assert "single mode" in s.stdout()
    assert get(port, "/pid").json()["worker"] == -1
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", get(port, "/sleep?ms=800", timeout=10)))
    t.start()
    wait_until(lambda: True)
    time.sleep(0.2)  # let the request reach the app
    s.send(signal.SIGTERM)
    t.join(10)
    assert result["r"].body == b"Slept 800"
    assert s.wait_exit(10) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_single_mode_quit_halts(servers, testapp, port):
    s = servers("-b", f"tcp://127.0.0.1:{port}", testapp)
    assert s.stop(signal.SIGQUIT, timeout=3) == 0


def test_pidfile_and_state_file(servers, testapp, tmp_path, port, port2):
    pidf, statef = tmp_path / "s.pid", tmp_path / "s.state"
    s = servers("-w", "1", "-b", f"tcp://127.0.0.1:{port}", "--pidfile", str(pidf), "-S", str(statef),
                "--control-url", f"tcp://127.0.0.1:{port2}", "--control-token", "sekrit", testapp, workers=1)
    assert pidf.read_text().strip() == str(s.pid)
    st = read_state_file(statef)
    assert st["pid"] == str(s.pid)
    assert st["control_url"] == f"tcp://127.0.0.1:{port2}"
    assert st["control_auth_token"] == "sekrit"
    assert os.path.isdir(st["running_from"])
    s.stop()
    assert not pidf.exists() and not statef.exists()


def test_hup_reopens_redirected_logs(servers, testapp, tmp_path, port):
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    s = servers("-w", "1", "-b", f"tcp://127.0.0.1:{port}", "--redirect-stdout", str(out),
                "--redirect-stderr", str(err), testapp, wait=False)
    wait_until(lambda: out.exists() and "Use Ctrl-C" in out.read_text(), what="boot in redirected log")
    os.rename(out, tmp_path / "out.log.1")
    s.send(signal.SIGHUP)
    wait_until(lambda: out.exists() and "serval startup" in out.read_text(), what="reopened log")
    assert s.alive()


def test_hup_without_redirect_stops(servers, testapp, port):
    s = servers("-b", f"tcp://127.0.0.1:{port}", testapp)
    assert s.stop(signal.SIGHUP) == 0


def test_directory_option(servers, testapp, tmp_path, port):
    d = tmp_path / "rel"
    d.mkdir()
    (d / "VERSION").write_text("v42\n")
    servers("--dir", str(d), "-b", f"tcp://127.0.0.1:{port}", testapp)
    assert get(port, "/version").body == b"v42"


def test_app_init_failure_is_reported(servers, testapp, port):
    s = servers("-b", f"tcp://127.0.0.1:{port}", testapp, env={"TESTAPP_INIT_FAIL": "1"}, wait=False)
    assert s.wait_exit(10) != 0
    assert "failed to initialise" in s.stderr()
