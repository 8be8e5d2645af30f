"""Client timeouts, worker supervision timeouts and recycling, with small values."""

import os
import re
import signal
import socket
import threading
import time

import pytest

from helpers import ClientLoop, free_port, get, raw, stats, wait_until


def conf(tmp_path, text):
    p = tmp_path / "t.rb"
    p.write_text(text)
    return str(p)


def test_persistent_timeout_closes_idle_keepalive(servers, testapp, tmp_path, port):
    servers("-C", conf(tmp_path, "persistent_timeout 1\n"), "-b", f"tcp://127.0.0.1:{port}", testapp)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"Hello World" in s.recv(4096)
        t0 = time.monotonic()
        assert s.recv(100) == b""  # closed by the server, silently
        assert 0.8 < time.monotonic() - t0 < 3


def test_request_timeout_stops_slowloris(servers, testapp, tmp_path, port):
    """A head trickled one byte at a time beats first_data_timeout but not request_timeout."""
    servers("-C", conf(tmp_path, "first_data_timeout 2\nrequest_timeout 2\n"), "-b", f"tcp://127.0.0.1:{port}", testapp)
    with socket.create_connection(("127.0.0.1", port), timeout=8) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        got = b""
        while time.monotonic() - t0 < 6:
            try:
                s.send(b"X-A: b\r\n")
            except OSError:
                break
            s.settimeout(0.3)
            try:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            except socket.timeout:
                pass
        elapsed = time.monotonic() - t0
    assert b"408" in got.split(b"\r\n", 1)[0]
    assert elapsed < 4


