"""fork_worker, the mold, refork, preload, and where each lifecycle hook runs."""

import os
import re
import signal
import time

import pytest

from helpers import ClientLoop, children_of, free_port, get, slower_boot_than_noise, stats, wait_until

TOKEN = "tok"


def boot(servers, testapp, port, workers=3, extra=(), env=None, hooks=None):
    cport = free_port()
    e = dict(env or {})
    if hooks:
        e["TESTAPP_HOOK_LOG"] = str(hooks)
    s = servers("-w", str(workers), "-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{cport}",
                "--control-token", TOKEN, *extra, testapp, workers=workers, env=e)
    s.port, s.cport = port, cport
    return s


def control(s, path, status=200):
    r = get(s.cport, f"/{path}?token={TOKEN}")
    assert r.status == status, r.body
    return int(r.headers.get("x-serval-operation", 0)), r


def wait_op(s, op_id, timeout=30):
    def done():
        r = get(s.cport, f"/operation?id={op_id}&token={TOKEN}")
        j = r.json() if r.status == 200 else None
        return j if j and j["state"] in ("succeeded", "failed") else None

    return wait_until(done, timeout, what=f"operation {op_id}")


def hook_lines(path):
    if not os.path.exists(path):
        return []
    return [tuple(l.split()) for l in open(path).read().splitlines()]


def by_index(st):
    return {w["index"]: w for w in st["worker_status"] if w["state"] == "serving"}


def test_workers_are_forked_from_a_mold_and_the_app_loads_once(servers, testapp, port):
    s = boot(servers, testapp, port, extra=("--fork-worker", "0"))
    wait_until(lambda: len(by_index(stats(s.cport))) == 3, what="3 serving workers")
    st = stats(s.cport)
    w = by_index(st)
    assert w[0]["forked_from"] == "master"
    assert w[1]["forked_from"] == "mold" and w[2]["forked_from"] == "mold"
    assert st["mold"] and st["mold"]["pid"] > 0
    assert st["mold"]["ready"] and st["mold"]["state"] == "ready"  # the mold machine (molds.c) settled
    assert s.count(r"testapp: init") == 1
    # the master reaps the mold-forked workers: they are its children
    kids = children_of(s.pid)
    assert all(w[i]["pid"] in kids for i in range(3)) and st["mold"]["pid"] in kids


def test_refork_replaces_all_but_worker_0_without_failing_a_request(servers, testapp, port):
    s = boot(servers, testapp, port, extra=("--fork-worker", "0"))
    wait_until(lambda: len(by_index(stats(s.cport))) == 3, what="3 serving workers")
    before = by_index(stats(s.cport))
    with ClientLoop(port, threads=4) as loop:
        loop.wait_requests(200)
        op, _ = control(s, "refork")
        st = wait_op(s, op)
        loop.wait_requests(100)
    assert st["state"] == "succeeded", st
    loop.assert_clean()
    after = by_index(stats(s.cport))
    assert after[0]["pid"] == before[0]["pid"]
    assert after[1]["pid"] != before[1]["pid"] and after[2]["pid"] != before[2]["pid"]
    assert stats(s.cport)["phase"] == 1
    assert s.count(r"testapp: init") == 1  # refork never reloads the app


def test_refork_signal_urg(servers, testapp, port):
    s = boot(servers, testapp, port, workers=2, extra=("--fork-worker", "0"))
    s.send(signal.SIGURG)
    s.wait_log(r"Refork complete, phase: 1")


def test_refork_not_available_without_fork_worker(servers, testapp, port):
    s = boot(servers, testapp, port, workers=2)
    _, r = control(s, "refork", status=404)
    assert r.json() == {"error": "refork not available"}


