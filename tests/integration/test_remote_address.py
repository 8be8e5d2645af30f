"""set_remote_address header: "X-Forwarded-For" (docs/proxy.md): the header
is believed only from a trusted peer (loopback and private ranges by default,
or trusted_proxies), walked from the right past trusted hops; combined with
a PROXY header; a fixed address; HAProxy's send-proxy-v2 and forwardfor in
front of serval; the config forms and their errors."""

import http.client
import json
import os
import shutil
import subprocess

import pytest

from conftest import BUILD
from helpers import Server, free_port, get, raw, wait_until
from test_proxy_protocol import REQ, body_of, exchange, v1

API = os.path.join(BUILD, "tests", "apps", "apiapp.so")
SERVAL = os.path.join(BUILD, "serval")


def peer(target, xff=None, headers=None):
    h = dict(headers or {})
    if xff is not None:
        h["X-Forwarded-For"] = xff
    r = get(target, "/peer", headers=h)
    assert r.status == 200
    return r.text


@pytest.fixture(scope="module")
def fwd(tmp_path_factory):
    """Cluster mode (2 workers), the default trust list, tcp and unix."""
    tmp = tmp_path_factory.mktemp("fwd")
    port = free_port()
    sock = str(tmp / "fwd.sock")
    conf = tmp / "fwd.rb"
    conf.write_text('set_remote_address header: "X-Forwarded-For"\n')
    s = Server(BUILD, ["-C", str(conf), "-w", "2", "-b", f"tcp://127.0.0.1:{port}", "-b", f"unix://{sock}",
                       "--log-requests", API], tmp)
    s.start()
    s.wait_booted(workers=2)
    s.port, s.sock = port, sock
    yield s
    s.kill_group()
    assert not s.sanitizer_reports()


def test_trusted_peer_walks_the_header_from_the_right(fwd):
    # 127.0.0.1 is trusted by default: the rightmost untrusted entry is the client
    assert peer(fwd.port, "198.51.100.1, 203.0.113.7") == "203.0.113.7"
    assert peer(fwd.port, "203.0.113.7, 10.0.0.2, 192.168.1.1") == "203.0.113.7"  # trusted hops skipped
    assert peer(fwd.port, "10.0.0.1, 127.0.0.1") == "10.0.0.1"  # all trusted: the leftmost
    assert peer(fwd.port, "2001:db8::5") == "[2001:db8::5]"
    assert peer(fwd.port, "[2001:db8::6]:443") == "[2001:db8::6]"
    assert peer(fwd.port, "203.0.113.8:5050") == "203.0.113.8"
    # a forged entry left of the one our proxy wrote does not win
    assert peer(fwd.port, "1.2.3.4, 203.0.113.9") == "203.0.113.9"
    fwd.wait_log(r'203\.0\.113\.9 - - \[.*"GET /peer HTTP/1\.1" 200')


def test_without_a_usable_header_the_socket_peer_stays(fwd):
    assert peer(fwd.port).startswith("127.0.0.1:")
    assert peer(fwd.port, "").startswith("127.0.0.1:")
    assert peer(fwd.port, "not-an-address").startswith("127.0.0.1:")
    assert peer(fwd.port, "203.0.113.7,").startswith("127.0.0.1:")
    # another header name is not this one
    assert peer(fwd.port, headers={"X-Real-IP": "203.0.113.7"}).startswith("127.0.0.1:")


def test_repeated_header_lines_are_one_list(fwd):
    out = raw(fwd.port, b"GET /peer HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.1\r\n"
                        b"x-forwarded-for: 198.51.100.2, 10.0.0.9\r\nConnection: close\r\n\r\n")
    assert body_of(out) == "198.51.100.2"


def test_each_request_of_a_keep_alive_connection_has_its_own_client(fwd):
    conn = http.client.HTTPConnection("127.0.0.1", fwd.port, timeout=10)
    try:
        for xff in ("203.0.113.21", "203.0.113.22", None, "203.0.113.23"):
            conn.request("GET", "/peer", headers={"X-Forwarded-For": xff} if xff else {})
            got = conn.getresponse().read().decode()
            assert got == xff if xff else got.startswith("127.0.0.1:"), (xff, got)
    finally:
        conn.close()


def test_a_unix_socket_peer_is_trusted(fwd):
    assert peer(fwd.sock, "203.0.113.30") == "203.0.113.30"
    assert peer(fwd.sock) == "unix"


