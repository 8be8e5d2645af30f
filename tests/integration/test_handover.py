"""What crosses a hot restart's exec has no fixed cap: a cluster of 300
workers hot-restarts to exactly 300 workers, all of the new image."""

import signal

from helpers import SANITIZED, free_port, get, stats, wait_until
from test_restart import control, wait_op

N = 300


def test_hot_restart_of_300_workers_leaves_exactly_300_new_ones(servers, hello_app, port):
    cport = free_port()
    s = servers("-w", str(N), "-t", "1:1", "-b", f"tcp://127.0.0.1:{port}", "--control-url",
                f"tcp://127.0.0.1:{cport}", "--control-token", "tok", hello_app, wait=False)
    s.port, s.cport = port, cport
    s.wait_booted(workers=N, timeout=180)  # 300 boots: slow under a sanitizer
    old = set(s.wait_workers(N, timeout=120))
    assert len(old) == N
    op = control(s, "restart")
    st = wait_op(s, op, timeout=360 if SANITIZED else 180)  # 300 more boots beside 300 running
    assert st["state"] == "succeeded", st
    assert st["done"] == st["total"] == N, st

    def only_new():
        w = set(s.workers())
        return w if len(w) == N and not (w & old) else None

    try:
        new = wait_until(only_new, 120, interval=0.2, what=f"exactly {N} new workers")
    except AssertionError:
        w = set(s.workers())
        raise AssertionError(f"{len(w)} workers, {len(w & old)} of them old\n{s.logs()[-3000:]}") from None
    j = stats(s.cport)
    assert j["workers"] == N and j["old_workers"] == 0
    assert {w["pid"] for w in j["worker_status"]} == new
    assert not any(w["old_image"] for w in j["worker_status"])
    assert get(port, "/").status == 200
    assert s.stop(signal.SIGTERM, timeout=60) == 0
