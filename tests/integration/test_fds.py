"""Who holds which fd (docs/architecture.md, File descriptors), checked from
/proc for every process of a cluster after each kind of restart and after a
killed worker 0 and mold.

Keep lists: a worker holds stdio, the listeners, its channel, its self-pipe,
its epoll set and wake eventfd (and client connections, none while idle); the
mold holds stdio, the listeners and its channel; the master holds stdio, the
listeners, the control listener, one channel per worker (and the mold's), its
self-pipe. Nothing but a listener is shared between two processes."""

import os
import signal
import time

import pytest

from helpers import children_of, get, stats, wait_until
from test_overlap import settled
from test_restart import boot, control, wait_op


def listen_inodes(port):
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                out.add(f[9])
    return out


def unix_inodes():
    return {line.split()[6] for line in open("/proc/net/unix").read().splitlines()[1:] if len(line.split()) > 6}


def fds_of(pid):
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


def role(pid):
    cmd = open(f"/proc/{pid}/cmdline", "rb").read()
    if b"cluster worker" in cmd:
        return "worker"
    if b"mold" in cmd:
        return "mold"
    return "other"


def inode(target):
    if not target.startswith(("socket:", "pipe:")):
        return None  # anon inodes (epoll, eventfd) have no number to compare
    return target.split("[", 1)[1].rstrip("]")


def check_fds(s, port, cport, preflight=False):
    """Returns a list of problems (empty when every process holds only its keep list)."""
    listeners = listen_inodes(port)
    control = listen_inodes(cport)
    assert listeners and control
    unix = unix_inodes()
    procs = {s.pid: "master"}
    for p in children_of(s.pid):
        try:
            r = role(p)
        except OSError:
            continue
        if r != "other":
            procs[p] = r
    problems = []
    holders = {}
    table = {}
    for pid, r in procs.items():
        try:
            table[pid] = fds_of(pid)
        except OSError:
            continue
        for fd, t in table[pid].items():
            if fd > 2 and inode(t):
                holders.setdefault(inode(t), set()).add(pid)
    pipes_of = {inode(t) for fds in table.values() for t in fds.values() if t.startswith("pipe:")}
    for ino, pids in holders.items():
        # libunwind's address-check pipe (os/backtrace.h) goes from worker 0 to the mold and
        # the workers it forks, which keep it (libunwind writes to those fd numbers later)
        unwind_pipe = ino in pipes_of and all(procs[p] in ("worker", "mold") for p in pids)
        if len(pids) > 1 and ino not in listeners and not unwind_pipe:
            problems.append(f"inode {ino} held by {sorted((p, procs[p]) for p in pids)}")
    n_workers = sum(1 for r in procs.values() if r == "worker")
    n_mold = sum(1 for r in procs.values() if r == "mold")
    for pid, fds in table.items():
        r = procs[pid]
        mine = {fd: t for fd, t in fds.items() if fd > 2}
        socks = [inode(t) for t in mine.values() if t.startswith("socket:")]
        lis = [i for i in socks if i in listeners]
        uni = [i for i in socks if i in unix]
        ctl = [i for i in socks if i in control]
        other_socks = [i for i in socks if i not in listeners and i not in unix and i not in control]
        pipes = [inode(t) for t in mine.values() if t.startswith("pipe:")]
        anon = sorted(t for t in mine.values() if t.startswith("anon_inode:"))
        files = sorted(t for t in mine.values() if not t.startswith(("socket:", "pipe:", "anon_inode:")))
        where = f"{r} {pid}: {sorted(mine.items())}"
        if len(lis) != len(listeners):
            problems.append(f"{where}: {len(lis)} listeners, want {len(listeners)}")
        if files:
            problems.append(f"{where}: files {files}")
        # serving processes also hold libunwind's memory-validation pipe (close-on-exec,
        # opened once by the stack capture of os/backtrace.c); the mold inherits worker 0's
        if r == "worker":
            want_unix, want_pipes, want_anon = 1, 4, ["anon_inode:[eventfd]", "anon_inode:[eventpoll]"]
            if ctl or other_socks:
                problems.append(f"{where}: control or client sockets")
        elif r == "mold":
            want_unix, want_pipes, want_anon = 1, 2, []
            if ctl or other_socks:
                problems.append(f"{where}: control or client sockets")
        else:
            # a hot restart's preflight: the read end of the check's stderr pipe
            want_unix, want_pipes, want_anon = n_workers + n_mold, 3 if preflight else 2, []
            if len(ctl) != 1:
                problems.append(f"{where}: {len(ctl)} control listeners")
        if len(uni) != want_unix:
            problems.append(f"{where}: {len(uni)} channels, want {want_unix}")
        if len(pipes) != want_pipes or len(set(pipes)) != (want_pipes + 1) // 2:  # pairs: read and write ends
            problems.append(f"{where}: pipes {pipes}, want one self-pipe")
        if anon != want_anon:
            problems.append(f"{where}: {anon}, want {want_anon}")
    return problems


