"""--check tries what the config names; unusable paths stop startup; bind umask is honoured."""

import json
import os
import socket
import stat
import subprocess

from conftest import BUILD
from helpers import get

SERVAL = os.path.join(BUILD, "serval")


def run(*args, cwd=None, timeout=10):
    e = dict(os.environ)
    e.pop("WEB_CONCURRENCY", None)
    return subprocess.run([SERVAL, *args], capture_output=True, text=True, cwd=cwd, env=e, timeout=timeout)


def one_line_error(res):
    assert res.returncode != 0
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_check_fails_on_a_taken_port(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        line = one_line_error(run("--check", "-b", f"tcp://127.0.0.1:{port}"))
    assert f"tcp://127.0.0.1:{port}" in line and "in use" in line
    # free again: the check binds, then lets go
    r = run("--check", "-b", f"tcp://127.0.0.1:{port}")
    assert r.returncode == 0, r.stderr
    r = run("--check", "-b", f"tcp://127.0.0.1:{port}")
    assert r.returncode == 0, r.stderr


def test_check_leaves_no_unix_socket_behind(tmp_path):
    sock = tmp_path / "s.sock"
    r = run("--check", "-b", f"unix://{sock}")
    assert r.returncode == 0, r.stderr
    assert not sock.exists()


def test_check_fails_on_a_missing_directory(tmp_path, port):
    line = one_line_error(run("--check", "-b", f"tcp://127.0.0.1:{port}", "--dir", str(tmp_path / "nope")))
    assert "nope" in line and "directory" in line


def test_unusable_pidfile_or_state_path_stops_startup(tmp_path, port):
    for flag in ("--pidfile", "-S"):
        target = tmp_path / "missing" / "x"
        line = one_line_error(run("-b", f"tcp://127.0.0.1:{port}", flag, str(target)))
        assert str(target) in line and "does not exist" in line
    line = one_line_error(run("-b", f"tcp://127.0.0.1:{port}", "--pidfile", str(tmp_path)))
    assert "is a directory" in line
    line = one_line_error(run("--check", "-b", f"tcp://127.0.0.1:{port}", "-S", str(tmp_path / "no" / "s.yml")))
    assert "state_path" in line


def test_bind_umask_is_honoured(servers, testapp, tmp_path):
    sock = tmp_path / "app.sock"
    servers("-b", f"unix://{sock}?umask=0177", testapp)
    mode = stat.S_IMODE(os.stat(sock).st_mode)
    assert mode == 0o600, oct(mode)
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(5)
        c.connect(str(sock))
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert c.recv(64).startswith(b"HTTP/1.1 200")


def test_print_config_shows_the_effective_configuration(tmp_path):
    conf = tmp_path / "puma.rb"
    conf.write_text('n = 3\nworkers n if n > 1\nbind "tcp://127.0.0.1:#{9000 + n}"\n')
    r = run("-C", str(conf), "--print-config", "-t", "2:4")
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert cfg["workers"] == 3 and cfg["threads"] == [2, 4] and cfg["bind"] == ["tcp://127.0.0.1:9003"]


def test_a_puma_rb_with_ruby_serval_cannot_run_starts_and_serves(servers, testapp, tmp_path, port):
    conf = tmp_path / "puma.rb"
    conf.write_text(
        'require "etc"\n'
        'host = ENV.fetch("HOST", "127.0.0.1")\n'
        f'bind "tcp://#{{host}}:#{{{port - 1} + 1}}"\n'
        "workers_count = Integer(ENV.fetch(\"WEB_CONCURRENCY\", 2))\n"
        "workers workers_count if workers_count > 1\n"
        "on_worker_boot do |index|\n  ActiveRecord::Base.establish_connection\nend\n"
        "prune_bundler\n"
    )
    s = servers("-C", str(conf), testapp, workers=2)
    assert get(port, "/").status == 200
    err = s.stderr()
    assert f"{conf}:1: warning: require is Ruby" in err
    assert f"{conf}:6: warning: on_worker_boot takes a Ruby block" in err
    assert f"{conf}:9: warning: Puma's prune_bundler is not supported" in err
