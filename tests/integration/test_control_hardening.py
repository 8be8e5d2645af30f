"""The control server under hostile clients (issue 10, F7-F12) and data_only.

F7 state/pid files written through a safe temp file; F8 Host/Origin checks
without a token and no token-less full control app on a public address; F9
failed authentication delayed and logged; F10 idle connections cannot lock
operators out; F11 strict request line and exact paths; F12 long tokens are an
error. data_only and data_url: read-only endpoints without a token.
"""

import os
import re
import socket
import subprocess
import threading
import time

import pytest

from helpers import free_port, get, raw, read_state_file, wait_until

TOKEN = "tok"
READ_ONLY = ["stats", "metrics", "health", "readyz", "livez", "gc-stats"]
ACTIONS = ["stop", "halt", "restart", "phased-restart", "refork", "reload-worker-directory", "gc",
           "thread-backtraces", "operation?id=1"]


def status_of(resp):
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", resp)
    return int(m.group(1)) if m else None


def write_config(tmp_path, text, name="c.rb"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.fixture
def tokenless(servers, testapp, port):
    cport = free_port()
    s = servers("-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{cport}",
                "--control-token", "none", testapp)
    s.cport = cport
    return s


@pytest.fixture
def tokened(servers, testapp, port):
    cport = free_port()
    s = servers("-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{cport}",
                "--control-token", TOKEN, testapp)
    s.cport = cport
    return s


# ---- F7: files through a safe temp file --------------------------------------------------------

def test_planted_symlinks_never_receive_the_token(servers, testapp, port, tmp_path):
    """The old writer used PATH.tmpPID without O_EXCL/O_NOFOLLOW: a symlink planted there
    received the token. A hot restart (same pid) rewrites both files."""
    cport = free_port()
    state, pidfile = tmp_path / "s.state", tmp_path / "s.pid"
    s = servers("-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{cport}",
                "--control-token", "sekrit-token", "-S", str(state), "--pidfile", str(pidfile), testapp)
    leak = tmp_path / "leak"
    for f in (state, pidfile):
        os.symlink(leak, f"{f}.tmp{s.pid}")
    before = (os.stat(state).st_ino, os.stat(pidfile).st_ino)
    s.send(12)  # USR2: hot restart in place
    s.wait_log(r"\* Inherited http")

    def rewritten():
        return leak.exists() or (os.stat(state).st_ino != before[0] and os.stat(pidfile).st_ino != before[1])

    wait_until(rewritten, timeout=10, what="state file and pidfile rewritten")
    assert read_state_file(state).get("control_auth_token") == "sekrit-token"
    assert not leak.exists(), "a planted symlink received a write"
    assert oct(os.stat(state).st_mode & 0o777) == "0o600"
    assert pidfile.read_text().strip() == str(s.pid)
    # nothing left behind but our own plants
    left = sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name)
    assert left == sorted([f"s.state.tmp{s.pid}", f"s.pid.tmp{s.pid}"])


def test_state_file_without_token_is_0640(servers, testapp, port, tmp_path):
    cport = free_port()
    state = tmp_path / "n.state"
    servers("-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{cport}", "--control-token",
            "none", "-S", str(state), testapp)
    assert "control_auth_token" not in read_state_file(state)
    assert oct(os.stat(state).st_mode & 0o777) == "0o640"


# ---- F8: cross-site requests and DNS rebinding without a token ----------------------------------

@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example", "Host": "attacker.example"},
    {"Host": "attacker.example"},
    {"Host": "attacker.example:80"},
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Host": "127.0.0.1:1"},  # the right address, another port
])
def test_foreign_origin_or_host_refused_without_token(tokenless, headers):
    r = get(tokenless.cport, "/stop", headers=headers)
    assert r.status == 403 and b"Host or Origin" in r.body
    assert get(tokenless.cport, "/stats", headers=headers).status == 403
    assert tokenless.alive()
    tokenless.wait_log(r"foreign Host/Origin", stream="stderr")


def test_requests_naming_the_server_pass_without_token(tokenless):
    c = tokenless.cport
    assert get(c, "/stats").status == 200  # http.client sends Host: 127.0.0.1:PORT
    assert get(c, "/stats", headers={"Host": f"localhost:{c}"}).status == 200
    assert get(c, "/stats", headers={"Origin": f"http://127.0.0.1:{c}"}).status == 200
    assert status_of(raw(c, b"GET /stats HTTP/1.0\r\n\r\n")) == 200  # pumactl sends no Host


