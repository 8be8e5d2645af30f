"""HTTP/1.1 behaviour of a serving process: framing, keep-alive, pipelining,
bodies, limits, and malformed or smuggling-shaped input."""

import os
import socket
import time

import pytest

from conftest import BUILD
from helpers import Server, free_port, get, raw, request, sleeping_threads, wait_until


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http")
    port = free_port()
    s = Server(
        BUILD,
        ["-b", f"tcp://127.0.0.1:{port}", "-t", "2:4", os.path.join(BUILD, "examples", "testapp.so")],
        tmp,
        env={"SERVAL_TEST": "1"},
    )
    s.start()
    s.wait_booted()
    s.port = port
    # small limits for the limit tests run on a second server
    yield s
    s.kill_group()
    assert not s.sanitizer_reports()


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    port = free_port()
    conf = tmp / "serval.rb"
    conf.write_text(
        "max_request_line 256\nmax_header_size 2048\nmax_headers 20\n"
        'max_body_size "64KB"\nbody_buffer_size "16KB"\nfirst_data_timeout 2\n'
    )
    s = Server(BUILD, ["-C", str(conf), "-b", f"tcp://127.0.0.1:{port}", os.path.join(BUILD, "examples", "testapp.so")], tmp)
    s.start()
    s.wait_booted()
    s.port = port
    yield s
    s.kill_group()
    assert not s.sanitizer_reports()


def status_of(resp):
    line = resp.split(b"\r\n", 1)[0]
    return int(line.split()[1]) if line.startswith(b"HTTP/1.") else None


def test_get_hello(srv):
    r = get(srv.port, "/")
    assert r.status == 200
    assert r.body == b"Hello World"
    assert r.headers["content-type"] == "text/plain"
    assert r.headers["content-length"] == "11"
    assert r.headers["date"].endswith("GMT") and len(r.headers["date"]) == 29


