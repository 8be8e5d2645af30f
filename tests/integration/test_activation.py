"""systemd socket activation (LISTEN_FDS, bind_to_activated_sockets true and
"only", docs/systemd.md), run under systemd-socket-activate (Debian systemd):
it binds the sockets, waits for the first connection, then execs serval in
its own pid with LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, as systemd does.
The activated sockets serve, survive hot restarts (the same socket, no
failed request, no fd leaked), and binds the config names are honoured or
left out as Puma does."""

import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import BUILD
from helpers import ClientLoop, free_port, get, wait_until
from test_fds import assert_keep_lists, fds_of, inode, listen_inodes
from test_overlap import settled
from test_restart import control, wait_op

SSA = shutil.which("systemd-socket-activate")
SERVAL = os.path.join(BUILD, "serval")
TOKEN = "tok"

pytestmark = pytest.mark.skipif(not SSA, reason="systemd-socket-activate (Debian systemd) is not installed")


def activated(servers, listen, serval_args, fdnames=None):
    """serval under systemd-socket-activate, once it has bound every address in
    listen ("127.0.0.1:PORT" or a unix path). serval itself starts at the first
    connection (the caller makes it)."""
    args = []
    for a in listen:
        args += ["-l", a]
    if fdnames:
        args.append(f"--fdname={fdnames}")
    s = servers(*args, SERVAL, *serval_args, binary=SSA, wait=False)
    s.wait_log(r"Listening on", count=len(listen), stream="stderr")
    return s


def hot_restart_under_load(s, port):
    """USR2 (single mode) while two clients keep asking; none may fail."""
    with ClientLoop(port, threads=2) as loop:
        loop.wait_requests(30)
        n = s.count(r"Use Ctrl-C to stop")
        s.send(signal.SIGUSR2)
        s.wait_log(r"Use Ctrl-C to stop", count=n + 1)
        loop.wait_requests(30)
    loop.assert_clean()


def refused(port):
    try:
        get(port, "/", timeout=5)
    except ConnectionRefusedError:
        return True
    return False


def test_single_mode_serves_on_the_passed_socket_and_closes_the_unused_one(servers, testapp, port, port2):
    s = activated(servers, [f"127.0.0.1:{port}", f"127.0.0.1:{port2}"],
                  ["-b", f"tcp://127.0.0.1:{port}", testapp], fdnames="web:spare")
    assert get(port, "/", timeout=30).text == "Hello World"  # the first connection starts serval
    s.wait_booted()
    out = s.stdout()
    assert f"* systemd passed 2 sockets: tcp://127.0.0.1:{port} (fd 3, web), tcp://127.0.0.1:{port2} (fd 4, spare)" \
        in out, out
    assert f"* Activated http://127.0.0.1:{port}" in out
    assert f"* Closing unused activated socket: tcp://127.0.0.1:{port2}" in out
    # serval did not bind a second socket: the one listening on port is systemd's fd 3
    assert len(listen_inodes(port)) == 1
    assert inode(fds_of(s.pid)[3]) in listen_inodes(port)
    assert refused(port2)
    assert get(port, "/").status == 200


def test_cluster_activated_socket_survives_hot_restarts_without_a_failed_request(servers, testapp, port):
    cport = free_port()
    s = activated(servers, [f"127.0.0.1:{port}"],
                  ["-w", "2", "--bind-to-activated-sockets", "--control-url", f"tcp://127.0.0.1:{cport}",
                   "--control-token", TOKEN, testapp])
    assert get(port, "/", timeout=30).status == 200
    s.wait_booted(workers=2)
    s.cport = cport
    # no bind configured: the default one gives way to systemd's socket
    assert f"* Activated http://127.0.0.1:{port}" in s.stdout() and "0.0.0.0:9292" not in s.stdout()
    inodes = listen_inodes(port)
    assert len(inodes) == 1
    settled(s, 2)
    assert_keep_lists(s, port, "boot")
    master_fds = len(fds_of(s.pid))
    for i in range(2):
        with ClientLoop(port, threads=3) as loop:
            loop.wait_requests(50)
            op = control(s, "restart")
            assert wait_op(s, op, timeout=40)["state"] == "succeeded"
            loop.wait_requests(50)
        loop.assert_clean(min_ok=100)
        settled(s, 2)
        assert listen_inodes(port) == inodes, "the socket systemd passed was replaced"
        assert_keep_lists(s, port, f"hot restart {i + 1}")
        assert len(fds_of(s.pid)) == master_fds
    assert s.count("serval starting in cluster mode") == 3
    assert s.count(rf"\* Inherited http://127\.0\.0\.1:{port}") == 2
    assert s.count("Closing unused") == 0