def test_slowloris_load_leaves_fast_clients_unaffected(servers, testapp, port):
    """300 slowloris connections beside 2 fast clients (-t 1:2): the fast clients' median
    latency stays near what it was without them (measured just before, on this machine)."""
    servers("-w", "2", "-t", "1:2", "-b", f"tcp://127.0.0.1:{port}", testapp, workers=2)
    with ClientLoop(port, threads=2) as base:
        base.wait_requests(300, timeout=20)
    base.assert_clean()
    base_med = sorted(base.latencies)[len(base.latencies) // 2]
    stop = threading.Event()
    socks = []

    def slowloris():
        for _ in range(300):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
                socks.append(s)
            except OSError:
                pass
        while not stop.is_set():
            for s in list(socks):
                try:
                    s.send(b"X-a: b\r\n")
                except OSError:
                    pass
            time.sleep(0.2)

    t = threading.Thread(target=slowloris, daemon=True)
    t.start()
    try:
        wait_until(lambda: len(socks) >= 300, timeout=10, what="slow clients connected")
        with ClientLoop(port, threads=2) as loop:
            loop.wait_requests(300, timeout=20)
        loop.assert_clean()
        lat = sorted(loop.latencies)
        med = lat[len(lat) // 2]
        assert med < max(0.02, 4 * base_med), f"median {med * 1000:.1f} ms, {base_med * 1000:.1f} ms without slowloris"
    finally:
        stop.set()
        for s in socks:
            s.close()


def test_hung_worker_is_killed_after_worker_timeout_and_replaced(servers, testapp, tmp_path, port):
    s = servers("-C", conf(tmp_path, "worker_check_interval 1\nworker_timeout 6\n"),
                "-w", "2", "-t", "1:2", "-b", f"tcp://127.0.0.1:{port}", testapp, workers=2)
    w0, w1 = s.wait_workers(2)

    def hang():
        try:
            get(port, "/hang", timeout=30)
        except OSError:
            pass

    # hang both threads of one worker: aim at it by waiting until it is the one stuck
    hangers = []
    for _ in range(6):
        t = threading.Thread(target=hang, daemon=True)
        t.start()
        hangers.append(t)
        time.sleep(0.15)
    t0 = time.monotonic()
    with ClientLoop(port, threads=2) as loop:
        s.wait_log(r"failed to check in within 6 seconds", stream="stderr", timeout=20)
        killed_at = time.monotonic() - t0
        s.wait_log(r"booted in", count=3, timeout=10)
        loop.wait_requests(50)
    assert 5 < killed_at < 14, killed_at
    assert loop.ok > 0


def test_worker_boot_timeout(servers, testapp, tmp_path, port):
    s = servers("-C", conf(tmp_path, "worker_boot_timeout 1\n"), "-w", "1", "-b", f"tcp://127.0.0.1:{port}",
                testapp, env={"TESTAPP_BOOT_MS": "3000"}, wait=False)
    s.wait_log(r"failed to boot within 1 seconds", stream="stderr", timeout=10)
    assert s.alive()


def test_worker_shutdown_timeout_kills_a_stuck_worker(servers, testapp, tmp_path, port):
    s = servers("-C", conf(tmp_path, "worker_shutdown_timeout 1\n"), "-w", "1", "-b", f"tcp://127.0.0.1:{port}",
                testapp, workers=1)
    threading.Thread(target=lambda: _quiet(lambda: get(port, "/sleep?ms=20000", timeout=30)), daemon=True).start()
    time.sleep(0.3)
    t0 = time.monotonic()
    assert s.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - t0 < 4
    assert "did not stop within 1 seconds" in s.stderr()


def test_force_shutdown_after(servers, testapp, tmp_path, port):
    s = servers("-C", conf(tmp_path, "force_shutdown_after 1\n"), "-b", f"tcp://127.0.0.1:{port}", testapp)
    threading.Thread(target=lambda: _quiet(lambda: get(port, "/sleep?ms=20000", timeout=30)), daemon=True).start()
    time.sleep(0.3)
    t0 = time.monotonic()
    s.stop(signal.SIGTERM, timeout=10)
    assert time.monotonic() - t0 < 4


def test_max_requests_recycles_without_failing_a_request(servers, testapp, tmp_path, port):
    s = servers("-C", conf(tmp_path, "worker_check_interval 1\nmax_requests 200, 50\n"),
                "-w", "2", "-b", f"tcp://127.0.0.1:{port}", testapp, workers=2)
    first = set(s.wait_workers(2))
    with ClientLoop(port, threads=4) as loop:
        s.wait_log(r"Recycling worker", timeout=30)
        s.wait_log(r"booted in", count=3, timeout=20)
        wait_until(lambda: not (set(s.workers()) & first) and len(s.workers()) == 2, timeout=30,
                   what="both workers recycled")
        loop.wait_requests(100)
    loop.assert_clean(min_ok=400)


def _quiet(fn):
    try:
        fn()
    except OSError:
        pass


def test_max_worker_memory_recycles_a_grown_worker(servers, testapp, tmp_path, port):
    s = servers("-C", conf(tmp_path, 'worker_check_interval 1\nmax_worker_memory "40MB"\n'),
                "-w", "2", "-b", f"tcp://127.0.0.1:{port}", testapp, workers=2, env={"TESTAPP_CACHE_MB": "64"})
    before = set(s.wait_workers(2))
    grown = get(port, "/pid").json()["pid"]
    assert get(port, "/cache").status == 200
    with ClientLoop(port, threads=2) as loop:
        s.wait_log(r"Recycling worker \d \(PID: \d+\): over max_worker_memory", timeout=20)
        wait_until(lambda: len(s.workers()) == 2 and not (set(s.workers()) <= before), timeout=20,
                   what="a recycled worker")
        loop.wait_requests(50)
    loop.assert_clean()


def test_a_worker_that_dies_while_it_is_recycled_ends_the_recycle(servers, testapp, tmp_path, port):
    """The recycle's machine is told of the old worker's exit (the machine interface's
    exited): the operation ends, the replacement serves, nothing waits on the dead one."""
    cport = free_port()
    s = servers("-C", conf(tmp_path, 'worker_check_interval 1\nmax_worker_memory "40MB"\n'),
                "-w", "2", "-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{cport}",
                "--control-token", "tok", testapp, workers=2,
                env={"TESTAPP_CACHE_MB": "64", "TESTAPP_BOOT_MS": "1500"})
    s.wait_workers(2)
    assert get(port, "/cache").status == 200  # one worker grows past the limit
    s.wait_log(r"Recycling worker \d \(PID: \d+\): over max_worker_memory", timeout=20)
    old = int(re.search(r"Recycling worker \d \(PID: (\d+)\)", s.stdout()).group(1))
    os.kill(old, signal.SIGKILL)  # while its replacement boots (1.5 s)

    def settled():
        j = stats(cport)
        r = j["restart"]
        last = r.get("last") or {}
        return (not r["current"] and last.get("kind") == "recycle" and last.get("state") == "succeeded"
                and j["booted_workers"] == 2 and len(s.workers()) == 2 and old not in s.workers())

    wait_until(settled, timeout=30, what="the recycle ended and 2 workers serve")
    assert get(port, "/").status == 200
