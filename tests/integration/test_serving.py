"""The serving model: threads a fast app does not need stay parked, a slow call holds
no other request back, and connections go to the worker with a free thread."""

import http.client
import json
import os
import threading
import time

import pytest

from helpers import SANITIZED, get, wait_until

# x86_64 and aarch64 syscall numbers (first field of /proc/PID/task/TID/syscall)
EPOLL_WAITS = {"232", "281", "441", "22"}   # epoll_wait, epoll_pwait, epoll_pwait2 (x86_64); epoll_pwait (aarch64)
FUTEX = {"202", "98"}                        # futex (x86_64, aarch64)
SLEEPS = {"35", "230", "101", "115"}        # nanosleep, clock_nanosleep (x86_64, aarch64)


def thread_syscalls(pid):
    """The syscall each thread of pid is blocked in ('running' when on a CPU)."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                out.append(f.read().split()[0])
        except OSError:
            pass
    return out


def keep_alive_requests(port, path, n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(n):
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            assert r.status == 200
    finally:
        c.close()


def test_fast_app_keeps_one_thread_polling_and_parks_the_others(servers, testapp, port):
    s = servers("-t", "5:5", "-b", f"tcp://127.0.0.1:{port}", testapp)
    clients = [threading.Thread(target=keep_alive_requests, args=(port, "/", 200)) for _ in range(4)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()

    def one_poller():
        calls = thread_syscalls(s.pid)
        polling = sum(1 for c in calls if c in EPOLL_WAITS)
        parked = sum(1 for c in calls if c in FUTEX)
        return (polling, parked) if polling == 1 and parked >= 4 else None

    wait_until(one_poller, timeout=10, what="one thread in epoll_wait, four parked")


def parked_threads(pid):
    """The tids of pid's threads blocked in futex (parked serving threads)."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                if f.read().split()[0] in FUTEX:
                    out.append(tid)
        except OSError:
            pass
    return out


def voluntary_switches(pid, tid):
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return 0


@pytest.mark.skipif(SANITIZED, reason="under a sanitizer the app's calls are not fast (promoted as a slow app's are)")
def test_parked_threads_do_not_wake_while_a_fast_app_serves(servers, testapp, port):
    """No thread but the poller wakes while a fast app serves: the standby has no
    timer of its own (it used to look every 3 ms, and those wake-ups doubled the
    poller's context switches per request). The main thread's 20 ms tick wakes it
    only when a call holds the poll role, and for a second after a takeover the
    standby looks every ms: on a loaded machine a preempted fast call now and then
    causes one. So the wake-ups are counted in windows of 0.2 s while two
    keep-alive clients run, and quiet windows (at most the tick's 50 wake-ups a
    second, requests served) must turn up; a timer of the standby's own wakes it
    in every window."""
    s = servers("-t", "5:5", "-b", f"tcp://127.0.0.1:{port}", testapp)
    keep_alive_requests(port, "/", 200)
    wait_until(lambda: len(parked_threads(s.pid)) >= 4, timeout=10, what="four parked threads")
    served = [0]
    stop = threading.Event()

    def client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while not stop.is_set():
                c.request("GET", "/")
                r = c.getresponse()
                r.read()
                assert r.status == 200
                served[0] += 1
        finally:
            c.close()

    clients = [threading.Thread(target=client, daemon=True) for _ in range(2)]
    for c in clients:
        c.start()
    windows, quiet = [], 0
    deadline = time.monotonic() + 20
    try:
        while quiet < 3 and time.monotonic() < deadline and all(c.is_alive() for c in clients):
            parked = parked_threads(s.pid)
            before = {t: voluntary_switches(s.pid, t) for t in parked}
            n0, t0 = served[0], time.monotonic()
            time.sleep(0.2)  # a measurement window, not a wait for a condition
            seconds = time.monotonic() - t0
            woke = sum(voluntary_switches(s.pid, t) - before[t] for t in parked)
            n = served[0] - n0
            windows.append((woke, n, round(seconds, 3)))
            # a look every 3 ms would be > 60 in a window; the tick's kicks are at most 50 a second
            if len(parked) >= 4 and n >= 20 and woke <= 2 + 50 * seconds:
                quiet += 1
    finally:
        stop.set()
        for c in clients:
            c.join(timeout=15)
    assert quiet >= 3, f"parked threads woke while a fast app served: (wake-ups, requests, seconds) {windows}"


def test_a_fast_request_is_answered_while_a_slow_call_runs(servers, testapp, port):
    """The app is fast on average (so nothing is promoted eagerly), then one call
    sleeps 4 s: requests on other connections are answered meanwhile, by the
    threads that are free. Each round ends with the slow call still asleep in the
    server: a round that waited behind it would end after it (no clock involved)."""
    s = servers("-t", "3:3", "-b", f"tcp://127.0.0.1:{port}", testapp)
    keep_alive_requests(port, "/", 300)
    done = []
    slow = threading.Thread(target=lambda: done.append(get(port, "/sleep?ms=4000", timeout=20).status))
    slow.start()
    try:
        wait_until(lambda: any(c in SLEEPS for c in thread_syscalls(s.pid)), timeout=10, what="the slow call")
        for _ in range(3):
            keep_alive_requests(port, "/", 5)
            assert get(port, "/", timeout=10).status == 200
            assert any(c in SLEEPS for c in thread_syscalls(s.pid)) and not done, \
                "fast requests waited behind the slow call (or the machine took 4 s for 6 requests)"
    finally:
        slow.join()
    assert done == [200]


def test_connections_go_to_the_worker_with_a_free_thread(servers, testapp, port):
    """2 workers x 2 threads, 4 keep-alive clients: a worker whose threads are all
    spoken for by its connections leaves the next ones to the other worker."""
    s = servers("-w", "2", "-t", "2:2", "-b", f"tcp://127.0.0.1:{port}", testapp, workers=2)
    s.wait_workers(2)
    conns, pids = [], []
    try:
        for _ in range(4):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/pid")
            r = c.getresponse()
            pid = json.loads(r.read())["pid"]
            pids.append(pid)
            conns.append(c)
            # the worker looks at its load after the first response: let it finish
            wait_until(lambda: "running" not in thread_syscalls(pid), timeout=10, what="the worker idle")
            # a worker steps aside on its next balancer tick (20 ms): give it a few
            time.sleep(0.15)
        per_worker = sorted(pids.count(p) for p in set(pids))
        assert per_worker == [2, 2], f"connections per worker {per_worker}"
    finally:
        for c in conns:
            c.close()
