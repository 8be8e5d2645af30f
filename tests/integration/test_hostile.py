"""Hostile and careless clients (issue 10, findings F1-F19) and strictness
(h1spec --strict): every response ends where its framing says, no client
takes an app thread, the server answers what it has read during a drain."""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BUILD
from helpers import SANITIZED, Server, free_port, get, raw, request, wait_until

TESTAPP = os.path.join(BUILD, "examples", "testapp.so")


def start(tmp, args=(), conf=None, env=None, workers=0, threads="2:4"):
    port = free_port()
    argv = ["-b", f"tcp://127.0.0.1:{port}", "-t", threads]
    if workers:
        argv += ["-w", str(workers)]
    if conf:
        path = tmp / "serval.rb"
        path.write_text(conf)
        argv += ["-C", str(path)]
    s = Server(BUILD, argv + list(args) + [TESTAPP], tmp, env=env)
    s.start()
    s.wait_booted(workers=workers or None)
    s.port = port
    return s


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("hostile"))
    yield s
    s.kill_group()
    assert not s.sanitizer_reports()


def status_of(resp):
    line = resp.split(b"\r\n", 1)[0]
    return int(line.split()[1]) if line.startswith(b"HTTP/1.") else None


def exchange(port, data, timeout=15.0):
    """Send data, read until the server closes; returns (bytes, closed). closed is
    False when the server still held the connection after timeout: one it should
    close is closed at once, and one it forgot stays open until persistent_timeout
    (65 s), so counting the close, not timing it, tells them apart on a loaded machine."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks, closed = [], False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                chunks.append(b"<RESET>")
                closed = True
                break
            if not b:
                closed = True
                break
            chunks.append(b)
        return b"".join(chunks), closed


def heads(out):
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", out)


# ---- F1-F4: one place decides when a response is complete --------------------------


def test_f1_head_of_a_stream_then_a_byte_is_answered_once(srv):
    """HEAD of a streamed route followed by one byte: the HEAD is answered once,
    the byte is the next (malformed) request; before the fix the same request
    was dispatched again forever."""
    out, closed = exchange(srv.port, b"HEAD /stream?bytes=1 HTTP/1.1\r\nHost: x\r\n\r\nX")
    assert heads(out) == [b"200", b"501"], out[:400]
    assert closed, "the connection must close after the error"


def test_f1_head_of_a_stream_keeps_the_connection(srv):
    out, _ = exchange(
        srv.port,
        b"HEAD /stream?bytes=5 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert heads(out) == [b"200", b"200"], out
    first, rest = out.split(b"\r\n\r\n", 1)
    assert b"Transfer-Encoding: chunked" in first
    assert rest.startswith(b"HTTP/1.1 200 OK"), "a HEAD answer has no body, not even a last chunk"
    assert out.endswith(b"Hello World")


def test_f2_http10_stream_ends_with_the_connection(srv):
    out, closed = exchange(srv.port, b"GET /stream?bytes=10 HTTP/1.0\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert body == b"abcdefghij"
    assert b"Connection: close" in head
    assert closed, "the close-delimited body must end with the connection"


def test_f2_http10_head_of_a_stream(srv):
    out, closed = exchange(srv.port, b"HEAD /stream?bytes=10 HTTP/1.0\r\n\r\n")
    assert heads(out) == [b"200"] and out.endswith(b"\r\n\r\n")
    assert closed


@pytest.mark.parametrize("status", [204, 304])
def test_f3_file_after_204_304_sends_no_body(srv, status):
    out, _ = exchange(
        srv.port,
        f"GET /respond?status={status}&mode=3 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert b"respond-file" not in out, "the file's bytes would read as a second response"
    first, rest = out.split(b"\r\n\r\n", 1)
    assert status_of(first) == status
    assert b"Content-Length" not in first and b"Transfer-Encoding" not in first
    assert rest.startswith(b"HTTP/1.1 200 OK") and rest.endswith(b"Hello World")


def test_f3_head_of_a_file_announces_its_length(srv):
    out, _ = exchange(srv.port, b"HEAD /respond?mode=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Content-Length: 13\r\n" in out and out.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("status", [204, 304])
def test_f4_streamed_204_304_has_no_transfer_encoding(srv, status):
    out, _ = exchange(
        srv.port,
        f"GET /respond?status={status}&mode=2 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    first, rest = out.split(b"\r\n\r\n", 1)
    assert status_of(first) == status
    assert b"Transfer-Encoding" not in first and b"Content-Length" not in first
    assert rest.startswith(b"HTTP/1.1 200 OK"), rest[:60]


def test_f4_streamed_204_to_http10_keeps_alive_when_asked(srv):
    out, closed = exchange(
        srv.port,
        b"GET /respond?status=204&mode=2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        b"GET / HTTP/1.0\r\n\r\n",
    )
    assert heads(out) == [b"204", b"200"], out
    assert closed


# ---- F13, F14, F19: the app interface ------------------------------------------------


def test_f13_echo_without_body(srv):
    """serval_request_read on a request without a body (UBSan caught memcpy from NULL)."""
    r = get(srv.port, "/echo")
    assert r.status == 200 and r.json()["body_length"] == 0


def test_f14_file_with_a_huge_length_is_cut_to_the_file(srv):
    out, _ = exchange(srv.port, b"GET /respond?mode=4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"Content-Length: 12\r\n" in head, head
    assert body == b"espond-file\n"


def test_f19_header_value_with_a_control_byte_is_refused(srv):
    out, _ = exchange(srv.port, b"GET /respond?mode=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = out.partition(b"\r\n\r\n")[0]
    assert b"X-Ctl-Rc: -22\r\n" in head, head
    assert b"X-Ctl:" not in head and b"\x01" not in out


# ---- F18 and h1spec --strict ------------------------------------------------------------


@pytest.mark.parametrize(
    "req,want",
    [
        (b"GET /\r\nHost: localhost\r\n\r\n", 400),  # malformed request line (was 505)
        (b"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n", 400),  # invalid Host value
        (b"GET / HTTP/1.1\r\nHost: a b@c/d\r\n\r\n", 400),  # F18
        (b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400),
        (b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),  # F18
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"GET http://a%zz b/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET http://us@er/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ],
    ids=["no-version", "host-space", "host-junk", "host-at", "chunked-http10", "te-gzip-chunked", "te-gzip",
         "authority-space", "authority-userinfo"],
)
def test_strict_rejections(srv, req, want):
    out = raw(srv.port, req + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(out) == want, out[:200]
    assert heads(out) == [str(want).encode()], "nothing after the bad request is answered"
    assert b"Connection: close" in out


@pytest.mark.parametrize("host", [b"example.com", b"example.com:8080", b"127.0.0.1:9292", b"[::1]:80", b""])
def test_valid_hosts_are_accepted(srv, host):
    out = raw(srv.port, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
    assert status_of(out) == 200


def test_f18_absolute_form_authority_wins_over_host(srv):
    out = raw(srv.port, b"GET http://auth.example:8080/echo?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n")
    body = out.partition(b"\r\n\r\n")[2]
    assert b'"Host":"auth.example:8080"' in body, body
    assert b'"path":"/echo"' in body and b'"query":"q=1"' in body


# ---- request bodies: whole before the app, memory bounded ------------------------------


def test_large_body_reaches_the_app_from_a_temp_file(srv):
    size = 3 * 1024 * 1024
    r = request(srv.port, "/echo", method="POST", body=b"y" * size)
    assert r.json()["body_length"] == size


def test_expect_continue_answered_at_the_head(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nExpect: 100-continue\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"z" * 2000000)
        data = b""
        while b'"body_length":2000000' not in data:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk


def test_large_body_mapped_whole_for_serval_request_body(tmp_path):
    """A body in a temp file reaches serval_request_body whole (mapped), byte for byte."""
    port = free_port()
    s = Server(BUILD, ["-b", f"tcp://127.0.0.1:{port}", os.path.join(BUILD, "tests", "apps", "apiapp.so")], tmp_path)
    s.start()
    try:
        s.wait_booted()
        body = bytes(range(256)) * 12000  # 3 MB, above body_buffer_size
        r = request(port, "/body", method="POST", body=body, timeout=20)
        assert r.status == 200 and r.body == body
    finally:
        s.kill_group()


def unchunk(data):
    """Decode a chunked body; returns (body, rest after the last chunk)."""
    out, pos = [], 0
    while True:
        eol = data.index(b"\r\n", pos)
        size = int(data[pos:eol], 16)
        if size == 0:
            return b"".join(out), data[eol + 4:]
        out.append(data[eol + 2:eol + 2 + size])
        assert data[eol + 2 + size:eol + 4 + size] == b"\r\n"
        pos = eol + 4 + size


def test_spooled_stream_arrives_intact_and_in_order(srv):
    """A client that reads late gets the spooled part of a stream byte-exact, then its
    pipelined next request's answer."""
    n = 9_000_000
    with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as c:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 262144)
        c.sendall(f"GET /stream?bytes={n} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                  + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        # the app finishes while we do not read: the rest waits in the spool, not in its thread
        assert get(srv.port, "/sleep?ms=1", timeout=5).status == 200
        data = bytearray()
        while True:
            got = c.recv(1 << 20)
            if not got:
                break
            data += got
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Transfer-Encoding: chunked" in head
    body, after = unchunk(rest)
    pattern = bytes(range(ord("a"), ord("z") + 1))
    assert len(body) == n
    assert body == (pattern * (n // 26 + 1))[:n] or all(
        body[i:i + 16380] == (pattern * 631)[:len(body[i:i + 16380])] for i in range(0, n, 16380)
    ), "the spooled bytes differ from what the app wrote"
    assert after.startswith(b"HTTP/1.1 200 OK") and after.endswith(b"Hello World")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_f15_bodies_in_memory_are_bounded(tmp_path):
    """Many half-sent bodies just under body_buffer_size: past body_memory_limit
    they wait in temp files, so the process's memory stays bounded."""
    s = start(tmp_path, conf='body_memory_limit "4MB"\n')
    socks = []
    try:
        before = rss_kb(s.pid)
        for _ in range(60):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            c.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"b" * 900000)
            socks.append(c)
        assert get(s.port, "/").status == 200  # all bodies are in: the reactor has read them
        grown = rss_kb(s.pid) - before
        # (under ASan freed memory stays resident in its quarantine: only the normal build is measured)
        assert SANITIZED or grown < 30 * 1024, f"RSS grew by {grown} kB for 54 MB of pending bodies"
        for c in socks[:5]:
            c.sendall(b"b" * 100000)
            data = b""
            while b'"body_length":1000000' not in data:
                chunk = c.recv(65536)
                assert chunk
                data += chunk
    finally:
        for c in socks:
            c.close()
        s.kill_group()


def test_slow_body_is_cut_by_the_minimum_rate(tmp_path):
    """A body trickling below min_request_data_rate gets 408 after the grace
    period, although bytes keep coming (first_data_timeout alone never fires)."""
    s = start(tmp_path, conf="min_request_data_rate 1000\ndata_rate_grace_period 1\n")
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            c.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
            t0 = time.monotonic()
            out = b""
            c.settimeout(0.2)
            while time.monotonic() - t0 < 8:
                try:
                    c.sendall(b"x")
                    got = c.recv(4096)
                    if not got:
                        break
                    out += got
                except socket.timeout:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
            assert status_of(out) == 408, out
            assert time.monotonic() - t0 < 5
    finally:
        s.kill_group()


def test_slow_reader_holds_no_thread_and_is_cut(tmp_path):
    """-t 1:1: a client that never reads a large stream does not keep the one
    thread (the rest waits in the spool), and is closed by the minimum rate."""
    s = start(tmp_path, conf="min_response_data_rate 10000\ndata_rate_grace_period 1\n", threads="1:1")
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.sendall(b"GET /stream?bytes=20000000 HTTP/1.1\r\nHost: x\r\n\r\n")
            c.recv(100)
            t0 = time.monotonic()
            assert get(s.port, "/", timeout=5).status == 200
            # the client reads nothing more: once a window passes below the rate the server drops
            # the connection (with a reset, so the kernel does not keep megabytes queued for it)
            def server_side_gone():
                r = subprocess.run(["ss", "-Htn", f"sport = :{s.port}"], capture_output=True, text=True, timeout=5)
                return r.stdout.strip() == ""

            wait_until(server_side_gone, timeout=12, interval=0.2, what="the slow reader cut")
            assert time.monotonic() - t0 < 12
    finally:
        s.kill_group()


def test_full_spool_cuts_slow_readers_not_threads(tmp_path):
    """max_response_buffer reached: a further slow reader's stream is cut (and said so
    once), the one thread stays free."""
    s = start(tmp_path, conf='max_response_buffer "1MB"\n', threads="1:1")
    socks = []
    try:
        for _ in range(3):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.sendall(b"GET /stream?bytes=20000000 HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(c)
            assert get(s.port, "/", timeout=5).status == 200
        s.wait_log(r"cut a streamed response to a slow client: max_response_buffer", stream="stderr", timeout=10)
        assert s.count(r"cut a streamed response", stream="stderr") == 1, "said once, not for every cut"
    finally:
        for c in socks:
            c.close()
        s.kill_group()


# ---- issue 15: a drain loses no keep-alive request --------------------------------------


def test_drain_answers_the_next_keep_alive_request(tmp_path):
    """A keep-alive stream whose head went out before a phased restart: the
    client reads it to the end and sends its next request on the same
    connection; the old worker answers it, with Connection: close."""
    s = start(tmp_path, workers=1)
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=15) as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            c.sendall(b"GET /stream?bytes=20000000 HTTP/1.1\r\nHost: x\r\n\r\n")
            first = c.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" not in first.split(b"\r\n\r\n")[0]
            s.send(signal.SIGUSR1)
            s.wait_log(r"Stopping \d+ for phased upgrade", timeout=20)
            tail = first[-5:]
            while not tail.endswith(b"0\r\n\r\n"):
                got = c.recv(1 << 20)
                assert got, "the old worker closed the connection before the stream's end"
                tail = (tail + got)[-5:]
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            out = b""
            while not out.endswith(b"Hello World"):
                got = c.recv(4096)
                assert got, f"the request sent after the stream was lost: {out!r}"
                out += got
            assert out.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in out
            c.settimeout(5)
            assert c.recv(100) == b"", "after a Connection: close answer the old worker closes"
    finally:
        s.kill_group()


# ---- slowhttptest: no slow client takes the service ------------------------------------

SLOW = shutil.which("slowhttptest")


class Probe:
    """GET / every 0.5 s on a fresh connection, one at a time, each waited for as long
    as it takes (a loaded machine answers late, not never); keeps (start, end, ok)."""

    def __init__(self, port):
        self.port, self.spans, self.failed = port, [], []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                r = get(self.port, "/", timeout=60)
                if r.status == 200 and r.body == b"Hello World":
                    self.spans.append((t0, time.monotonic()))
                else:
                    self.failed.append(f"status {r.status}")
            except Exception as e:  # noqa: BLE001 - counted
                self.failed.append(f"{type(e).__name__} at +{t0 - self.t_start:.1f}s: {e}")
            self._stop.wait(max(0.0, 0.5 - (time.monotonic() - t0)))

    def answered(self, since, until):
        """Probes sent at or after since and answered by until."""
        return [(a, b) for a, b in list(self.spans) if a >= since and b <= until]

    def __enter__(self):
        self.t_start = time.monotonic()
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(timeout=70)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("slow"), workers=2)
    yield s
    s.kill_group()
    assert not s.sanitizer_reports()


