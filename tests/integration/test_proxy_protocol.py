"""The PROXY protocol (set_remote_address proxy_protocol: :v1 / :v2 / :any,
docs/proxy.md): the client a load balancer names reaches serval_request_peer()
and the request log; a connection without a valid header is closed with a
rate-limited log line; a slow or partial header is timed out like a request
head and holds no thread; TLS listeners read the header before the
ClientHello; single and cluster mode."""

import os
import shutil
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import BUILD
from helpers import Server, free_port, wait_until

API = os.path.join(BUILD, "tests", "apps", "apiapp.so")
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
REQ = b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
REFUSED = "PROXY protocol: closed a connection from 127.0.0.1:"


def v1(src="203.0.113.7", dst="10.0.0.1", sport=4242, dport=80):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src="203.0.113.7", dst="10.0.0.1", sport=4242, dport=80, cmd=1, tlvs=b"", version=2, family=None):
    if ":" in src:
        fam, addrs = 0x21, socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
    else:
        fam, addrs = 0x11, socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst)
    body = addrs + struct.pack("!HH", sport, dport) + tlvs
    return SIG + bytes([(version << 4) | cmd, family if family is not None else fam]) + struct.pack("!H", len(body)) + body


def v2_local():
    return SIG + bytes([0x20, 0x00]) + b"\x00\x00"


def exchange(target, data, timeout=10, shut=False):
    """Send data, return what the server sends until it closes ('' when it closes
    without answering; a reset counts as closed)."""
    fam = socket.AF_UNIX if isinstance(target, str) else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(target if isinstance(target, str) else ("127.0.0.1", target))
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return b""
        out = b""
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                return out
            if not b:
                return out
            out += b


def body_of(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), resp
    return body.decode()


def start(tmp, conf, *args, workers=0, threads="1:1"):
    port = free_port()
    path = tmp / f"serval-{port}.rb"
    path.write_text(conf)
    s = Server(BUILD, ["-C", str(path), "-w", str(workers), "-t", threads, "-b", f"tcp://127.0.0.1:{port}",
                       "--log-requests", *args, API], tmp)
    s.start()
    s.wait_booted(workers=workers or None)
    s.port = port
    return s


@pytest.fixture(scope="module")
def pp(tmp_path_factory):
    """Single mode, one thread, a 3 s first_data_timeout, PROXY v1 or v2, tcp and unix."""
    tmp = tmp_path_factory.mktemp("pp")
    sock = str(tmp / "pp.sock")
    s = start(tmp, "set_remote_address proxy_protocol: :any\nfirst_data_timeout 3\n", "-b", f"unix://{sock}")
    s.sock = sock
    yield s
    s.kill_group()
    assert not s.sanitizer_reports()


def test_v1_tcp4_names_the_client_in_peer_and_log(pp):
    assert body_of(exchange(pp.port, v1() + REQ)) == "203.0.113.7:4242"
    pp.wait_log(r'203\.0\.113\.7 - - \[.*\] "GET /peer HTTP/1\.1" 200')


def test_v1_tcp6(pp):
    assert body_of(exchange(pp.port, v1("2001:db8::1", "2001:db8::2", 65535, 443) + REQ)) == "[2001:db8::1]:65535"
    pp.wait_log(r'2001:db8::1 - - \[.*"GET /peer HTTP/1\.1" 200')  # the log shows the address alone


def test_v2_tcp4_tcp6_and_tlvs(pp):
    assert body_of(exchange(pp.port, v2("198.51.100.9", sport=5555) + REQ)) == "198.51.100.9:5555"
    assert body_of(exchange(pp.port, v2("2001:db8::7", "2001:db8::8", 1, 2) + REQ)) == "[2001:db8::7]:1"
    # TLVs (PP2_TYPE_AUTHORITY, PP2_TYPE_NOOP) after the addresses are skipped
    tlvs = b"\x02\x00\x09localhost" + b"\x04\x00\x03abc"
    assert body_of(exchange(pp.port, v2("198.51.100.10", tlvs=tlvs) + REQ)) == "198.51.100.10:4242"