def test_automatic_refork_fires_at_each_threshold_and_only_then(servers, testapp, port, tmp_path):
    import re

    conf = tmp_path / "c.rb"
    conf.write_text("fork_worker 40, 120\nworker_check_interval 0.2\n")
    s = boot(servers, testapp, port, workers=2, extra=("-C", str(conf)))
    w0 = by_index(stats(s.cport))[0]["pid"]

    def w0_count():
        return by_index(stats(s.cport))[0]["last_status"].get("requests_count", 0)

    # below the first threshold nothing happens
    while w0_count() < 15:
        get(port, "/")
        time.sleep(0.01)
    time.sleep(0.5)
    assert w0_count() < 40 and s.count(r"automatic refork") == 0

    def drive_until(n_reforks):
        deadline = time.monotonic() + 30
        while s.count(r"automatic refork") < n_reforks:
            assert time.monotonic() < deadline, s.logs()
            get(port, "/")
            time.sleep(0.005)

    drive_until(1)
    s.wait_log(r"Refork complete, phase: 1")
    served = [int(x) for x in re.findall(r"PID: \d+, (\d+) requests served", s.stdout())]
    assert served[0] >= 40 and s.count(r"reached 40 requests") == 1
    drive_until(2)
    s.wait_log(r"Refork complete, phase: 2")
    served = [int(x) for x in re.findall(r"PID: \d+, (\d+) requests served", s.stdout())]
    assert served[1] >= 120 and s.count(r"reached 120 requests") == 1
    for _ in range(300):
        get(port, "/")
    time.sleep(1.5)
    assert s.count(r"automatic refork") == 2
    assert by_index(stats(s.cport))[0]["pid"] == w0


def test_killing_worker_0_during_a_refork_loses_no_worker(servers, testapp, port):
    s = boot(servers, testapp, port, workers=3, extra=("--fork-worker", "0"), env={"TESTAPP_BOOT_MS": "300"})
    wait_until(lambda: len(by_index(stats(s.cport))) == 3, what="3 serving workers")
    w0 = by_index(stats(s.cport))[0]["pid"]
    with ClientLoop(port, threads=2) as loop:
        control(s, "refork")
        os.kill(w0, signal.SIGKILL)
        def recovered():
            w = by_index(stats(s.cport))
            return len(w) == 3 and 0 in w and w[0]["pid"] != w0

        wait_until(recovered, timeout=30, what="three serving workers again")
        loop.wait_requests(50)
    assert len(loop.failures) <= 2, loop.failures  # at most the requests in flight on worker 0
    time.sleep(1)
    assert len(by_index(stats(s.cport))) == 3


def test_killing_the_mold_loses_no_worker(servers, testapp, port):
    s = boot(servers, testapp, port, workers=3, extra=("--fork-worker", "0"))
    wait_until(lambda: len(by_index(stats(s.cport))) == 3, what="3 serving workers")
    mold = stats(s.cport)["mold"]["pid"]
    with ClientLoop(port, threads=2) as loop:
        op, _ = control(s, "refork")
        try:
            os.kill(mold, signal.SIGKILL)
        except ProcessLookupError:  # this refork replaced it already: kill its successor
            m = stats(s.cport)["mold"]
            if m:
                os.kill(m["pid"], signal.SIGKILL)
        wait_op(s, op, timeout=30)
        # whatever the refork's outcome, workers are never lost for good
        wait_until(lambda: len(by_index(stats(s.cport))) == 3, timeout=20, what="three serving workers")
        mold = wait_until(lambda: stats(s.cport)["mold"], timeout=10, what="a mold again")
        os.kill(mold["pid"], signal.SIGKILL)
        victim = by_index(stats(s.cport))[2]["pid"]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(by_index(stats(s.cport))) == 3 and victim not in [w["pid"] for w in stats(s.cport)["worker_status"]],
                   timeout=20, what="a replacement for worker 2")
        loop.wait_requests(50)
    assert len(loop.failures) <= 2, loop.failures


