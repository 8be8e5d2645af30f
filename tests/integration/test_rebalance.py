"""Rebalancing keep-alive connections between workers: a worker holding clearly
more than its share closes some of its keep-alive connections after a response
(that response says Connection: close), the clients reconnect and the steering
sends them to the emptier worker. Nothing is lost: every client checks every
response, and a connection may close only after a response that said so."""

import http.client
import json
import signal
import socket
import threading
import time

import pytest

from helpers import TLSTarget, connection, free_port, get, stats, wait_until

TOKEN = "tok"


def boot(servers, testapp, port, tmp_path, workers=2, threads="0:5", bind=None, extra_conf="", env=None):
    """A cluster whose workers check in every 0.2 s, so /stats follows the connection counts."""
    conf = tmp_path / "rebalance.rb"
    # max_keep_alive 0 (unlimited): in these tests only rebalancing closes a keep-alive connection
    conf.write_text("worker_check_interval 0.2\nmax_keep_alive 0\n" + extra_conf)
    cport = free_port()
    s = servers("-w", str(workers), "-t", threads, "-b", bind or f"tcp://127.0.0.1:{port}", "-C", str(conf),
                "--control-url", f"tcp://127.0.0.1:{cport}", "--control-token", TOKEN, testapp, workers=workers,
                env=env)
    s.port, s.cport = port, cport
    return s


def serving(s):
    """The workers that serve (booted, not stopping) as /stats shows them."""
    return [w for w in stats(s.cport)["worker_status"] if w.get("state") == "serving" and w["last_status"]]


def conns_per_worker(s):
    return {w["pid"]: w["last_status"]["connections"] for w in serving(s)}


def rebalanced(s):
    return {w["pid"]: w["last_status"]["connections_rebalanced"] for w in serving(s)}


class Clients:
    """n keep-alive clients in threads, each on its own connection, sending GET /pid
    until stopped. Every response must be a 200 from a worker; a connection is
    reopened only after a response that said Connection: close (http.client does
    that by itself). Anything else, a reset, an EOF where a response should be, a
    timeout, is a failure: there is no retry."""

    def __init__(self, target, n=20, pause=0.01):
        self.target, self.n, self.pause = target, n, pause
        self.ok = 0
        self.closes = 0          # responses that said Connection: close
        self.failures = []
        self.worker_of = {}      # client -> pid of the worker that answered its last request
        self.ready = threading.Barrier(n + 1, timeout=60)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []

    def _one(self, conn):
        conn.request("GET", "/pid")
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise AssertionError(f"status {r.status} body {body[:80]!r}")
        return json.loads(body)["pid"], r.will_close

    def _run(self, i):
        conn = connection(self.target, timeout=15)
        first = True
        try:
            while not self._stop.is_set():
                try:
                    pid, closed = self._one(conn)
                    with self._lock:
                        self.ok += 1
                        self.closes += closed
                        self.worker_of[i] = pid
                except Exception as e:  # noqa: BLE001 - every failure is recorded
                    with self._lock:
                        self.failures.append(f"client {i}: {type(e).__name__}: {e}")
                    conn.close()
                    conn = connection(self.target, timeout=15)
                if first:
                    first = False
                    self.ready.wait()  # every client has its connection before the test goes on
                self._stop.wait(self.pause)
        finally:
            conn.close()

    def start(self, sequential=False):
        """sequential: each client makes its first request before the next connects."""
        for i in range(self.n):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
            if sequential:
                wait_until(lambda: len(self.worker_of) > i, timeout=15, what=f"client {i}'s first answer")
        self.ready.wait()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=20)

    def spread(self):
        """How many clients each worker answered last."""
        with self._lock:
            out = {}
            for pid in self.worker_of.values():
                out[pid] = out.get(pid, 0) + 1
            return out

    def wait_requests(self, n, timeout=30):
        start = self.ok
        wait_until(lambda: self.ok - start >= n, timeout, what=f"{n} more requests")


def wait_spread(s, n_clients, workers=2, timeout=30):
    """Each serving worker holds at least a quarter of the clients' connections (stats)."""
    def ok():
        c = conns_per_worker(s)
        return c if len(c) == workers and min(c.values()) >= n_clients // 4 else None

    try:
        return wait_until(ok, timeout, interval=0.1, what="connections spread over the workers")
    except AssertionError as e:
        raise AssertionError(f"{e}: {conns_per_worker(s)}") from None


