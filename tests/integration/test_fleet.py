"""A small fleet: two serval hosts (network namespaces) behind HAProxy.

Under steady load through HAProxy, each host in turn gets a phased restart to a new
app release and a graceful stop and start; HAProxy health-checks /readyz. No planned
operation may fail a request. The full scenario (three hosts, hot restarts, kills,
both connection modes, a plot) is bench/fleet; this is its smoke test.
"""

import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench", "lib"))

import fleet as fl  # noqa: E402
import loadclient  # noqa: E402

pytestmark = pytest.mark.skipif(fl.available() is not None,
                                reason=f"fleet: {fl.available()}")


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "close"])
def test_planned_operations_through_haproxy_fail_no_request(build, tmp_path, keep_alive):
    workdir = tmp_path / "fleet"
    workdir.mkdir()
    csv = str(tmp_path / "requests.csv")
    until = str(tmp_path / "stop-load")
    with fl.Fleet(build, str(workdir), hosts=2, workers=2, boot_ms=300,
                  keep_alive=keep_alive) as fleet:
        load = subprocess.Popen(
            fleet.load_argv(os.path.join(ROOT, "bench", "lib", "loadclient.py"), csv,
                            8, 120, 200) + ["--until-file", until],
            stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)
            for host in fleet.hosts:
                host.deploy_release()
                rc, out = host.ctl("phased-restart", "--wait")
                assert rc == 0, out
                fl.wait_for(lambda h=host: fleet.states().get(h.name) == "UP", 30,
                            f"{host.name} UP after the phased restart")
            for host in fleet.hosts:
                assert host.stop(timeout=30) == 0
                host.start()
                host.wait_ready()
                fl.wait_for(lambda h=host: fleet.states().get(h.name) == "UP", 30,
                            f"{host.name} UP after the restart")
            time.sleep(0.5)
        finally:
            open(until, "w").close()
            load.communicate(timeout=60)
        assert all(h.http_get(fl.APP_PORT, "/version") == 200 for h in fleet.hosts)
    rec = loadclient.read_records(csv)
    failed = [r for r in rec if not (isinstance(r[2], int) and 200 <= r[2] < 300)]
    assert len(rec) > 200, f"the load sent only {len(rec)} requests"
    assert failed == [], f"{len(failed)} of {len(rec)} requests failed: {failed[:10]}"