def test_head_has_length_but_no_body(srv):
    out = raw(srv.port, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"Content-Length: 11" in head
    assert body == b""


def test_not_found(srv):
    assert get(srv.port, "/nope").status == 404


def test_keep_alive_reuses_connection(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        for _ in range(3):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while not data.endswith(b"Hello World"):
                chunk = s.recv(4096)
                assert chunk, "server closed a keep-alive connection"
                data += chunk
            assert b"Connection: close" not in data


def test_pipelined_requests_answered_in_order(srv):
    reqs = b"".join(
        b"GET /sleep?ms=%d HTTP/1.1\r\nHost: x\r\n\r\n" % ms for ms in (30, 0, 10)
    ) + b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = raw(srv.port, reqs)
    assert out.count(b"HTTP/1.1 200 OK") == 4
    i30, i0, i10 = out.find(b"Slept 30"), out.find(b"Slept 0"), out.find(b"Slept 10")
    assert 0 < i30 < i0 < i10


def test_http10_closes_by_default_and_keeps_alive_on_request(srv):
    out = raw(srv.port, b"GET / HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and b"Connection: close" in out
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data = s.recv(4096)
        assert b"Connection: keep-alive" in data
        s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert b"Hello World" in s.recv(4096)


def test_connection_close_is_honoured(srv):
    out = raw(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Connection: close" in out and out.endswith(b"Hello World")


def test_echo_body_content_length(srv):
    r = request(srv.port, "/echo?x=1", method="POST", body=b"a" * 1000, headers={"X-Test": "yes"})
    j = r.json()
    assert j["method"] == "POST" and j["path"] == "/echo" and j["query"] == "x=1"
    assert j["body_length"] == 1000
    assert j["headers"]["X-Test"] == "yes"


def test_echo_chunked_body(srv):
    body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
    out = raw(
        srv.port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body,
    )
    assert status_of(out) == 200
    assert b'"body_length":11' in out


def test_large_body_reaches_the_app_whole(srv):
    size = 5 * 1024 * 1024  # above the default 1 MiB body_buffer_size
    r = request(srv.port, "/echo", method="POST", body=b"x" * size)
    assert r.json()["body_length"] == size


def test_expect_100_continue(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"hello")
        data = first
        while b'"body_length":5' not in data:
            chunk = s.recv(4096)
            assert chunk
            data += chunk


def test_unsupported_expect_is_417(srv):
    out = raw(srv.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: magic\r\n\r\nx")
    assert status_of(out) == 417


def test_stream_chunked_response(srv):
    r = get(srv.port, "/stream?bytes=100000")
    assert r.status == 200
    assert len(r.body) == 100000
    assert r.headers.get("transfer-encoding") == "chunked"


def test_stream_to_http10_client_is_close_delimited(srv):
    out = raw(srv.port, b"GET /stream?bytes=5000 HTTP/1.0\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"chunked" not in head and len(body) == 5000


def test_missing_host_is_400(srv):
    out = raw(srv.port, b"GET / HTTP/1.1\r\n\r\n")
    assert status_of(out) == 400 and b"Connection: close" in out


@pytest.mark.parametrize(
    "req",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["cl+te", "two-cl", "bad-chunk", "bare-cr", "bare-lf", "obs-fold", "space-colon", "te-order", "garbage", "nul"],
)
def test_malformed_and_smuggling_shaped_input_is_4xx_and_closed(srv, req):
    out = raw(srv.port, req + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    st = status_of(out)
    assert st is not None and 400 <= st < 600 and st != 200, out[:200]
    assert out.count(b"HTTP/1.1") == 1, "the connection must close after the error"
    assert b"Connection: close" in out
    assert get(srv.port, "/").status == 200  # the server is fine


def test_http2_version_is_505(srv):
    assert status_of(raw(srv.port, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")) == 505


def test_uri_too_long_is_414(limited):
    out = raw(limited.port, b"GET /" + b"a" * 400 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(out) == 414


def test_headers_too_large_is_431(limited):
    out = raw(limited.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n")
    assert status_of(out) == 431


def test_too_many_headers_is_431(limited):
    hdrs = b"".join(b"X-%d: y\r\n" % i for i in range(30))
    assert status_of(raw(limited.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n")) == 431


def test_body_too_large_is_413_without_reading_it(limited):
    out = raw(limited.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
    assert status_of(out) == 413


def test_chunked_body_too_large_is_413(limited):
    chunk = b"%x\r\n" % 8192 + b"a" * 8192 + b"\r\n"
    req = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 10 + b"0\r\n\r\n"
    assert status_of(raw(limited.port, req)) == 413


def test_body_above_buffer_size_waits_in_a_temp_file(limited):
    r = request(limited.port, "/echo", method="POST", body=b"x" * 40000)
    assert r.json()["body_length"] == 40000


def test_first_data_timeout_408_on_incomplete_body(limited):
    t0 = time.monotonic()
    out = raw(limited.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab", timeout=8)
    assert status_of(out) == 408
    assert 1.5 < time.monotonic() - t0 < 5


def test_silent_connection_closed_after_first_data_timeout(limited):
    with socket.create_connection(("127.0.0.1", limited.port), timeout=8) as s:
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert 1.5 < time.monotonic() - t0 < 5


def test_peer_and_many_headers_roundtrip(srv):
    r = request(srv.port, "/echo", headers={f"X-H{i}": str(i) for i in range(50)})
    h = r.json()["headers"]
    assert all(h[f"X-H{i}"] == str(i) for i in range(50))


def test_slow_client_does_not_hold_a_thread(srv):
    """A client trickling a request head must not block others (threads 2:4): 20 requests
    beside 20 half-sent heads take about what 20 requests take without them (measured
    just before, on this machine), not a thread's wait for a head that never ends."""
    t0 = time.monotonic()
    for _ in range(20):
        assert get(srv.port, "/").status == 200
    alone = time.monotonic() - t0
    socks = []
    try:
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHo")
            socks.append(s)
        t0 = time.monotonic()
        for _ in range(20):
            assert get(srv.port, "/").status == 200
        beside = time.monotonic() - t0
        assert beside < max(2.0, 10 * alone), f"{beside:.2f}s beside the slow heads, {alone:.2f}s without them"
    finally:
        for s in socks:
            s.close()


def test_concurrent_sleeps_use_all_threads(srv):
    """4 threads: four sleeps run at once (one thread may need to be started first),
    seen as four threads of the server asleep together, not timed."""
    import threading

    results = []

    def one():
        results.append(get(srv.port, "/sleep?ms=1000", timeout=20).status)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    most = 0
    while any(t.is_alive() for t in threads):
        most = max(most, sleeping_threads(srv.pid))
        if most == 4:
            break
        time.sleep(0.01)
    for t in threads:
        t.join()
    assert results == [200] * 4
    assert most == 4, f"at most {most} of the 4 sleeps ran at once"