@pytest.mark.parametrize("order", ["surge", "stop_first"])
def test_keep_alive_clients_spread_again_after_a_phased_restart(servers, testapp, port, tmp_path, order):
    """An app that takes a moment to boot, as in bench/restart. Surge order: the
    clients of each stopped worker reconnect while both others serve, and the
    steering spreads them. Stop-first order: the clients of the last old worker all
    reconnect to the one new worker that is up, and rebalancing moves some back."""
    s = boot(servers, testapp, port, tmp_path, env={"TESTAPP_BOOT_MS": "1000"},
             extra_conf="phased_restart_order :stop_first\n" if order == "stop_first" else "")
    clients = Clients(port, 20).start()
    try:
        clients.wait_requests(200)
        r = get(s.cport, f"/phased-restart?token={TOKEN}")
        assert r.status == 200, r.body
        wait_until(lambda: stats(s.cport)["phase"] == 1 and stats(s.cport)["old_workers"] == 0
                   and len(serving(s)) == 2, timeout=30, what="phased restart done")
        counts = wait_spread(s, 20)
        clients.wait_requests(200)
    finally:
        clients.stop()
    assert not clients.failures, clients.failures[:10]
    assert min(clients.spread().values()) >= 5 and len(clients.spread()) == 2, clients.spread()
    assert all(v >= 5 for v in counts.values()), counts


def test_a_worker_added_with_ttin_gets_its_share_of_keep_alive_clients(servers, testapp, port, tmp_path):
    """One worker holds all 20 keep-alive clients; TTIN adds a second. Only
    rebalancing can move connections that never close by themselves."""
    s = boot(servers, testapp, port, tmp_path, workers=1)
    clients = Clients(port, 20).start()
    try:
        clients.wait_requests(100)
        assert len(clients.spread()) == 1
        first = serving(s)[0]["pid"]
        s.send(signal.SIGTTIN)
        s.wait_log(r"- Worker 1 \(PID: \d+\) booted")
        counts = wait_spread(s, 20)
        s.wait_log(r"Worker 0: rebalanced \d+ keep-alive connections? in")
        clients.wait_requests(200)
    finally:
        clients.stop()
    assert not clients.failures, clients.failures[:10]
    # each move is one response with Connection: close (the counter reaches stats at the next check-in)
    moved = wait_until(lambda: (lambda m: m if sum(m.values()) == clients.closes else None)(rebalanced(s)),
                       timeout=5, what=f"stats counting the {clients.closes} closes")
    assert 5 <= moved[first] <= 12, moved  # no more than needed to even out
    assert all(v >= 5 for v in counts.values()), counts
    assert s.count(r"Worker 0: rebalancing keep-alive connections: 20 here, 0 on the other workers") == 1, s.stdout()


def test_balanced_keep_alive_clients_are_left_alone(servers, testapp, port, tmp_path):
    s = boot(servers, testapp, port, tmp_path)
    clients = Clients(port, 20).start(sequential=True)
    try:
        counts = wait_spread(s, 20)
        spread = clients.spread()
        t_end = time.monotonic() + 3
        while time.monotonic() < t_end:  # a few seconds of steady traffic
            clients.wait_requests(50)
        moved = rebalanced(s)
    finally:
        clients.stop()
    assert not clients.failures, clients.failures[:10]
    assert all(v == 0 for v in moved.values()) and len(moved) == 2, (moved, counts, spread)
    assert clients.closes == 0
    assert s.count("rebalancing") == 0, s.stdout()


def read_response(f):
    """One response from a buffered socket file: (status, headers, body); None at EOF."""
    line = f.readline()
    if not line:
        return None
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline()
        assert h, "EOF inside a response head"
        if h in (b"\r\n", b"\n"):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    body = f.read(int(headers["content-length"]))
    assert len(body) == int(headers["content-length"]), "EOF inside a response body"
    return status, headers, body