def test_token_makes_host_irrelevant(tokened):
    r = get(tokened.cport, f"/stats?token={TOKEN}", headers={"Host": "anything.example"})
    assert r.status == 200


def run_check(serval_bin, *args, cwd=None):
    return subprocess.run([serval_bin, "--check", *args], capture_output=True, text=True, timeout=30, cwd=cwd)


def test_public_tokenless_control_is_a_config_error(serval_bin, testapp, tmp_path):
    r = run_check(serval_bin, "--control-url", "tcp://0.0.0.0:9293", "--control-token", "none", testapp)
    assert r.returncode != 0
    assert "has no token and can stop the server: bind loopback or a unix socket" in r.stderr
    assert r.stderr.rstrip().endswith("behind a firewall)")  # one whole line, never cut
    cfg = write_config(tmp_path, 'activate_control_app "tcp://0.0.0.0:9293", { no_token: true }\n')
    r = run_check(serval_bin, "-C", cfg, testapp)
    assert r.returncode != 0 and "allow_remote" in r.stderr
    # explicitly allowed, read-only, or with a token: fine
    for opts in ("no_token: true, allow_remote: true", "no_token: true, data_only: true", 'auth_token: "x1"'):
        cfg = write_config(tmp_path, f'activate_control_app "tcp://0.0.0.0:9293", {{ {opts} }}\n', "ok.rb")
        r = run_check(serval_bin, "-C", cfg, testapp)
        assert r.returncode == 0, (opts, r.stderr)
    r = run_check(serval_bin, "--control-url", "tcp://0.0.0.0:9293", "--control-token", "none",
                  "--control-allow-remote", testapp)
    assert r.returncode == 0, r.stderr
    for url in ("tcp://127.0.0.1:9293", "tcp://[::1]:9293", f"unix://{tmp_path}/c.sock"):
        assert run_check(serval_bin, "--control-url", url, "--control-token", "none", testapp).returncode == 0


# ---- F9: failed authentication delayed and logged ------------------------------------------------

def test_failed_auth_is_delayed(tokened):
    t0 = time.monotonic()
    assert get(tokened.cport, "/stats?token=wrong").status == 403
    assert time.monotonic() - t0 >= 0.2
    t0 = time.monotonic()
    assert get(tokened.cport, f"/stats?token={TOKEN}").status == 200


def test_failed_auth_is_logged_rate_limited(tokened):
    n = 24
    results = []

    def guess(i):
        results.append(get(tokened.cport, f"/stop?token=guess{i}", timeout=15).status)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == [403] * n
    assert tokened.alive()

    def counted():
        lines = re.findall(r"control: (\d+) failed authentication", tokened.stderr())
        return lines if sum(map(int, lines)) == n else None

    lines = wait_until(counted, timeout=10, what=f"{n} failures logged")
    assert len(lines) <= 4, lines  # at most one line a second, with a count
    assert "guess" not in tokened.stderr()  # the guessed token is never logged
    assert re.search(r"bad token from 127\.0\.0\.1:\d+ GET /stop", tokened.stderr())


# ---- F10: idle connections cannot take the slots -------------------------------------------------

def health_ok(target, n):
    ok = 0
    for _ in range(n):
        try:
            ok += get(target, f"/health?token={TOKEN}", timeout=10).status == 200
        except OSError:
            pass
    return ok


def test_idle_connections_do_not_lock_out_health(tokened):
    # one byte each: TCP_DEFER_ACCEPT hides connections that send nothing at all
    idle = [socket.create_connection(("127.0.0.1", tokened.cport)) for _ in range(70)]
    try:
        for s in idle:
            s.sendall(b"G")
        assert health_ok(tokened.cport, 50) == 50
    finally:
        for s in idle:
            s.close()


def test_idle_unix_connections_do_not_lock_out_health(servers, testapp, port, tmp_path):
    path = str(tmp_path / "c.sock")
    servers("-b", f"tcp://127.0.0.1:{port}", "--control-url", f"unix://{path}", "--control-token", TOKEN, testapp)
    idle = []
    try:
        for _ in range(70):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            idle.append(s)
        assert health_ok(path, 50) == 50
    finally:
        for s in idle:
            s.close()


