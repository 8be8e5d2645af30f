"""app_timeout: an app call past its deadline gets 504, its worker is replaced
the surge way, and the log names the request, the worker, the time and the
stuck thread's stack with function names. Crashes log the same forensics."""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BUILD
from helpers import ClientLoop, free_port, get, pid_alive, raw, stats, wait_until

DEADLINE_APP = os.path.join(BUILD, "tests", "apps", "deadlineapp.so")
# TSan runs an asynchronous signal's handler only once the thread enters libc: a thread
# spinning in pure app code cannot be asked for its stack there.
TSAN = "tsan" in os.path.basename(BUILD)


def boot(servers, tmp_path, app, port, workers=2, threads="1, 4", timeout="1, cleanup: 2", extra=""):
    cport = free_port()
    conf = tmp_path / f"app_timeout_{port}.rb"
    conf.write_text(
        f"workers {workers}\nthreads {threads}\napp_timeout {timeout}\n"
        f'bind "tcp://127.0.0.1:{port}"\n'
        f'activate_control_app "tcp://127.0.0.1:{cport}", {{ auth_token: "tok" }}\n{extra}'
    )
    s = servers("-C", str(conf), app, workers=workers or None)
    s.port, s.cport = port, cport
    return s


def quiet_get(port, path):
    try:
        get(port, path, timeout=20)
    except OSError:
        pass


def timeout_line(s):
    m = re.search(r'app_timeout: (worker (\d+) \(PID: (\d+)\)|PID \d+): "([^"]*)" ran ([\d.]+) s', s.stderr())
    return m


def metric(cport, name):
    text = get(cport, "/metrics?token=tok").text
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_stuck_request_gets_504_and_its_worker_is_replaced(servers, tmp_path, testapp, port):
    s = boot(servers, tmp_path, testapp, port)
    before = set(s.wait_workers(2))
    with ClientLoop(port, threads=2) as loop, ClientLoop(port, threads=2, keepalive=True) as kloop:
        loop.wait_requests(50)
        kloop.wait_requests(50)
        t0 = time.monotonic()
        r = get(port, "/sleep?ms=60000", timeout=20)
        waited = time.monotonic() - t0
        assert r.status == 504, r
        assert r.headers.get("connection") == "close"
        assert waited < 10, f"504 after {waited:.1f}s"
        s.wait_log(r"app_timeout: worker \d+ \(PID: \d+\)", stream="stderr")
        m = timeout_line(s)
        stuck_pid = int(m.group(3))
        assert stuck_pid in before
        assert m.group(4) == "GET /sleep?ms=60000"
        assert float(m.group(5)) >= 1.0
        # the stack of the stuck thread, with the app's (static) function and serval's
        s.wait_log(r"route_sleep\+0x[0-9a-f]+ \(testapp\.so\)", stream="stderr")
        s.wait_log(r"#\d+ thread_main\+0x[0-9a-f]+ \(serval\)", stream="stderr")
        # surge: the replacement boots, then the stuck one stops, and is gone within the grace
        s.wait_log(r"replaced after an app timeout: stopping it", stream="stdout")
        wait_until(lambda: not pid_alive(stuck_pid), timeout=15, what="the stuck worker to exit")
        after = set(s.wait_workers(2))
        assert stuck_pid not in after and len(after) == 2
        loop.wait_requests(50)
        kloop.wait_requests(50)
    loop.assert_clean(min_ok=100)
    kloop.assert_clean(min_ok=100)
    out = s.stdout()
    assert out.index("booted in", out.index("Worker")) >= 0
    # the replacement booted before the stuck worker was told to stop
    boots = [m.start() for m in re.finditer(r"booted in", out)]
    assert len(boots) >= 3 and boots[2] < out.index("replaced after an app timeout")
    st = stats(s.cport)
    assert st["app_timeouts"] == 1
    assert st["config"]["app_timeout"] == {"timeout": 1.0, "cleanup": 2.0}
    assert metric(s.cport, "serval_app_timeouts_total") == 1


def test_spinning_request_is_answered_and_named(servers, tmp_path, testapp, port):
    s = boot(servers, tmp_path, testapp, port, workers=1)
    old = s.wait_workers(1)
    r = get(port, "/hang", timeout=20)
    assert r.status == 504
    s.wait_log(r'app_timeout: worker 0 \(PID: \d+\): "GET /hang"', stream="stderr")
    if not TSAN:
        s.wait_log(r"#0 route_hang\+0x[0-9a-f]+ \(testapp\.so\)", stream="stderr")
    # the spinning thread never returns: the worker goes at the end of the cleanup grace
    wait_until(lambda: not pid_alive(old[0]), timeout=15, what="the spinning worker to go")
    new = s.wait_workers(1)
    assert new != old
    assert get(port, "/").status == 200