def test_an_untrusted_peer_cannot_set_its_address(servers, tmp_path):
    """trusted_proxies without loopback: this test's client, on 127.0.0.1, is
    an untrusted peer, and its header is ignored."""
    conf = tmp_path / "c.rb"
    conf.write_text('set_remote_address header: "X-Forwarded-For", trusted_proxies: ["10.0.0.0/8", "fd00::/8"]\n')
    port = free_port()
    s = servers("-C", str(conf), "-b", f"tcp://127.0.0.1:{port}", "--log-requests", API)
    got = peer(port, "203.0.113.7")
    assert got.startswith("127.0.0.1:"), got
    s.wait_log(r'127\.0\.0\.1 - - \[.*"GET /peer HTTP/1\.1" 200')
    assert "203.0.113.7" not in s.stdout()


def test_proxy_header_names_the_peer_whose_forwarded_for_is_believed(servers, tmp_path):
    conf = tmp_path / "c.rb"
    conf.write_text('set_remote_address proxy_protocol: :v1, header: "X-Forwarded-For", '
                    'trusted_proxies: "10.0.0.0/8"\n')
    port = free_port()
    servers("-C", str(conf), "-b", f"tcp://127.0.0.1:{port}", API)
    req = b"GET /peer HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.4\r\nConnection: close\r\n\r\n"
    # the balancer (PROXY) says the peer is 10.1.2.3, a trusted proxy: its header counts
    assert body_of(exchange(port, v1("10.1.2.3", sport=1000) + req)) == "198.51.100.4"
    # the balancer says the peer is 203.0.113.5, not trusted: its header does not
    assert body_of(exchange(port, v1("203.0.113.5", sport=1234) + req)) == "203.0.113.5:1234"
    assert body_of(exchange(port, v1("10.1.2.3", sport=1000) + REQ)) == "10.1.2.3:1000"


@pytest.mark.parametrize("form,want", [('"192.0.2.1"', "192.0.2.1"), (":localhost", "127.0.0.1")])
def test_a_fixed_address(servers, tmp_path, form, want):
    conf = tmp_path / "c.rb"
    conf.write_text(f"set_remote_address {form}\n")
    port = free_port()
    s = servers("-C", str(conf), "-b", f"tcp://127.0.0.1:{port}", "--log-requests", API)
    assert peer(port, "203.0.113.7") == want
    s.wait_log(want.replace(".", r"\.") + r' - - \[.*"GET /peer')


@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy (Debian haproxy) is not installed")
def test_behind_haproxy_send_proxy_v2_and_forwardfor(servers, tmp_path):
    """The real thing in front: HAProxy in tcp mode with send-proxy-v2, and in
    http mode with option forwardfor (which appends the client to the header)."""
    b1, b2, f1, f2 = (free_port() for _ in range(4))
    pc, fc = tmp_path / "pp.rb", tmp_path / "fwd.rb"
    pc.write_text("set_remote_address proxy_protocol: :v2\n")
    fc.write_text('set_remote_address header: "X-Forwarded-For"\n')
    servers("-C", str(pc), "-b", f"tcp://127.0.0.1:{b1}", API)
    servers("-C", str(fc), "-b", f"tcp://127.0.0.1:{b2}", API)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""global
    maxconn 64
defaults
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend pp
    mode tcp
    bind 127.0.0.1:{f1}
    default_backend pp
backend pp
    mode tcp
    server s1 127.0.0.1:{b1} send-proxy-v2
frontend fwd
    mode http
    bind 127.0.0.1:{f2}
    default_backend fwd
backend fwd
    mode http
    option forwardfor
    server s2 127.0.0.1:{b2}