def test_silent_client_dropped_at_head_deadline(tokened):
    with socket.create_connection(("127.0.0.1", tokened.cport)) as s:
        s.sendall(b"GET /st")
        s.settimeout(10)
        t0 = time.monotonic()
        assert s.recv(10) == b""
        assert time.monotonic() - t0 < 4.5  # SV_CONTROL_HEAD_TIMEOUT_MS (3 s), not 5 s


# ---- F11: strict request line, exact paths -------------------------------------------------------

@pytest.mark.parametrize("req,want", [
    (b"GETX /stats?token=tok HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (b"get /stats?token=tok HTTP/1.1\r\n\r\n", 405),
    (b"POST /stop?token=tok HTTP/1.1\r\n\r\n", 405),
    (b"GET /stats?token=tok HTTP/1.1\n\n", 400),
    (b"GET /stats?token=tok HTTP/1.1\r\nHost: x\n\r\n", 400),
    (b"GET  /stats?token=tok HTTP/1.1\r\n\r\n", 400),
    (b"GET /stats?token=tok  HTTP/1.1\r\n\r\n", 400),
    (b"GET /stats?token=tok HTTP/2.0\r\n\r\n", 400),
    (b"GET /stats?token=tok HTTP/1.1 \r\n\r\n", 400),
    (b"GET /stats?token=tok\r\n\r\n", 400),
    (b"GET stats?token=tok HTTP/1.1\r\n\r\n", 400),
    (b"GET /stats?token=tok HTTP/1.1\r\n folded\r\n\r\n", 400),
    (b"GET /stats?token=tok HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET /stats?token=tok HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET /x/stats?token=tok HTTP/1.1\r\n\r\n", 404),
    (b"GET /foo/stop?token=tok HTTP/1.1\r\n\r\n", 404),
    (b"GET /stats/?token=tok HTTP/1.1\r\n\r\n", 404),
    (b"GET /stats?token=tok HTTP/1.1\r\n\r\n", 200),
    (b"GET /stats?token=tok HTTP/1.0\r\n\r\n", 200),
])
def test_strict_request_parsing(tokened, req, want):
    assert status_of(raw(tokened.cport, req)) == want
    assert tokened.alive()


def test_oversized_head_is_431(tokened):
    r = raw(tokened.cport, b"GET /stats?token=tok HTTP/1.1\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n")
    assert status_of(r) == 431 or r in (b"", b"<RESET>")


# ---- F12: token length ---------------------------------------------------------------------------

def test_long_token_is_an_error_never_cut(serval_bin, testapp, tmp_path):
    long = "a" * 128
    r = run_check(serval_bin, "--control-url", "tcp://127.0.0.1:9293", "--control-token", long, testapp)
    assert r.returncode != 0 and "control token is 128 bytes, the most is 127" in r.stderr
    cfg = write_config(tmp_path, f'activate_control_app "tcp://127.0.0.1:9293", {{ auth_token: "{long}" }}\n')
    r = run_check(serval_bin, "-C", cfg, testapp)
    assert r.returncode != 0 and "c.rb:1:" in r.stderr and "the most is 127" in r.stderr
    r = run_check(serval_bin, "--control-url", "tcp://127.0.0.1:9293", "--control-token", "a&b", testapp)
    assert r.returncode != 0 and "cannot travel" in r.stderr


def test_longest_token_works(servers, testapp, port):
    cport = free_port()
    token = "z" * 127
    servers("-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{cport}", "--control-token",
            token, testapp)
    assert get(cport, f"/stats?token={token}").status == 200
    assert get(cport, f"/stats?token={token[:-1]}").status == 403


# ---- data_only, data_url -------------------------------------------------------------------------

def test_data_only_serves_read_only_endpoints_without_token(servers, testapp, port, tmp_path):
    cport = free_port()
    cfg = write_config(tmp_path, f'activate_control_app "tcp://127.0.0.1:{cport}", '
                                 "{ no_token: true, data_only: true }\n")
    s = servers("-C", cfg, "-w", "1", "-b", f"tcp://127.0.0.1:{port}", testapp, workers=1)
    for path in READ_ONLY:
        r = get(cport, f"/{path}", headers={"Host": "probe.example"})  # a probe may name us anyhow
        assert r.status == 200, path
    assert get(cport, "/stats").json()["workers"] == 1
    for path in ACTIONS:
        r = get(cport, f"/{path}")
        name = path.split("?")[0].replace("-", "_")
        assert r.status == 404, path
        assert r.json() == {"error": f"{name} not available (data_only: a read-only control server)"}
    assert get(cport, "/nope").body == b"Unsupported action"
    assert s.alive() and s.count(r"Starting control server on .* \(data_only\)") == 1
    assert get(port, "/").status == 200


def test_data_only_flag(servers, testapp, port):
    cport = free_port()
    servers("-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{cport}", "--control-token",
            "none", "--control-data-only", testapp)
    assert get(cport, "/health").status == 200
    assert get(cport, "/halt").status == 404


def test_servalctl_against_data_url(servers, testapp, port, tmp_path, servalctl_bin):
    cport, dport = free_port(), free_port()
    cfg = write_config(tmp_path, f'activate_control_app "tcp://127.0.0.1:{cport}", '
                                 f'{{ data_url: "tcp://127.0.0.1:{dport}" }}\n')
    s = servers("-C", cfg, "-b", f"tcp://127.0.0.1:{port}", testapp)

    def ctl(*args):
        return subprocess.run([servalctl_bin, "-C", f"tcp://127.0.0.1:{dport}", *args], capture_output=True,
                              text=True, timeout=30)

    r = ctl("readyz")
    assert r.returncode == 0 and '"ok"' in r.stdout
    assert ctl("stats").returncode == 0
    r = ctl("stop")
    assert r.returncode != 0 and "stop not available (data_only" in r.stdout + r.stderr
    assert s.alive()


def test_data_url_beside_the_full_control_app(servers, testapp, port, tmp_path):
    cport, dport = free_port(), free_port()
    cfg = write_config(tmp_path, f'activate_control_app "tcp://127.0.0.1:{cport}", '
                                 f'{{ auth_token: "{TOKEN}", data_url: "tcp://127.0.0.1:{dport}" }}\n')
    s = servers("-C", cfg, "-w", "1", "-b", f"tcp://127.0.0.1:{port}", testapp, workers=1)
    for path in READ_ONLY:
        assert get(dport, f"/{path}").status == 200, path
    for path in ACTIONS:
        assert get(dport, f"/{path}?token={TOKEN}").status == 404, path
    # the full app still wants its token
    assert get(cport, "/stats").status == 403
    assert get(cport, f"/stats?token={TOKEN}").status == 200
    assert s.count(r"Starting data-only control server on http://127\.0\.0\.1:%d" % dport) == 1
    # only the master holds it: no worker inherits the probe listener
    ss = subprocess.run(["ss", "-Htlnp", f"sport = :{dport}"], capture_output=True, text=True, timeout=10).stdout
    assert set(re.findall(r"pid=(\d+)", ss)) == {str(s.pid)}, ss
    # it comes back after a hot restart, and the workers hold no copy of it
    s.send(12)
    s.wait_log(r"Hot restart complete")
    wait_until(lambda: get(dport, "/health").status == 200, timeout=10, what="data_url after hot restart")
    assert get(cport, f"/health?token={TOKEN}").status == 200


def test_flood_on_data_url_leaves_the_full_app_alone(servers, testapp, port, tmp_path):
    """Beside a data_url listener each listener holds at most 32 clients and evicts only its own."""
    path = str(tmp_path / "ctl.sock")
    dport = free_port()
    cfg = write_config(tmp_path, f'activate_control_app "unix://{path}", '
                                 f'{{ auth_token: "{TOKEN}", data_url: "tcp://127.0.0.1:{dport}" }}\n')
    servers("-C", cfg, "-b", f"tcp://127.0.0.1:{port}", testapp)
    flood = [socket.create_connection(("127.0.0.1", dport)) for _ in range(70)]
    try:
        for c in flood:
            c.sendall(b"GET /hea")
        # the operator's slots are untouched: a request trickling on the unix socket survives the flood
        slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        slow.connect(path)
        slow.sendall(b"GET /health?token=tok HTTP/1.0\r\n")
        more = [socket.create_connection(("127.0.0.1", dport)) for _ in range(70)]
        for c in more:
            c.sendall(b"G")
        flood += more
        slow.sendall(b"\r\n")
        slow.settimeout(10)
        assert status_of(slow.recv(100)) == 200
        slow.close()
        assert health_ok(path, 20) == 20
        assert sum(get(dport, "/health", timeout=10).status == 200 for _ in range(20)) == 20
    finally:
        for c in flood:
            c.close()


def test_data_url_needs_a_control_app(serval_bin, testapp):
    r = run_check(serval_bin, "--control-data-url", "tcp://127.0.0.1:9294", testapp)
    assert r.returncode != 0 and "data_url needs a control server" in r.stderr
