"""The parts of the app interface testapp does not exercise."""

import os

import pytest

from conftest import BUILD
from helpers import Server, free_port, get, raw, request

API = os.path.join(BUILD, "tests", "apps", "apiapp.so")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    port = free_port()
    s = Server(BUILD, ["-b", f"tcp://127.0.0.1:{port}", "-t", "1:2", API], tmp)
    s.start()
    s.wait_booted()
    s.port = port
    s.tmp = tmp
    yield s
    s.kill_group()
    assert not s.sanitizer_reports()


def test_sendfile_whole_file(srv):
    data = os.urandom(3 * 1024 * 1024)  # larger than a socket buffer: the write completes later
    p = srv.tmp / "blob"
    p.write_bytes(data)
    r = get(srv.port, f"/file?{p}")
    assert r.status == 200 and r.body == data
    assert r.headers["content-length"] == str(len(data))


def test_sendfile_range(srv):
    p = srv.tmp / "small"
    p.write_bytes(bytes(range(100)))
    assert get(srv.port, f"/range?{p}").body == bytes(range(10, 30))


def test_head_of_a_file_has_length_and_no_body(srv):
    p = srv.tmp / "h"
    p.write_bytes(b"x" * 1000)
    out = raw(srv.port, f"HEAD /file?{p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"Content-Length: 1000" in head and body == b""


def test_custom_headers_status_and_rejected_headers(srv):
    r = get(srv.port, "/headers")
    assert r.status == 201 and r.headers["x-custom"] == "yes"
    # Content-Length is serval's; CR/LF injection and bad names are refused
    assert r.body == b"0 -22 -22 -22"
    assert "injected" not in r.headers


def test_buffered_body_is_available_whole(srv):
    r = request(srv.port, "/body", method="POST", body=b"abc" * 1000)
    assert r.body == b"abc" * 1000


def test_app_without_a_response_gets_500(srv):
    r = get(srv.port, "/nothing")
    assert r.status == 500
    assert "returned without a response" in srv.stderr()


def test_peer(srv):
    assert get(srv.port, "/peer").text.startswith("127.0.0.1:")


def test_204_and_304_carry_no_body_framing(srv):
    for status in (204, 304):
        out = raw(srv.port, f"GET /status?{status} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head = out.split(b"\r\n\r\n")[0]
        assert head.startswith(f"HTTP/1.1 {status}".encode())
        assert b"Content-Length" not in head and b"Transfer-Encoding" not in head
