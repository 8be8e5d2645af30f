"""The control server: endpoints, tokens, the state file, Puma's pumactl."""

import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from helpers import ClientLoop, free_port, get, raw, read_state_file, wait_until

TOKEN = "tok"


@pytest.fixture
def cluster(servers, testapp, port, tmp_path):
    cport = free_port()
    state = tmp_path / "s.state"
    s = servers("-w", "2", "-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{cport}",
                "--control-token", TOKEN, "-S", str(state), testapp, workers=2)
    s.port, s.cport, s.state = port, cport, state
    return s


def ctl(s, path, token=TOKEN):
    q = "&" if "?" in path else "?"
    return get(s.cport, f"/{path}{q}token={token}" if token is not None else f"/{path}")


@pytest.mark.parametrize("path", ["stats", "stop", "metrics", "health", "halt", "restart"])
def test_wrong_or_missing_token_is_403(cluster, path):
    assert ctl(cluster, path, token="nope").status == 403
    assert ctl(cluster, path, token=None).status == 403
    assert cluster.alive()


def test_token_among_other_parameters(cluster):
    assert get(cluster.cport, f"/stats?foo=bar&token={TOKEN};x=1").status == 200


def test_unknown_path_is_404(cluster):
    r = ctl(cluster, "frobnicate")
    assert r.status == 404 and r.body == b"Unsupported action"


def test_stats_shape_is_pumas(cluster):
    j = ctl(cluster, "stats").json()
    for k in ("started_at", "workers", "phase", "booted_workers", "old_workers", "worker_status"):
        assert k in j
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", j["started_at"])
    w = j["worker_status"][0]
    for k in ("started_at", "pid", "index", "phase", "booted", "last_checkin", "last_status"):
        assert k in w
    for k in ("backlog", "running", "pool_capacity", "max_threads", "requests_count"):
        assert k in w["last_status"]
    assert sorted(x["index"] for x in j["worker_status"]) == [0, 1]
    assert len({x["pid"] for x in j["worker_status"]}) == 2
    # serval's extras under their own keys
    assert j["versions"]["serval"] and "memory" in w and "restart" in j


def test_single_mode_stats(servers, testapp, port):
    cport = free_port()
    servers("-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{cport}", "--control-token", TOKEN,
            "-t", "1:3", testapp)
    j = get(cport, f"/stats?token={TOKEN}").json()
    for k in ("started_at", "backlog", "running", "pool_capacity", "max_threads", "requests_count"):
        assert k in j
    assert j["max_threads"] == 3 and "worker_status" not in j


def test_simple_commands_answer_ok(cluster):
    for path in ("gc", "reload-worker-directory"):
        r = ctl(cluster, path)
        assert r.status == 200 and r.json() == {"status": "ok"}
    assert isinstance(ctl(cluster, "gc-stats").json(), dict)
    bt = ctl(cluster, "thread-backtraces").json()
    assert bt[0]["name"].startswith("Thread: TID-") and bt[0]["backtrace"]