def test_fork_worker_phased_restart_boots_worker_0_first_then_forks_from_it(servers, testapp, port, tmp_path):
    s = boot(servers, testapp, port, workers=3, extra=("--fork-worker", "0"))
    wait_until(lambda: len(by_index(stats(s.cport))) == 3, what="3 serving workers")
    with ClientLoop(port, threads=4) as loop:
        loop.wait_requests(100)
        # from now on worker 0's boot takes >= 1 s, and 10x the slowest answer so far
        boot_ms = slower_boot_than_noise(loop, tmp_path / "BOOT_MS", floor_ms=1000)
        t_op = time.monotonic()
        op, _ = control(s, "phased-restart")
        st = wait_op(s, op, timeout=40 + 2 * boot_ms / 1000)
        loop.wait_requests(50)
    assert st["state"] == "succeeded", st
    loop.assert_clean()
    assert any(float(t) >= 0.95 * boot_ms / 1000 for t in re.findall(r"booted in ([\d.]+)s, phase: 1", s.stdout())), \
        "the new worker 0 did not boot slowly: the latency bound proves nothing"
    # a request that waited for the boot would take the boot time; the others take
    # what requests took here before (bench/restart measures the real figure)
    worst = loop.max_latency(since=t_op)
    assert worst < boot_ms / 2000, f"max latency {worst * 1000:.0f} ms with a {boot_ms} ms boot"
    lines = [l for l in s.stdout().splitlines() if "phase: 1" in l and "booted" in l]
    assert "Worker 0" in lines[0]
    assert s.count(r"testapp: init") == 2  # the old worker 0 and the new one


def test_preload_loads_once_in_the_master_and_phased_becomes_hot(servers, testapp, port):
    s = boot(servers, testapp, port, workers=2, extra=("--preload",))
    assert f"testapp: init (pid {s.pid}" in s.stdout()
    assert s.count(r"testapp: init") == 1
    assert "(\u2716) phased" in s.stdout()
    op, _ = control(s, "phased-restart")
    assert wait_op(s, op)["kind"] == "hot-restart"
    assert "phased-restart called but not available" in s.stdout()


def test_memory_is_reported_per_worker(servers, testapp, port):
    s = boot(servers, testapp, port, workers=2, extra=("--fork-worker", "0"))
    st = wait_until(lambda: (lambda j: j if all(w["memory"]["pss"] > 0 for w in j["worker_status"]) else None)(stats(s.cport)), timeout=5, what="memory readings")
    for w in st["worker_status"]:
        m = w["memory"]
        assert m["rss"] >= m["pss"] > 0 and m["shared"] + m["private"] > 0
    assert st["memory"]["total_pss"] > 0
    metrics = get(s.cport, f"/metrics?token={TOKEN}").text
    assert "serval_worker_memory_pss_bytes{" in metrics


# ---- hooks ------------------------------------------------------------------------


def test_hooks_at_boot_and_stop(servers, testapp, port, tmp_path):
    log = tmp_path / "hooks.log"
    s = boot(servers, testapp, port, workers=2, hooks=log)
    wait_until(lambda: any(l[0] == "on_booted" for l in hook_lines(log)), what="on_booted")
    workers = s.workers()
    s.stop()
    lines = hook_lines(log)
    master = str(s.pid)
    names = [l[0] for l in lines]
    assert lines[0] == ("before_fork", master, "-1")
    assert ("on_worker_fork", master, "0") in lines and ("after_worker_fork", master, "1") in lines
    for w in workers:
        boot_line = [l for l in lines if l[0] == "on_worker_boot" and l[1] == str(w)]
        assert len(boot_line) == 1
        assert [l for l in lines if l[0] == "on_worker_shutdown" and l[1] == str(w)]
    assert ("on_booted", master, "-1") in lines
    assert lines[-1] == ("on_stopped", master, "-1")
    assert names.index("before_fork") < names.index("on_worker_fork") < names.index("on_worker_boot")
    assert names.count("before_fork") == 1


