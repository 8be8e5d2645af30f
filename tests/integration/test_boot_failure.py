"""A boot that fails (the app's init, the control server's bind) gives back what
it took: the process exits 1 and leaves no pid file and no socket file of its
own behind, runs on_stopped after an on_booted, and, in an ASan build, leaks
nothing (leak detection is forced on here, whatever make asan sets)."""

import os
import socket

import pytest

MODES = {
    "single": [],
    "cluster": ["-w", "2"],
    "cluster-preload": ["-w", "2", "--preload"],
}


def leak_checked(env):
    """env plus ASAN_OPTIONS that report leaks at exit (ignored by other builds)."""
    opts = [o for o in os.environ.get("ASAN_OPTIONS", "").split(":") if o and not o.startswith("detect_leaks=")]
    return {**env, "ASAN_OPTIONS": ":".join(opts + ["detect_leaks=1"])}


def hooks(path):
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def assert_gave_back(s, sock, pidfile):
    assert s.wait_exit(30) == 1, s.logs()
    assert "ERROR: LeakSanitizer" not in s.stderr(), s.stderr()
    assert not sock.exists(), f"the failed boot left its socket file\n{s.logs()}"
    assert not pidfile.exists(), f"the failed boot left its pid file\n{s.logs()}"


@pytest.mark.parametrize("mode", ["single", "cluster-preload"])
def test_app_init_failure_gives_back_what_the_boot_took(servers, testapp, tmp_path, mode):
    sock, pidfile, log = tmp_path / "s.sock", tmp_path / "serval.pid", tmp_path / "hooks.log"
    s = servers(*MODES[mode], "-b", f"unix://{sock}", "--pidfile", str(pidfile), testapp, wait=False,
                env=leak_checked({"TESTAPP_INIT_FAIL": "1", "TESTAPP_HOOK_LOG": str(log)}))
    assert_gave_back(s, sock, pidfile)
    assert "failed to initialise" in s.stderr()
    assert hooks(log) == []


@pytest.mark.parametrize("mode", ["single", "cluster", "cluster-preload"])
def test_control_bind_failure_gives_back_what_the_boot_took(servers, testapp, tmp_path, port, mode):
    sock, pidfile, log = tmp_path / "s.sock", tmp_path / "serval.pid", tmp_path / "hooks.log"
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        s = servers(*MODES[mode], "-b", f"unix://{sock}", "--pidfile", str(pidfile),
                    "--control-url", f"tcp://127.0.0.1:{port}", "--control-token", "t", testapp, wait=False,
                    env=leak_checked({"TESTAPP_HOOK_LOG": str(log)}))
        assert_gave_back(s, sock, pidfile)
    assert "(control server)" in s.stderr()
    # single mode booted the app before the control server failed; a master fires on_booted only
    # once its workers have booted, and none was forked
    assert hooks(log) == (["on_booted", "on_stopped"] if mode == "single" else [])

