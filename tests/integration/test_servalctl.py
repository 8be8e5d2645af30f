"""servalctl: pumactl's flags and commands, --wait, the signal fallback."""

import json
import os
import subprocess
import time

import pytest

from conftest import BUILD
from helpers import ClientLoop, free_port, get, wait_until

CTL = os.path.join(BUILD, "servalctl")


def ctl(*args, timeout=60):
    return subprocess.run([CTL, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cluster(servers, testapp, port, tmp_path):
    cport = free_port()
    state, pidf = tmp_path / "s.state", tmp_path / "s.pid"
    s = servers("-w", "2", "-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{cport}",
                "-S", str(state), "--pidfile", str(pidf), testapp, workers=2)
    s.port, s.cport, s.state, s.pidf = port, cport, str(state), str(pidf)
    return s


def test_stats_json_and_table(cluster):
    r = ctl("-S", cluster.state, "stats")
    assert r.returncode == 0, r.stdout + r.stderr
    # data commands print only data on stdout; the status line goes to stderr
    assert json.loads(r.stdout)["workers"] == 2
    assert r.stderr.strip() == "Command stats sent success"
    r = ctl("-S", cluster.state, "stats", "--format", "table")
    assert r.returncode == 0
    assert str(cluster.workers()[0]) in r.stdout


def test_status(cluster):
    r = ctl("-S", cluster.state, "status")
    assert r.returncode == 0 and "started" in r.stdout


@pytest.mark.parametrize("cmd", ["gc-stats", "thread-backtraces", "metrics", "health"])
def test_data_commands(cluster, cmd):
    r = ctl("-S", cluster.state, cmd)
    assert r.returncode == 0, r.stdout


def test_phased_restart_wait_succeeds(cluster):
    with ClientLoop(cluster.port, threads=2) as loop:
        r = ctl("-S", cluster.state, "phased-restart", "--wait", "--timeout", "30")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "succeeded" in r.stdout
    loop.assert_clean()
    assert get(cluster.cport, "/stats?token=" + open(cluster.state).read().split("control_auth_token: ")[1].split()[0]).json()["phase"] == 1


def test_restart_wait_succeeds(cluster):
    r = ctl("-S", cluster.state, "restart", "--wait", "--timeout", "30")
    assert r.returncode == 0, r.stdout + r.stderr
    assert cluster.alive()


def test_phased_restart_wait_fails_for_a_release_that_cannot_boot(servers, testapp, port, tmp_path):
    rel1, rel2 = tmp_path / "r1", tmp_path / "r2"
    rel1.mkdir()
    rel2.mkdir()
    (rel2 / "INIT_FAIL").write_text("")
    cur = tmp_path / "current"
    cur.symlink_to(rel1)
    cport = free_port()
    state = tmp_path / "s.state"
    s = servers("-w", "2", "-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{cport}",
                "-S", str(state), "--dir", str(cur), testapp, workers=2)
    cur.unlink()
    cur.symlink_to(rel2)
    r = ctl("-S", str(state), "phased-restart", "--wait", "--timeout", "30")
    assert r.returncode != 0
    assert "failed" in r.stdout and "could not boot" in r.stdout
    assert get(port, "/").status == 200


def test_wrong_token(cluster):
    r = ctl("-C", f"tcp://127.0.0.1:{cluster.cport}", "-T", "wrong", "stats")
    assert r.returncode == 1 and "Unauthorized access to server (wrong auth token)" in r.stdout


def test_not_running(tmp_path):
    port = free_port()
    r = ctl("-C", f"tcp://127.0.0.1:{port}", "-T", "x", "stats")
    assert r.returncode == 1 and "cannot connect" in r.stdout


def test_missing_state_file(tmp_path):
    r = ctl("-S", str(tmp_path / "nope.state"), "stats")
    assert r.returncode == 1 and "State file not found" in r.stdout


def test_signal_fallback_via_pidfile(cluster):
    r = ctl("-P", cluster.pidf, "worker-count-up")
    assert r.returncode == 0, r.stdout
    cluster.wait_log(r"Worker 2 \(PID: \d+\) booted")
    r = ctl("-P", cluster.pidf, "stop")
    assert r.returncode == 0
    assert cluster.wait_exit(10) == 0


def test_signal_only_commands_need_a_pid(tmp_path):
    r = ctl("-C", "tcp://127.0.0.1:1", "reopen-log")
    assert r.returncode == 1


def test_refork_wait(servers, testapp, port, tmp_path):
    cport = free_port()
    state = tmp_path / "s.state"
    servers("-w", "3", "--fork-worker", "0", "-b", f"tcp://127.0.0.1:{port}", "--control-url",
            f"tcp://127.0.0.1:{cport}", "-S", str(state), testapp, workers=3)
    r = ctl("-S", str(state), "refork", "--wait", "--timeout", "30")
    assert r.returncode == 0, r.stdout + r.stderr


def test_unknown_and_missing_command(cluster):
    r = ctl("-S", cluster.state, "frobnicate")
    assert r.returncode == 1 and "Invalid command: frobnicate" in (r.stdout + r.stderr)
    r = ctl("-S", cluster.state)
    assert r.returncode == 1