def crowded_worker(servers, testapp, port, tmp_path, first):
    """Worker 0 holds 20 idle keep-alive connections and one more (raw socket, its
    first request sent: TCP_DEFER_ACCEPT waits for data to accept); then TTIN adds
    worker 1. Returns the server, the idle connections, the socket and its file."""
    s = boot(servers, testapp, port, tmp_path, workers=1)
    idle = []
    for _ in range(20):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/pid")
        r = c.getresponse()
        r.read()
        assert r.status == 200 and not r.will_close
        idle.append(c)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = sock.makefile("rb")
    sock.sendall(first)
    status, _, body = read_response(f)
    assert status == 200 and json.loads(body)["worker"] == 0
    s.send(signal.SIGTTIN)
    s.wait_log(r"- Worker 1 \(PID: \d+\) booted")
    return s, idle, sock, f


def test_pipelined_requests_are_all_answered_before_a_rebalancing_close(servers, testapp, port, tmp_path):
    """A pipelining client on a worker that sheds: each batch of 5 requests in one
    write gets 5 responses in order; the close comes after the last of a batch,
    never inside one. Idle keep-alive connections are never closed by it."""
    s, idle, sock, f = crowded_worker(servers, testapp, port, tmp_path, b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
    seq, batches, closed_after = 0, 0, None
    deadline = time.monotonic() + 30
    try:
        while closed_after is None:
            assert time.monotonic() < deadline, f"no rebalancing close after {batches} batches\n{s.stdout()}"
            first = seq
            sock.sendall(b"".join(f"GET /echo?seq={first + k} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for k in range(5)))
            for k in range(5):
                got = read_response(f)
                assert got is not None, f"EOF before response {k + 1} of batch {batches}"
                status, headers, body = got
                assert status == 200 and json.loads(body)["query"] == f"seq={first + k}", (status, body[:100])
                if headers.get("connection", "").lower() == "close":
                    assert k == 4, f"Connection: close on response {k + 1} of 5 (batch {batches})"
                    closed_after = batches
            seq += 5
            batches += 1
        assert f.read(1) == b"", "the connection stays open after Connection: close"
    finally:
        f.close()
        sock.close()
    # the client's next connection goes to the worker that has room
    assert get(port, "/pid").json()["worker"] == 1
    # the idle connections are still open, and each of their requests is answered
    for c in idle:
        c.request("GET", "/pid")
        r = c.getresponse()
        assert r.status == 200, r.status
        r.read()
        c.close()
    wait_until(lambda: sum(rebalanced(s).values()) >= 1, timeout=5, what="the close counted in stats")


def test_an_http10_keep_alive_client_is_moved_the_same_way(servers, testapp, port, tmp_path):
    req = b"GET /pid HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    s, idle, sock, f = crowded_worker(servers, testapp, port, tmp_path, req)
    deadline = time.monotonic() + 30
    try:
        while True:
            assert time.monotonic() < deadline, f"no rebalancing close\n{s.stdout()}"
            sock.sendall(req)
            status, headers, _ = read_response(f)
            assert status == 200
            if headers.get("connection", "").lower() == "close":
                break
            assert headers.get("connection", "").lower() == "keep-alive", headers
        assert f.read(1) == b"", "the connection stays open after Connection: close"
    finally:
        f.close()
        sock.close()
        for c in idle:
            c.close()


def test_tls_keep_alive_clients_are_rebalanced_too(servers, testapp, port, tmp_path):
    from test_tls import PKI, ssl_uri

    d = tmp_path / "pki"
    d.mkdir()
    pki = PKI(d)
    cert, key = pki.issue("server", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
    s = boot(servers, testapp, port, tmp_path, workers=1, bind=ssl_uri(port, cert, key))
    clients = Clients(TLSTarget(port, pki.ca), 12).start()
    try:
        clients.wait_requests(50)
        s.send(signal.SIGTTIN)
        s.wait_log(r"- Worker 1 \(PID: \d+\) booted")
        wait_spread(s, 12)
        clients.wait_requests(100)
    finally:
        clients.stop()
    assert not clients.failures, clients.failures[:10]
    assert clients.closes >= 3
    wait_until(lambda: sum(rebalanced(s).values()) == clients.closes, timeout=5, what="the closes in stats")