def test_metrics_prometheus_text(cluster):
    for _ in range(5):
        get(cluster.port, "/")
    r = ctl(cluster, "metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in ("serval_workers", "serval_workers_booted", "serval_phase", "serval_worker_requests_total",
                 "serval_worker_threads_busy", "serval_worker_backlog", "serval_worker_pool_capacity",
                 "serval_worker_memory_pss_bytes", "serval_restarts_total", "serval_worker_deaths_total"):
        assert f"# TYPE {name} " in text, name
    # every sample line is "name{labels} value" or "name value"
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert re.match(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+$', line), line


def test_health_ready_live(cluster):
    for path in ("health", "readyz", "livez"):
        r = ctl(cluster, path)
        assert r.status == 200 and r.json()["status"] == "ok"


def test_health_is_503_while_draining(servers, testapp, port):
    cport = free_port()
    s = servers("-w", "1", "-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{cport}",
                "--control-token", TOKEN, testapp, workers=1)
    import threading

    t = threading.Thread(target=lambda: get(port, "/sleep?ms=1500", timeout=10), daemon=True)
    t.start()
    time.sleep(0.3)
    s.send(15)
    r = wait_until(lambda: (lambda r: r if r.status == 503 else None)(get(cport, f"/health?token={TOKEN}")),
                   timeout=3, what="503 while draining")
    assert r.json()["status"] == "draining"
    t.join()


def test_state_file_contents(cluster):
    st = read_state_file(cluster.state)
    assert st["pid"] == str(cluster.pid)
    assert st["control_url"] == f"tcp://127.0.0.1:{cluster.cport}"
    assert st["control_auth_token"] == TOKEN
    assert os.path.isabs(st["running_from"])
    assert oct(os.stat(cluster.state).st_mode & 0o777) == "0o600"  # it holds the token
    assert cluster.state.read_text().startswith("---\n")


def test_random_token_when_none_given(servers, testapp, port, tmp_path):
    cport = free_port()
    state = tmp_path / "r.state"
    servers("-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{cport}", "-S", str(state), testapp)
    token = read_state_file(state)["control_auth_token"]
    assert re.match(r"^[0-9a-f]{32}$", token)
    assert get(cport, "/stats").status == 403
    assert get(cport, f"/stats?token={token}").status == 200


def test_unix_control_socket_is_private(servers, testapp, port, tmp_path):
    path = tmp_path / "ctl.sock"
    s = servers("-w", "1", "-b", f"tcp://127.0.0.1:{port}", "--control-url", f"unix://{path}",
                "--control-token", TOKEN, testapp, workers=1)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert get(str(path), f"/stats?token={TOKEN}").status == 200
    s.stop()
    assert not path.exists()


def test_stuck_control_clients_do_not_delay_supervision(cluster):
    """A phased restart beside 11 stuck control clients takes what one takes without them
    (measured just before, on this machine), not a wait for their 3 s head deadlines."""

    def phased_restart():
        t0 = time.monotonic()
        r = ctl(cluster, "phased-restart")
        assert r.status == 200
        op = int(r.headers["x-serval-operation"])
        wait_until(lambda: get(cluster.cport, f"/operation?id={op}&token={TOKEN}").json()["state"] == "succeeded",
                   timeout=20, what="phased restart")
        return time.monotonic() - t0

    alone = phased_restart()
    silent = [socket.create_connection(("127.0.0.1", cluster.cport)) for _ in range(10)]
    trickle = socket.create_connection(("127.0.0.1", cluster.cport))
    trickle.sendall(b"GET /sta")
    try:
        beside = phased_restart()
        assert beside < 2 * alone + 2, f"{beside:.1f}s beside stuck clients, {alone:.1f}s without them"
        # a silent client is dropped after its deadline, never blocking anyone
        silent[0].settimeout(8)
        assert silent[0].recv(10) == b""
    finally:
        for c in silent + [trickle]:
            c.close()


def test_stop_and_halt(cluster, servers, testapp, port):
    assert ctl(cluster, "stop").json() == {"status": "ok"}
    assert cluster.wait_exit(10) == 0
    assert not cluster.state.exists()


PUMACTL = shutil.which("pumactl")


@pytest.mark.skipif(not PUMACTL, reason="Debian puma not installed")
def test_pumas_own_pumactl_drives_serval(cluster):
    def pumactl(*args):
        return subprocess.run([PUMACTL, "-S", str(cluster.state), *args], capture_output=True, text=True, timeout=30)

    r = pumactl("stats")
    assert r.returncode == 0 and "Command stats sent success" in r.stdout
    j = __import__("json").loads(r.stdout.splitlines()[1])
    assert j["workers"] == 2
    with ClientLoop(cluster.port, threads=2) as loop:
        r = pumactl("phased-restart")
        assert r.returncode == 0 and "Command phased-restart sent success" in r.stdout
        cluster.wait_log(r"phase: 1", count=2)
        r = pumactl("restart")
        assert r.returncode == 0
        cluster.wait_log(r"Hot restart complete")
    loop.assert_clean()
    assert "Puma is started" in pumactl("status").stdout
    r = pumactl("stop")
    assert r.returncode == 0
    assert cluster.wait_exit(10) == 0