def assert_keep_lists(s, port, what):
    # idle: no client connection, no control client (wait for the ones just used to close)
    def clean():
        return not check_fds(s, port, s.cport)

    try:
        wait_until(clean, 10, interval=0.1, what="fds settled")
    except AssertionError:
        raise AssertionError(f"after {what}:\n" + "\n".join(check_fds(s, port, s.cport))) from None


@pytest.mark.parametrize("fork_worker", [False, True])
def test_every_process_holds_only_its_keep_list(servers, testapp, port, tmp_path, fork_worker):
    conf = tmp_path / "serval.rb"
    conf.write_text("max_requests 40\nworker_check_interval 0.2\n")
    extra = ("-C", str(conf)) + (("--fork-worker", "0") if fork_worker else ())
    s = boot(servers, testapp, port, workers=3, extra=extra)
    s.wait_workers(3)
    settled(s, 3)
    assert_keep_lists(s, port, "boot")

    for path in ("restart", "phased-restart") + (("refork",) if fork_worker else ()):
        op = control(s, path)
        assert wait_op(s, op, timeout=40)["state"] == "succeeded"
        settled(s, 3)
        assert_keep_lists(s, port, path)

    # recycle: one worker passes max_requests
    before = stats(s.cport)["restart"]["last"]["id"]
    for _ in range(150):
        assert get(port, "/").status == 200
    wait_until(lambda: (stats(s.cport)["restart"]["last"] or {}).get("kind") == "recycle"
               and stats(s.cport)["restart"]["last"]["id"] > before, 20, what="a recycle")
    settled(s, 3)
    assert_keep_lists(s, port, "recycle")

    # a killed worker 0, then (fork_worker) a killed mold
    w0 = [w["pid"] for w in stats(s.cport)["worker_status"] if w["index"] == 0][0]
    os.kill(w0, signal.SIGKILL)
    wait_until(lambda: w0 not in [w["pid"] for w in stats(s.cport)["worker_status"]], 10, what="worker 0 replaced")
    settled(s, 3)
    if fork_worker:
        wait_until(lambda: (stats(s.cport)["mold"] or {}).get("ready"), 20, what="a new mold")
    assert_keep_lists(s, port, "killed worker 0")
    if fork_worker:
        mold = stats(s.cport)["mold"]["pid"]
        os.kill(mold, signal.SIGKILL)
        wait_until(lambda: (stats(s.cport)["mold"] or {}).get("pid") not in (None, mold)
                   and stats(s.cport)["mold"]["ready"], 20, what="the mold made again")
        os.kill([w["pid"] for w in stats(s.cport)["worker_status"] if w["index"] == 2][0], signal.SIGKILL)
        time.sleep(0.2)
        settled(s, 3)
        assert_keep_lists(s, port, "killed mold")


def test_a_worker_forked_during_a_preflight_does_not_hold_its_pipe(servers, testapp, port, tmp_path):
    """preload_app: the preflight inits the app (3 s here: only the preflight's init is
    slow, through testapp's ./BOOT_MS); a worker that dies meanwhile is forked again by
    the master, which then holds the preflight's pipe: the new worker must not."""
    s = boot(servers, testapp, port, workers=2, extra=("--preload",))
    s.wait_workers(2)
    settled(s, 2)
    before = set(s.workers())
    victim = s.workers()[1]
    boot_ms = tmp_path / "BOOT_MS"
    boot_ms.write_text("3000\n")
    s.send(signal.SIGUSR2)
    wait_until(lambda: s.count(r"Restarting\.\.\.") >= 1, 5, what="the preflight")
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len([p for p in s.workers() if p != victim]) == 2, 5, what="the replacement")

    def preflight_running():
        for p in children_of(s.pid):
            try:
                if b"--check" in open(f"/proc/{p}/cmdline", "rb").read():
                    return True
            except OSError:
                pass
        return False

    # its keep list is complete once it has booted (epoll set, eventfd; slow under a sanitizer)
    new = [p for p in s.workers() if p not in before]
    if new:
        wait_until(lambda: s.count(rf"\(PID: {new[0]}\) booted") >= 1, 10, what="the replacement's boot")
    problems = check_fds(s, port, s.cport, preflight=True)
    if not preflight_running() or s.count(r"Use Ctrl-C to stop") != 1:
        pytest.skip("the preflight ended before the check (a very slow machine)")
    boot_ms.unlink()  # the new image's own init (after the preflight) is quick
    assert not problems, "\n".join(problems)
    settled(s, 2)