# Sanitized builds run these paths for their reports, at a rate a 5-10x slower server keeps up with.
CONNS, RATE = ("50", "20") if SANITIZED else ("200", "200")
ATTACKS = {
    # slow body: bodies announced large, sent 10 bytes at a time every 2 s (F5)
    "body": ["-B", "-c", CONNS, "-r", RATE, "-i", "2", "-s", "2000000", "-t", "POST", "-x", "10"],
    # slow read: a tiny window, 32 bytes read every 5 s (F6)
    "read": ["-X", "-c", CONNS, "-r", RATE, "-w", "512", "-y", "1024", "-n", "5", "-z", "32", "-k", "2"],
    # slowloris: a header line every 2 s
    "loris": ["-H", "-c", CONNS, "-r", RATE, "-i", "2", "-x", "10"],
}
# The stream is larger than a loopback socket's send buffer (up to 4 MB), so a slow
# reader's backlog must wait somewhere: before, in the app's thread. Each such request
# costs the server the whole stream's CPU (spooled), so on a loaded 2-core machine the
# runs stay modest, and smaller under ASan; bench/slowclients runs the audit's sizes.
ROUTES = {"streamed": "/stream?bytes=5000000", "buffered": "/echo"}


# An attack holds its connections until it ends: probes answered while it runs (sent
# once its connections are all open, after CONNS / RATE s) are the proof. A server a
# slow client can take answers none of them until the attack ends, however long the
# run; a loaded machine answers them later. So a run lasts until PROBES such answers
# (about 2 s on a quiet machine), not a fixed time, up to ATTACK_LIMIT s.
PROBES, ATTACK_LIMIT = 4, 40