def test_hooks_in_phased_restart(servers, testapp, port, tmp_path):
    log = tmp_path / "hooks.log"
    s = boot(servers, testapp, port, workers=2, hooks=log)
    wait_until(lambda: any(l[0] == "on_booted" for l in hook_lines(log)), what="on_booted")
    n = len(hook_lines(log))
    op, _ = control(s, "phased-restart")
    assert wait_op(s, op)["state"] == "succeeded"
    wait_until(lambda: sum(l[0] == "on_worker_shutdown" for l in hook_lines(log)[n:]) == 2, what="2 shutdowns")
    new = hook_lines(log)[n:]
    names = [l[0] for l in new]
    assert names.count("on_worker_fork") == 2 and names.count("on_worker_boot") == 2
    assert "before_fork" not in names and "on_restart" not in names
    assert names[-1] in ("on_booted", "on_worker_shutdown")


def test_hooks_in_refork(servers, testapp, port, tmp_path):
    log = tmp_path / "hooks.log"
    s = boot(servers, testapp, port, workers=3, extra=("--fork-worker", "0"), hooks=log)
    wait_until(lambda: any(l[0] == "on_booted" for l in hook_lines(log)), what="on_booted")
    w0 = str(by_index(stats(s.cport))[0]["pid"])
    mold0 = stats(s.cport)["mold"]["pid"]
    n = len(hook_lines(log))
    op, _ = control(s, "refork")
    assert wait_op(s, op)["state"] == "succeeded"
    new = hook_lines(log)[n:]
    assert ("on_refork", w0, "0") in new
    forks = [l for l in new if l[0] in ("on_worker_fork", "after_worker_fork")]
    assert forks and all(l[1] != str(s.pid) and l[1] != w0 and l[1] != str(mold0) for l in forks)  # the new mold
    assert {l[2] for l in forks} == {"1", "2"}
    assert not [l for l in new if l[0] == "on_worker_boot" and l[1] == w0]


def test_hooks_in_hot_restart(servers, testapp, port, tmp_path):
    log = tmp_path / "hooks.log"
    s = boot(servers, testapp, port, workers=2, hooks=log)
    wait_until(lambda: any(l[0] == "on_booted" for l in hook_lines(log)), what="on_booted")
    n = len(hook_lines(log))
    op, _ = control(s, "restart")
    assert wait_op(s, op)["state"] == "succeeded"
    wait_until(lambda: sum(l[0] == "on_worker_shutdown" for l in hook_lines(log)[n:]) == 2, what="old workers' shutdown")
    new = hook_lines(log)[n:]
    names = [l[0] for l in new]
    master = str(s.pid)
    assert new[0] == ("on_restart", master, "-1")
    assert ("before_fork", master, "-1") in new  # the new image forks its first workers
    assert names.index("on_restart") < names.index("before_fork") < names.index("on_worker_boot")
    assert "on_stopped" not in names


def test_a_mold_worker_0_does_not_answer_is_lost_after_15_s_and_asked_for_again(servers, testapp, port):
    """The mold machine (molds.c) times a make-mold out: the refork waiting for it
    fails with the reason, the machine asks again, and once worker 0 answers the
    cluster has a mold and both workers, worker 0 untouched."""
    s = boot(servers, testapp, port, workers=2, extra=("--fork-worker", "0"))
    wait_until(lambda: len(by_index(stats(s.cport))) == 2 and (stats(s.cport)["mold"] or {}).get("state") == "ready",
               what="2 workers and a ready mold")
    w0 = by_index(stats(s.cport))[0]["pid"]
    os.kill(w0, signal.SIGSTOP)  # the make-mold waits unread
    try:
        op, _ = control(s, "refork")
        st = wait_op(s, op, timeout=40)
    finally:
        os.kill(w0, signal.SIGCONT)
    assert st["state"] == "failed" and "worker 0 did not answer" in st["error"], st
    wait_until(lambda: (stats(s.cport)["mold"] or {}).get("state") == "ready" and len(by_index(stats(s.cport))) == 2,
               timeout=20, what="a ready mold again")
    assert by_index(stats(s.cport))[0]["pid"] == w0
    assert get(port, "/").status == 200