def test_a_begun_response_is_cut_not_followed_by_a_504(servers, tmp_path, port):
    """The app streamed part of its response, then got stuck: past the deadline the
    connection is closed as it stands; nothing else is written into it."""
    s = boot(servers, tmp_path, DEADLINE_APP, port, workers=1)
    data = raw(port, b"GET /begun HTTP/1.1\r\nHost: x\r\n\r\n", timeout=15)
    s.wait_log(r'"GET /begun" ran [\d.]+ s in the app .*: the response had begun', stream="stderr")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert b"first chunk" in data
    assert b"HTTP/1.1 504" not in data
    assert not data.endswith(b"0\r\n\r\n"), "the cut stream must not look complete"


def test_crash_logs_forensics_and_is_counted(servers, tmp_path, testapp, port):
    s = boot(servers, tmp_path, testapp, port, workers=2, timeout="0")
    s.wait_workers(2)
    with pytest.raises(Exception):
        get(port, "/crash", timeout=5)
    s.wait_log(r"died: signal 11 \(SEGV\); replacing it", stream="stderr")
    err = s.stderr()
    assert re.search(r'crash: worker \d+ \(PID: \d+\): signal 11 \(Segmentation fault\) in the app while serving '
                     r'"GET /crash" \([\d.]+ s in the app\)', err), err
    assert re.search(r"#\d+ route_crash\+0x[0-9a-f]+ \(testapp\.so\)", err), err
    # the forensics come before the death
    assert err.index("crash: worker") < err.index("died: signal 11")
    s.wait_log(r"booted in", count=3)
    assert get(port, "/").status == 200
    st = stats(s.cport)
    assert st["crashes"] == 1 and st["worker_deaths"]["crash"] == 1
    assert st["app_timeouts"] == 0
    assert metric(s.cport, "serval_crashes_total") == 1


def test_single_mode_answers_504_and_keeps_serving(servers, tmp_path, port):
    s = boot(servers, tmp_path, DEADLINE_APP, port, workers=0, threads="2, 4")
    r = get(port, "/stuck", timeout=20)
    assert r.status == 504
    s.wait_log(r'app_timeout: PID \d+: "GET /stuck"', stream="stderr")
    if not TSAN:
        s.wait_log(r"deadline_app_stuck_here\+0x[0-9a-f]+ \(deadlineapp\.so\)", stream="stderr")
    s.wait_log(r"single mode: the thread stays", stream="stderr")
    for _ in range(20):
        assert get(port, "/").status == 200
    st = stats(s.cport)
    assert st["app_timeouts"] == 1 and st["crashes"] == 0
    assert metric(s.cport, "serval_app_timeouts_total") == 1
    # a graceful stop does not wait for the lost call
    t0 = time.monotonic()
    assert s.stop(timeout=15) == 0
    assert time.monotonic() - t0 < 8


def test_the_app_reads_its_deadline(servers, tmp_path, port):
    s = boot(servers, tmp_path, DEADLINE_APP, port, workers=0, timeout="3")
    left = int(get(port, "/deadline").text)
    assert 2000 < left <= 3000
    # an app that respects it answers in time: no 504, no timeout counted
    r = get(port, "/polite?ms=10000", timeout=20)
    assert r.status == 200 and r.text.startswith("done after")
    assert stats(s.cport)["app_timeouts"] == 0


def test_off_by_default(servers, port):
    s = servers("-b", f"tcp://127.0.0.1:{port}", DEADLINE_APP)
    assert get(port, "/deadline").text == "-1"
    assert s.alive()