def test_v1_and_v2_over_a_unix_socket(pp):
    assert body_of(exchange(pp.sock, v1("192.0.2.44", sport=7) + REQ)) == "192.0.2.44:7"
    assert body_of(exchange(pp.sock, v2_local() + REQ)) == "unix"


def test_local_and_unknown_keep_the_socket_peer(pp):
    for header in (v2_local(), b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n",
                   SIG + bytes([0x21, 0x00]) + b"\x00\x00"):  # PROXY command, AF_UNSPEC
        assert body_of(exchange(pp.port, header + REQ)).startswith("127.0.0.1:"), header


def test_the_header_comes_once_per_connection(pp):
    keep = b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n"
    out = exchange(pp.port, v1("192.0.2.5", sport=9) + keep + REQ)
    assert out.count(b"HTTP/1.1 200") == 2 and out.count(b"192.0.2.5:9") == 2, out
    # a second PROXY line later on the connection is not a header any more: a request
    # line with an unknown method (501), and the connection closes
    out = exchange(pp.port, v1("192.0.2.5", sport=9) + keep + v1("192.0.2.6") + REQ)
    assert out.count(b"HTTP/1.1 200") == 1 and b"HTTP/1.1 501" in out and b"192.0.2.6" not in out, out


BAD = [
    REQ,                                            # no header at all
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" + REQ,      # bare LF
    b"PROXY TCP4 ::1 ::1 1 2\r\n" + REQ,            # family and addresses disagree
    b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n" + REQ,
    b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n" + REQ,
    b"PROXY " + b"1" * 120 + b"\r\n" + REQ,         # longer than a v1 line can be
    v2(version=1) + REQ,
    v2(family=0x41) + REQ,
    v2(cmd=3) + REQ,
    SIG[:11] + b"X" + REQ,                           # the v2 signature, broken
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40,  # a TLS ClientHello
]


@pytest.mark.parametrize("data", BAD, ids=range(len(BAD)))
def test_missing_or_malformed_header_closes_the_connection(pp, data):
    assert b"HTTP/" not in exchange(pp.port, data)
    assert body_of(exchange(pp.port, v1("192.0.2.8") + REQ)) == "192.0.2.8:4242"  # still serving


def test_refusals_are_logged_once_a_second(pp):
    wait_until(lambda: exchange(pp.port, REQ) == b"" and REFUSED in pp.stderr(), timeout=10, what="a refusal line")
    t0 = time.monotonic()
    before = pp.count(REFUSED, "stderr")
    for _ in range(30):
        assert b"HTTP/" not in exchange(pp.port, b"NOT A PROXY HEADER\r\n\r\n")
    elapsed = time.monotonic() - t0
    assert pp.count(REFUSED, "stderr") - before <= int(elapsed) + 1, pp.stderr()
    line = pp.stderr().strip().splitlines()[-1]
    assert "set_remote_address proxy_protocol: :any wants a PROXY header first" in line, line

    def refused_again():
        exchange(pp.port, b"NOT A PROXY HEADER\r\n\r\n")
        return "more since the last such line" in pp.stderr().strip().splitlines()[-1]

    wait_until(refused_again, timeout=10, interval=0.3, what="a refusal line counting the ones left out")


def test_truncated_header_then_close(pp):
    """A client that closes inside its PROXY header is closed at once, not held to its
    first_data_timeout: a witness connection opened just before, stuck inside its own
    header, is still open when the truncated one has been closed (no clock involved)."""
    for part in (b"PROXY TCP4 1.2.3.4", b"PROX", SIG[:6], v2()[:20]):
        with socket.create_connection(("127.0.0.1", pp.port), timeout=20) as witness:
            witness.sendall(part)
            assert exchange(pp.port, part, shut=True) == b""
            witness.setblocking(False)
            with pytest.raises(BlockingIOError):
                witness.recv(1)  # still open: the truncated one did not wait for the deadline
    assert body_of(exchange(pp.port, v1("192.0.2.9") + REQ)) == "192.0.2.9:4242"