@pytest.mark.skipif(not SLOW, reason="slowhttptest not installed (scripts/deps.sh)")
@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_slowhttptest_leaves_the_service_available(cluster, tmp_path, attack, route):
    url = f"http://127.0.0.1:{cluster.port}{ROUTES[route]}"
    argv = [SLOW] + ATTACKS[attack] + ["-l", str(ATTACK_LIMIT + 20), "-p", "3", "-u", url]
    log = open(tmp_path / "slowhttptest.log", "wb")
    with Probe(cluster.port) as probe:
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             cwd=str(tmp_path), start_new_session=True)
        t_open = time.monotonic() + int(CONNS) / int(RATE)
        try:
            deadline = time.monotonic() + ATTACK_LIMIT
            while (p.poll() is None and time.monotonic() < deadline
                   and len(probe.answered(t_open, time.monotonic())) < PROBES):
                time.sleep(0.1)
            t_end = time.monotonic()
            attack_ran = p.poll() is None
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
    log.close()
    answered = probe.answered(t_open, t_end)
    worst = max((b - a for a, b in probe.spans), default=0)
    assert attack_ran, f"slowhttptest ended early ({p.returncode}): {(tmp_path / 'slowhttptest.log').read_text()[-800:]}"
    assert len(answered) >= PROBES, (f"{len(answered)} probes answered during the attack in {t_end - t_open:.1f}s "
                                     f"(slowest {worst:.2f}s): {probe.failed[:5]}")
    assert not probe.failed, f"{len(probe.failed)} probes failed: {probe.failed[:5]}"
    assert cluster.alive()