def test_config_check(tmp_path, serval_bin):
    ok = tmp_path / "ok.rb"
    ok.write_text("app_timeout 30, cleanup: 3\n")
    r = subprocess.run([serval_bin, "--check", "-C", str(ok)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.rb"
    bad.write_text("app_timeout 30, grace: 3\n")
    r = subprocess.run([serval_bin, "--check", "-C", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert f"{bad}:1:" in r.stderr and "cleanup" in r.stderr
    r = subprocess.run([serval_bin, "--help"], capture_output=True, text=True, timeout=30)
    assert "app_timeout SECONDS[, cleanup: SECONDS]" in r.stdout


def test_head_gets_a_504_without_body(servers, tmp_path, port):
    boot(servers, tmp_path, DEADLINE_APP, port, workers=0, threads="2, 4")
    data = raw(port, b"HEAD /stuck HTTP/1.1\r\nHost: x\r\n\r\n", timeout=15)
    assert data.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n"), data
    assert data.endswith(b"\r\n\r\n"), data


def test_thread_dumps_have_function_names(servers, tmp_path, testapp, port):
    """/thread-backtraces (single mode: every serving thread) and SIGPWR (a worker's threads)."""
    s = boot(servers, tmp_path, testapp, port, workers=0, threads="2, 4", timeout="0")
    # the request stays in the app while we look; the server's end at teardown drops it
    t = threading.Thread(target=quiet_get, args=(port, "/sleep?ms=3000"), daemon=True)
    t.start()
    wait_until(lambda: stats(s.cport)["busy_threads"] == 1, timeout=10, what="the request in the app")
    threads = get(s.cport, "/thread-backtraces?token=tok").json()
    assert threads[0]["name"].endswith(" single")
    assert any(f.startswith("sv_state_backtraces+0x") for f in threads[0]["backtrace"]), threads[0]
    inside = [th for th in threads if "inside the app" in th["name"]]
    assert inside and any(f.startswith("route_sleep+0x") and f.endswith("(testapp.so)") for f in inside[0]["backtrace"])


def test_sigpwr_dump_names_a_workers_threads(servers, tmp_path, testapp, port):
    s = boot(servers, tmp_path, testapp, port, workers=1, timeout="0")
    worker = s.wait_workers(1)[0]
    # the request stays in the app while we look; the server's end at teardown drops it
    t = threading.Thread(target=quiet_get, args=(port, "/sleep?ms=4000"), daemon=True)
    t.start()

    def dumped():
        os.kill(worker, signal.SIGPWR)  # again until the dump shows the request in the app
        time.sleep(0.3)
        return re.search(r"#\d+ route_sleep\+0x[0-9a-f]+ \(testapp\.so\)", s.stdout())

    wait_until(dumped, timeout=4, what="a dump with route_sleep")
    assert re.search(r"serving thread \d+: inside the app for", s.stdout())


def test_the_stuck_workers_other_requests_finish(servers, tmp_path, testapp, port):
    """A request that starts while the replacement boots (slowly: TESTAPP_BOOT_MS) runs
    on the stuck worker, and completes during its drain."""
    cport = free_port()
    conf = tmp_path / "other.rb"
    conf.write_text(f"workers 1\nthreads 1, 4\napp_timeout 2, cleanup: 5\n"
                    f'bind "tcp://127.0.0.1:{port}"\n'
                    f'activate_control_app "tcp://127.0.0.1:{cport}", {{ auth_token: "tok" }}\n')
    s = servers("-C", str(conf), testapp, workers=1)
    old = s.wait_workers(1)[0]
    (tmp_path / "BOOT_MS").write_text("1500\n")  # the replacement boots slowly (testapp's ./BOOT_MS)
    results = {}

    def call(name, path):
        results[name] = get(port, path, timeout=30)

    stuck = threading.Thread(target=call, args=("stuck", "/sleep?ms=60000"))
    stuck.start()
    s.wait_log(r"app_timeout: worker 0", stream="stderr")
    slow = threading.Thread(target=call, args=("slow", "/pid?x=1"))
    slower = threading.Thread(target=call, args=("slower", "/sleep?ms=1900"))
    slow.start()
    slower.start()
    for t in (stuck, slow, slower):
        t.join(timeout=30)
    assert results["stuck"].status == 504
    assert results["slow"].status == 200
    assert results["slower"].status == 200 and results["slower"].text == "Slept 1900"
    wait_until(lambda: not pid_alive(old), timeout=15, what="the old worker to exit")
    # it left by itself once its requests were done (no SIGKILL)
    assert "did not stop within" not in s.stderr()
    assert stats(cport)["app_timeouts"] == 1


def test_more_stuck_requests_than_threads_all_get_504(servers, tmp_path, testapp, port):
    """Requests queued while every thread is stuck wait for a replacement: a
    worker being replaced does not take them from the shared queue and drop them."""
    s = boot(servers, tmp_path, testapp, port, workers=2, threads="1, 2", timeout="2, cleanup: 1")
    s.wait_workers(2)
    results = []
    lock = threading.Lock()

    def call():
        try:
            r = get(port, "/hang", timeout=40).status
        except Exception as e:  # noqa: BLE001 - a dropped connection is the failure looked for
            r = repr(e)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [504] * 6, results
    assert get(port, "/").status == 200


def test_single_mode_restarts_itself_when_every_thread_is_lost(servers, tmp_path, port):
    s = boot(servers, tmp_path, DEADLINE_APP, port, workers=0, threads="1, 1", timeout="1, cleanup: 1")
    assert get(port, "/stuck", timeout=20).status == 504
    s.wait_log(r"all 1 threads are stuck in the app; restarting \(hot restart\)", stream="stderr")
    s.wait_log(r"Use Ctrl-C to stop", count=2)
    r = get(port, "/", timeout=20)
    assert r.status == 200 and s.alive()
