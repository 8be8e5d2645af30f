"""systemd notification (NOTIFY_SOCKET): READY, RELOADING with MONOTONIC_USEC, STOPPING, STATUS, WATCHDOG."""

import signal
import socket

import pytest

from helpers import free_port, get, wait_until


@pytest.fixture
def notify(tmp_path):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.05)
    msgs = []

    def read():
        while True:
            try:
                msgs.append(s.recv(4096).decode())
            except socket.timeout:
                return msgs

    yield path, read
    s.close()


def seen(read, text):
    return any(text in m for m in read())


def test_cluster_ready_reloading_stopping(servers, testapp, port, notify):
    path, read = notify
    s = servers("-w", "2", "-b", f"tcp://127.0.0.1:{port}", testapp, workers=2,
                env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    wait_until(lambda: seen(read, "READY=1"), timeout=5, what="READY=1")
    wait_until(lambda: seen(read, "WATCHDOG=1"), timeout=3, what="WATCHDOG=1")
    wait_until(lambda: seen(read, "STATUS=serval"), timeout=3, what="STATUS")
    read().clear()
    s.send(signal.SIGUSR1)

    def reloaded_then_ready():
        msgs = [m for m in read() if not m.startswith(("STATUS", "WATCHDOG"))]
        r = [i for i, m in enumerate(msgs) if "RELOADING=1" in m and "MONOTONIC_USEC=" in m]
        return r and any("READY=1" in m for m in msgs[r[0] + 1:])

    wait_until(reloaded_then_ready, timeout=10, what="RELOADING=1 then READY=1")
    s.send(signal.SIGTERM)
    wait_until(lambda: seen(read, "STOPPING=1"), timeout=5, what="STOPPING=1")
    assert s.wait_exit(10) == 0


def test_hot_restart_keeps_mainpid(servers, testapp, port, notify):
    path, read = notify
    s = servers("-w", "1", "-b", f"tcp://127.0.0.1:{port}", testapp, workers=1, env={"NOTIFY_SOCKET": path})
    wait_until(lambda: seen(read, "READY=1"), timeout=5, what="READY=1")
    read().clear()
    s.send(signal.SIGUSR2)
    wait_until(lambda: seen(read, "RELOADING=1"), timeout=5, what="RELOADING=1")
    wait_until(lambda: seen(read, f"MAINPID={s.pid}"), timeout=10, what="READY=1 from the same pid")


def test_single_mode(servers, testapp, port, notify):
    path, read = notify
    s = servers("-b", f"tcp://127.0.0.1:{port}", testapp, env={"NOTIFY_SOCKET": path})
    wait_until(lambda: seen(read, "READY=1"), timeout=5, what="READY=1")
    s.send(signal.SIGTERM)
    wait_until(lambda: seen(read, "STOPPING=1"), timeout=5, what="STOPPING=1")
