"""Fixtures for serval's black-box tests.

Every server a test starts binds 127.0.0.1 (or a unix socket), runs in its
own process group, is stopped by its own pid, and is killed with its whole
group in the fixture finalizer, so no test leaves a process behind. Every
wait polls with a deadline; nothing sleeps a fixed time to hope.
"""

import os
import resource
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from helpers import (  # noqa: E402
    Server,
    free_port,
    wait_until,
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SERVAL_BUILD", os.path.join(ROOT, "build"))


def pytest_configure(config):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@pytest.fixture
def build():
    return BUILD


@pytest.fixture
def serval_bin():
    return os.path.join(BUILD, "serval")


@pytest.fixture
def servalctl_bin():
    return os.path.join(BUILD, "servalctl")


@pytest.fixture
def testapp():
    return os.path.join(BUILD, "examples", "testapp.so")


@pytest.fixture
def hello_app():
    return os.path.join(BUILD, "examples", "hello.so")


@pytest.fixture
def port():
    return free_port()


@pytest.fixture
def port2(port):
    """A second free port (the control server's), distinct from port."""
    while True:
        p = free_port()
        if p != port:
            return p


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, for fixtures' teardown."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def servers(tmp_path, request):
    """Start servers with spawn(args...); all are killed at teardown. When the
    test failed, their logs go to the report (captured teardown output)."""
    started = []

    def spawn(*args, env=None, cwd=None, wait=True, workers=None, **kw):
        s = Server(BUILD, list(args), tmp_path, env=env, cwd=cwd, **kw)
        started.append(s)
        s.start()
        if wait:
            s.wait_booted(workers=workers)
        return s

    yield spawn
    rep = getattr(request.node, "rep_call", None)
    reports = []
    for s in started:
        s.kill_group()
        if rep is not None and rep.failed:
            logs = s.logs()
            print(f"=== serval {s.proc.pid if s.proc else '?'} ({' '.join(s.args)})\n{logs[-6000:]}")
        reports += s.sanitizer_reports()
    if reports:
        pytest.fail("sanitizer reports:\n" + "\n".join(reports[:20]), pytrace=False)