""")
    log = open(tmp_path / "haproxy.log", "wb")
    hp = subprocess.Popen(["haproxy", "-f", str(cfg), "-db"], stdout=log, stderr=subprocess.STDOUT,
                          start_new_session=True)
    try:
        def up():
            try:
                return get(f1, "/peer").status == 200 and get(f2, "/peer").status == 200
            except OSError:
                return False

        wait_until(up, timeout=15, what="haproxy up")
        conn = http.client.HTTPConnection("127.0.0.1", f1, timeout=10)
        conn.connect()
        mine = conn.sock.getsockname()[1]
        conn.request("GET", "/peer")
        assert conn.getresponse().read().decode() == f"127.0.0.1:{mine}"  # our port, not HAProxy's
        conn.close()
        assert peer(f2, "203.0.113.50") == "203.0.113.50"  # HAProxy appended 127.0.0.1, trusted, skipped
    finally:
        hp.kill()
        hp.wait(timeout=10)
        log.close()


def test_config_forms_check_and_print(tmp_path):
    conf = tmp_path / "c.rb"
    conf.write_text('set_remote_address proxy_protocol: :v2, header: "X-Forwarded-For", '
                    'trusted_proxies: ["10.0.0.0/8", "192.0.2.7"]\nbind_to_activated_sockets "only"\n')
    r = subprocess.run([SERVAL, "-C", str(conf), "--print-config", "--strict"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    got = json.loads(r.stdout)
    assert got["set_remote_address"] == {"value": None, "proxy_protocol": "v2", "header": "X-Forwarded-For",
                                         "trusted_proxies": ["10.0.0.0/8", "192.0.2.7"]}
    assert got["bind_to_activated_sockets"] == "only"
    r = subprocess.run([SERVAL, "-C", str(conf), "--check", "--strict"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    conf.write_text("workers 0\nset_remote_address proxy_protocol: :v3\n")
    r = subprocess.run([SERVAL, "-C", str(conf), "--check"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert r.stderr.strip() == f"{conf}:2: proxy_protocol expects :v1, :v2 or :any, got :v3", r.stderr
    r = subprocess.run([SERVAL, "--bind-to-activated-sockets=only", "--print-config"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and json.loads(r.stdout)["bind_to_activated_sockets"] == "only", r.stderr


@pytest.fixture
def netns():
    """Two network namespaces joined by a veth pair, on RFC 2544's benchmark range
    (198.18.0.0/15: neither loopback nor private, so untrusted by default):
    the server's at 198.18.1.1, the client's at 198.18.1.2. Removed afterwards."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 (ip netns)")
    tag = f"{os.getpid() % 100000}"
    srv, cli = f"svxs{tag}", f"svxc{tag}"
    made = []

    def ip(*args):
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    try:
        for ns in (srv, cli):
            ip("netns", "add", ns)
            made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", srv, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", cli)
        for ns, addr in ((srv, "198.18.1.1"), (cli, "198.18.1.2")):
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
        yield srv, cli
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def ns_peer(cli, port, xff):
    """GET /peer from inside the client namespace, with an X-Forwarded-For header."""
    code = ("import http.client,sys\n"
            f"c=http.client.HTTPConnection('198.18.1.1',{port},timeout=10)\n"
            f"c.request('GET','/peer',headers={{'X-Forwarded-For':'{xff}'}})\n"
            "sys.stdout.write(c.getresponse().read().decode())\n")

    def attempt():
        r = subprocess.run(["ip", "netns", "exec", cli, "python3", "-c", code], capture_output=True, text=True,
                           timeout=30)
        return r.stdout if r.returncode == 0 else None

    return wait_until(attempt, timeout=15, interval=0.2, what="an answer across the namespaces")


def test_a_peer_outside_the_trusted_ranges_across_namespaces(netns, servers, tmp_path):
    """A real untrusted peer (198.18.1.2, another namespace): with the default
    trust list its X-Forwarded-For is ignored; listed in trusted_proxies, it is
    believed."""
    srv, cli = netns
    port = free_port()
    conf = tmp_path / "c.rb"
    conf.write_text('set_remote_address header: "X-Forwarded-For"\n')
    s = servers("netns", "exec", srv, SERVAL, "-C", str(conf), "-b", f"tcp://198.18.1.1:{port}",
                "--log-requests", API, binary="ip")
    got = ns_peer(cli, port, "203.0.113.7")
    assert got.startswith("198.18.1.2:"), got
    s.wait_log(r'198\.18\.1\.2 - - \[.*"GET /peer')
    s.stop()

    conf.write_text('set_remote_address header: "X-Forwarded-For", trusted_proxies: ["198.18.1.0/24"]\n')
    s = servers("netns", "exec", srv, SERVAL, "-C", str(conf), "-b", f"tcp://198.18.1.1:{port}",
                "--log-requests", API, binary="ip")
    assert ns_peer(cli, port, "203.0.113.7") == "203.0.113.7"
    s.wait_log(r'203\.0\.113\.7 - - \[.*"GET /peer')