def test_only_mode_ignores_binds_and_keeps_its_sockets_across_a_hot_restart(servers, testapp, tmp_path, port, port2):
    sock = str(tmp_path / "only.sock")
    s = activated(servers, [f"127.0.0.1:{port}", sock],
                  ["--bind-to-activated-sockets=only", "-b", f"tcp://127.0.0.1:{port2}", testapp])
    assert get(port, "/", timeout=30).status == 200
    s.wait_booted()
    out = s.stdout()
    assert f"* Ignoring bind tcp://127.0.0.1:{port2}: bind_to_activated_sockets \"only\"" in out, out
    assert f"* Activated unix://{sock}" in out
    assert refused(port2)
    assert get(sock, "/").status == 200
    passed = {inode(fds_of(s.pid)[3]), inode(fds_of(s.pid)[4])}

    def held():
        """What the process holds besides client connections: (fd, kind), systemd's sockets by inode."""
        out = []
        for fd, t in fds_of(s.pid).items():
            if t.startswith("socket:") and inode(t) not in passed:
                continue  # a client connection on its way out
            out.append((fd, inode(t) if t.startswith("socket:") else t.split("[")[0]))
        return sorted(out)

    before = held()
    hot_restart_under_load(s, port)
    assert s.count(rf"\* Inherited unix://{re.escape(sock)}") == 1
    assert get(sock, "/").status == 200 and refused(port2)
    try:
        wait_until(lambda: held() == before, timeout=10, what="the same fds after the hot restart")
    except AssertionError:
        raise AssertionError(f"fds before {before}\nafter {held()}") from None
    assert s.stop() == 0
    assert os.path.exists(sock), "systemd's socket file is systemd's to remove"


def test_only_without_passed_sockets_is_a_clear_error(testapp, port):
    r = subprocess.run([SERVAL, "--bind-to-activated-sockets=only", "-b", f"tcp://127.0.0.1:{port}", testapp],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "bind_to_activated_sockets \"only\": systemd passed no socket" in r.stderr, r.stderr


def test_true_without_passed_sockets_listens_on_the_binds(servers, testapp, port):
    s = servers("--bind-to-activated-sockets", "-b", f"tcp://127.0.0.1:{port}", testapp)
    assert get(port, "/").status == 200
    assert "bind_to_activated_sockets: systemd passed no socket; listening on the binds" in s.stdout()


def test_hot_restart_into_only_without_systemd_keeps_serving(servers, testapp, port, tmp_path):
    """A config changed to "only" on a server systemd did not start: the new
    image has no passed socket; it keeps its binds (and says so) rather than
    exit with nothing to listen on."""
    conf = tmp_path / "c.rb"
    conf.write_text(f'bind "tcp://127.0.0.1:{port}"\n')
    s = servers("-C", str(conf), testapp)
    conf.write_text(f'bind "tcp://127.0.0.1:{port}"\nbind_to_activated_sockets "only"\n')
    hot_restart_under_load(s, port)
    assert s.alive() and "serving on the binds until a restart under systemd" in s.stderr()
    assert s.count(rf"\* Inherited http://127\.0\.0\.1:{port}") == 1