def test_slow_headers_time_out_and_hold_no_thread(pp):
    """One serving thread: five clients stuck inside their PROXY headers, and one
    sending a valid header a byte at a time, do not keep a good client waiting,
    and are closed at first_data_timeout (3 s) from their accept, however the
    bytes trickle."""
    stuck = []
    for part in (b"PROX", SIG[:5], v2()[:20], b"PROXY TCP4 1.2.3.4 ", b"P"):
        c = socket.create_connection(("127.0.0.1", pp.port), timeout=20)
        c.sendall(part)
        stuck.append(c)
    drip = socket.create_connection(("127.0.0.1", pp.port), timeout=20)
    header, sent = v1(), 0
    assert body_of(exchange(pp.port, v1("192.0.2.10") + REQ, timeout=5)) == "192.0.2.10:4242"
    for c in stuck:
        c.setblocking(False)
        with pytest.raises(BlockingIOError):
            c.recv(1)  # still open while the good client was served
        c.setblocking(True)

    def closed_drip():
        nonlocal sent
        try:
            drip.sendall(header[sent:sent + 1])
            sent += 1
        except (BrokenPipeError, ConnectionResetError):
            return True
        drip.setblocking(False)
        try:
            return drip.recv(1) == b""
        except BlockingIOError:
            return False
        except ConnectionResetError:
            return True
        finally:
            drip.setblocking(True)

    wait_until(closed_drip, timeout=15, interval=0.25, what="the dripping header closed")
    assert sent < len(header), "the dripping client got its whole header in"
    for c in stuck:
        c.settimeout(15)
        try:
            assert c.recv(1) == b""
        except ConnectionResetError:
            pass
        c.close()
    drip.close()


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_curl_haproxy_protocol(pp):
    """curl --haproxy-protocol sends a v1 header naming its own socket."""
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "--haproxy-protocol", "--local-port", "41000-41999",
                        f"http://127.0.0.1:{pp.port}/peer"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    host, port = r.stdout.rsplit(":", 1)
    assert host == "127.0.0.1" and 41000 <= int(port) <= 41999, r.stdout


def test_v1_only_refuses_v2(servers, tmp_path):
    conf = tmp_path / "v1.rb"
    conf.write_text("set_remote_address proxy_protocol: :v1\n")
    port = free_port()
    s = servers("-C", str(conf), "-b", f"tcp://127.0.0.1:{port}", API)
    assert body_of(exchange(port, v1("192.0.2.11") + REQ)) == "192.0.2.11:4242"
    assert exchange(port, v2("192.0.2.12") + REQ) == b""
    s.wait_log("no valid PROXY header", stream="stderr")
    assert "proxy_protocol: :v1 wants" in s.stderr()


def test_tls_listener_reads_the_header_before_the_client_hello_in_cluster_mode(servers, tmp_path):
    from test_tls import PKI
    d = tmp_path / "pki"
    d.mkdir()
    pki = PKI(d)
    cert, key = pki.issue("server", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
    conf = tmp_path / "tls.rb"
    conf.write_text("set_remote_address proxy_protocol: :v2\n")
    port = free_port()
    servers("-C", str(conf), "-w", "2", "-b", f"ssl://127.0.0.1:{port}?cert={cert}&key={key}", "--log-requests",
            API, workers=2)
    ctx = ssl.create_default_context(cafile=pki.ca)
    for i in range(4):  # both workers, whichever accepts
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(v2("198.51.100.20", sport=6000 + i))
            with ctx.wrap_socket(raw, server_hostname="localhost") as t:
                t.sendall(REQ)
                out = b""
                while True:
                    b = t.recv(65536)
                    if not b:
                        break
                    out += b
        assert body_of(out) == f"198.51.100.20:{6000 + i}"
    # TLS straight away, with no PROXY header first: refused before any handshake
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            ctx.wrap_socket(raw, server_hostname="localhost").sendall(REQ)
