"""shutdown_delay: a lame-duck phase on TERM.

/readyz answers 503 at once while every worker keeps serving, new connections and
keep-alive ones alike; the graceful stop begins when the delay is over; a second
TERM (or an INT) skips the rest of the delay; /livez stays 200 throughout.
"""

import http.client
import signal
import time

import pytest

from helpers import free_port, get, wait_until

TOKEN = "tok"


def readyz(cport):
    c = http.client.HTTPConnection("127.0.0.1", cport, timeout=5)
    try:
        c.request("GET", f"/readyz?token={TOKEN}")
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def livez(cport):
    c = http.client.HTTPConnection("127.0.0.1", cport, timeout=5)
    try:
        c.request("GET", f"/livez?token={TOKEN}")
        return c.getresponse().status
    finally:
        c.close()


def start(servers, testapp, port, tmp_path, workers, delay):
    cport = free_port()
    conf = tmp_path / "serval.rb"
    conf.write_text(f"shutdown_delay {delay}\n")
    args = ["-C", str(conf), "-b", f"tcp://127.0.0.1:{port}", "--control-url",
            f"tcp://127.0.0.1:{cport}", "--control-token", TOKEN, testapp]
    if workers:
        args = ["-w", str(workers)] + args
    return servers(*args, workers=workers or None), cport


@pytest.mark.parametrize("workers", [2, 0], ids=["cluster", "single"])
def test_term_starts_a_lame_duck_phase_that_keeps_serving(servers, testapp, port, tmp_path, workers):
    s, cport = start(servers, testapp, port, tmp_path, workers, 3)
    assert readyz(cport)[0] == 200
    ka = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    ka.request("GET", "/")
    assert ka.getresponse().read() == b"Hello World"
    t0 = time.monotonic()
    s.send(signal.SIGTERM)
    wait_until(lambda: readyz(cport)[0] == 503, 2, what="readyz 503")
    status, body = readyz(cport)
    assert "lame-duck" in body
    assert livez(cport) == 200
    # During the delay: new connections and the open keep-alive one are served,
    # and nothing says Connection: close yet.
    served = 0
    while time.monotonic() - t0 < 2.0:
        assert get(port, "/").body == b"Hello World"
        ka.request("GET", "/")
        r = ka.getresponse()
        assert r.read() == b"Hello World"
        assert (r.getheader("Connection") or "").lower() != "close"
        served += 1
        time.sleep(0.05)
    assert served > 5
    assert s.alive()
    assert s.wait_exit(20) == 0
    took = time.monotonic() - t0
    assert took >= 2.9, f"stopped after {took:.1f} s, before the 3 s delay was over"
    assert s.count(r"Lame duck for 3 s") == 1
    ka.close()


def test_second_term_skips_the_rest_of_the_delay(servers, testapp, port, tmp_path):
    s, cport = start(servers, testapp, port, tmp_path, 2, 30)
    s.send(signal.SIGTERM)
    wait_until(lambda: readyz(cport)[0] == 503, 2, what="readyz 503")
    t0 = time.monotonic()
    s.send(signal.SIGTERM)
    assert s.wait_exit(15) == 0
    assert time.monotonic() - t0 < 10
    assert s.count(r"Lame duck cut short") == 1


def test_int_never_waits(servers, testapp, port, tmp_path):
    s, _ = start(servers, testapp, port, tmp_path, 0, 30)
    t0 = time.monotonic()
    s.send(signal.SIGINT)
    assert s.wait_exit(15) == 0
    assert time.monotonic() - t0 < 10
    assert s.count(r"Lame duck for") == 0


def test_restart_refused_during_the_lame_duck(servers, testapp, port, tmp_path):
    s, cport = start(servers, testapp, port, tmp_path, 1, 3)
    s.send(signal.SIGTERM)
    wait_until(lambda: readyz(cport)[0] == 503, 2, what="readyz 503")
    s.send(signal.SIGUSR2)
    assert s.wait_exit(20) == 0
    assert s.count(r"Lame duck for 3 s") == 1
    assert s.count(r"SIGUSR2 refused: stopping") == 1
