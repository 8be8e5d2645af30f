"""Idle and slow clients, and the spread of load across workers."""

import socket
import statistics
import threading
import time

from helpers import ClientLoop, get, sleeping_threads, stats, wait_until


def latency_ms(port, n=50):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = get(port, "/")
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status == 200
    return statistics.median(out), sorted(out)[int(n * 0.9)]


def test_idle_and_trickling_connections_do_not_slow_a_fresh_client(servers, testapp, port):
    servers("-w", "2", "-t", "1:4", "-b", f"tcp://127.0.0.1:{port}", testapp, workers=2)
    base_med, base_p90 = latency_ms(port)
    socks = []
    stop = threading.Event()
    try:
        for i in range(1000):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 2:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # trickling: a head that never ends
            socks.append(s)

        def trickle():
            while not stop.is_set():
                for s in socks[1::2][:200]:
                    try:
                        s.send(b"a")
                    except OSError:
                        pass
                time.sleep(0.05)

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        time.sleep(0.3)
        # a loaded machine adds a slow round now and then: the measurement is repeated
        # (up to three rounds), a server slowed by its idle clients is slow in every one
        rounds = []
        for _ in range(3):
            med, p90 = latency_ms(port)
            rounds.append(f"median {med:.2f} ms, p90 {p90:.2f} ms")
            if med - base_med < 10 and p90 - base_p90 < 10:
                break
    finally:
        stop.set()
        for s in socks:
            s.close()
    assert med - base_med < 10 and p90 - base_p90 < 10, \
        f"{'; '.join(rounds)} vs median {base_med:.2f} ms, p90 {base_p90:.2f} ms without the idle clients"


def test_sleep_load_spreads_evenly_across_workers(servers, testapp, port, port2, tmp_path):
    conf = tmp_path / "c.rb"
    conf.write_text("worker_check_interval 1\n")  # the counts reach stats with each check-in
    s = servers("-C", str(conf), "-w", "2", "-t", "2:2", "-b", f"tcp://127.0.0.1:{port}",
                "--control-url", f"tcp://127.0.0.1:{port2}", "--control-token", "tok", testapp, workers=2)
    with ClientLoop(port, path="/sleep?ms=20", threads=4, expect=b"Slept") as loop:
        loop.wait_requests(300, timeout=30)
    loop.assert_clean()

    def counts():
        st = stats(port2)
        c = [w["last_status"].get("requests_count", 0) for w in st["worker_status"]]
        return c if sum(c) >= 300 else None

    c = wait_until(counts, timeout=8, what="check-ins with the request counts")
    share = min(c) / sum(c)
    assert share > 0.3, f"requests per worker {c}"


def test_busy_worker_leaves_new_connections_to_an_idle_one(servers, testapp, port):
    """2 workers x 1 thread: while one is busy (2 s), fast requests go to the other:
    they are all answered while the slow call still sleeps in its worker (no clock
    involved: one that waited behind it would end after it)."""
    s = servers("-w", "2", "-t", "1:1", "-b", f"tcp://127.0.0.1:{port}", testapp, workers=2)
    pids = s.wait_workers(2)
    slow = threading.Thread(target=lambda: get(port, "/sleep?ms=2000", timeout=10))
    slow.start()
    wait_until(lambda: any(sleeping_threads(p) for p in pids), timeout=10, what="the slow call in the app")
    for _ in range(8):
        assert get(port, "/", timeout=5).status == 200
    assert any(sleeping_threads(p) for p in pids), "the fast requests waited for the busy worker"
    slow.join()
