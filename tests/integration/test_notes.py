"""examples/notes, the PostgreSQL example app, against a real PostgreSQL.

A PostgreSQL server is started in a temporary directory for this module (as
`nobody` when the tests run as root: PostgreSQL refuses to run as root),
listening on a free 127.0.0.1 port and a unix socket in that directory. If it
cannot start, the tests fail: nothing here is skipped (scripts/deps.sh test
installs postgresql and libpq-dev).

Besides CRUD, the tests check what the example exists to show: connections
are never shared across fork. While load runs through a phased restart, a
refork and a hot restart, a sampler maps every backend of pg_stat_activity to
the serval processes holding its client socket (/proc/net/tcp and
/proc/PID/fd) and fails if one is ever held by two processes, or by a process
other than the one that opened it (application_name "notes pid=N").
"""

import glob
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from helpers import ClientLoop, connection, free_port, get, request, wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SERVAL_BUILD", os.path.join(ROOT, "build"))
NOTES = os.path.join(BUILD, "examples", "notes.so")


def pg_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(f"{name} not found in /usr/lib/postgresql/*/bin: install postgresql (scripts/deps.sh test)",
                    pytrace=False)
    return found[-1]


class Postgres:
    """A throwaway PostgreSQL cluster: initdb, pg_ctl start/stop/restart, psql."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="serval-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = free_port()
        self.as_other = os.getuid() == 0
        if self.as_other:
            shutil.chown(self.dir, "nobody", "nogroup")

    def run(self, argv, check=True, timeout=60, as_owner=True):
        if self.as_other and as_owner:
            argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] + argv
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.dir,
                           env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"})
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\n{self.logtail()}")
        return r

    def logtail(self):
        try:
            with open(self.log) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def init(self):
        self.run([pg_bin("initdb"), "-D", self.data, "-U", "notes", "--auth=trust", "--no-locale",
                  "-E", "UTF8", "--no-sync"])

    def start(self):
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self.run([pg_bin("pg_ctl"), "-D", self.data, "-l", self.log, "-o", opts, "-w", "-t", "60", "start"])

    def stop(self, mode="fast"):
        self.run([pg_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"], check=False)

    def restart(self):
        self.run([pg_bin("pg_ctl"), "-D", self.data, "-l", self.log, "-m", "fast", "-w", "-t", "60", "restart"])

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def sql(self, query):
        r = self.run([pg_bin("psql"), "-h", self.dir, "-p", str(self.port), "-U", "notes", "-d", "postgres",
                      "-XAtq", "-F", "\t", "-c", query], as_owner=False)
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def session(self):
        """A long-lived psql reading queries on stdin: cheap enough to poll with."""
        return PsqlSession([pg_bin("psql"), "-h", self.dir, "-p", str(self.port), "-U", "notes", "-d", "postgres",
                            "-XAtq", "-F", "\t"])

    @property
    def url(self):
        return f"host=127.0.0.1 port={self.port} user=notes dbname=notes"

    def destroy(self):
        pid = self.postmaster_pid()
        self.stop("immediate")
        if pid:  # pg_ctl failed to stop it: kill that pid, ours
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


class PsqlSession:
    END = "--end-of-result--"

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)

    def sql(self, query):
        self.proc.stdin.write(query.rstrip(";") + ";\n\\echo " + self.END + "\n")
        self.proc.stdin.flush()
        rows = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"psql exited ({self.proc.wait()}) during {query!r}")
            line = line.rstrip("\n")
            if line.startswith("ERROR:"):
                raise AssertionError(f"psql: {line} in {query!r}")
            if line == self.END:
                return rows
            if line:
                rows.append(line.split("\t"))

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def pg():
    if not os.path.exists(NOTES):
        pytest.fail(f"{NOTES} was not built: install libpq-dev (scripts/deps.sh test) and rebuild", pytrace=False)
    p = Postgres()
    try:
        p.init()
        p.start()
        p.sql("CREATE DATABASE notes")
        yield p
    finally:
        p.destroy()


@pytest.fixture
def notes_env(pg):
    pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'notes' AND pid <> pg_backend_pid()")
    pg.sql("DROP TABLE IF EXISTS notes_unused")
    return {"DATABASE_URL": pg.url}


def send(port, method, path, body=None, form=False):
    headers = {}
    if body is not None:
        if form:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            headers["Content-Type"] = "application/json"
            if not isinstance(body, (str, bytes)):
                body = json.dumps(body)
    return request(port, path, method=method, body=body, headers=headers)


def test_notes_crud(servers, port, notes_env):
    servers("-w", "2", "-t", "2:2", "-b", f"tcp://127.0.0.1:{port}", NOTES, env=notes_env, workers=2)

    r = send(port, "POST", "/notes", {"title": "first", "body": "hello \"pg\""})
    assert r.status == 201, r
    first = r.json()
    assert first["title"] == "first" and first["body"] == 'hello "pg"' and first["id"] > 0

    r = send(port, "POST", "/notes", "title=second+note&body=caf%C3%A9+%26+more", form=True)
    assert r.status == 201, r
    second = r.json()
    assert second["title"] == "second note" and second["body"] == "café & more"

    r = get(port, f"/notes/{first['id']}")
    assert r.status == 200 and r.json()["title"] == "first"

    listed = get(port, "/notes").json()
    assert [n["id"] for n in listed][-2:] == [first["id"], second["id"]]
    assert [n["title"] for n in get(port, "/notes?q=caf%C3%A9").json()] == ["second note"]
    assert len(get(port, "/notes?limit=1").json()) == 1

    r = send(port, "PUT", f"/notes/{first['id']}", {"body": "changed"})
    assert r.status == 200 and r.json()["body"] == "changed" and r.json()["title"] == "first"
    r = send(port, "PUT", f"/notes/{first['id']}", "title=renamed", form=True)
    assert r.status == 200 and r.json()["title"] == "renamed" and r.json()["body"] == "changed"

    r = send(port, "DELETE", f"/notes/{first['id']}")
    assert r.status == 200 and r.json() == {"deleted": first["id"]}
    assert get(port, f"/notes/{first['id']}").status == 404
    assert send(port, "DELETE", f"/notes/{first['id']}").status == 404

    # bad input is a 4xx with a message, never a 500
    assert send(port, "POST", "/notes", "{not json").status == 400
    assert send(port, "POST", "/notes", {"body": "no title"}).status == 400
    assert send(port, "POST", "/notes", {"title": ""}).status == 400
    assert get(port, "/notes?limit=lots").status == 400
    assert get(port, "/notes?q=%zz").status == 400
    assert get(port, "/notes/abc").status == 404
    assert send(port, "PATCH", "/notes").status == 405
    big = json.dumps({"title": "big", "body": "x" * (1 << 20)})       # over the app's 1 MiB
    assert send(port, "POST", "/notes", big).status in (400, 413)
    assert send(port, "POST", "/notes", b'{"title":"nul\x00"}').status == 400
    assert get(port, "/health").json() == {"database": "ok"}


def test_notes_refuses_to_boot_without_database_url(servers, port, tmp_path):
    s = servers("-b", f"tcp://127.0.0.1:{port}", NOTES, env={"DATABASE_URL": ""}, wait=False)
    assert s.wait_exit(20) != 0
    assert "set DATABASE_URL" in s.stdout() + s.stderr()


# ---- connections and processes ---------------------------------------------------


def serval_tree(root):
    """The master and every process below it."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def tcp_inodes(pg_port):
    """inode -> local port of every 127.0.0.1 socket connected to PostgreSQL."""
    out = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(remote.split(":")[1], 16) == pg_port and inode != "0":
                out[inode] = int(local.split(":")[1], 16)
    return out


def socket_holders(pids):
    """inode -> set of pids holding that socket."""
    out = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                out.setdefault(target[8:-1], set()).add(pid)
    return out


class ConnectionSampler:
    """Samples who holds each notes backend connection until stopped.

    fork() copies every fd, so for the instant between fork and the app's
    atfork child handler (which points inherited connections at /dev/null)
    a new child holds its parent's sockets; on a loaded machine that
    instant can be caught by one sample. Sharing is reported when the same
    backend is seen held by the same wrong process in two samples in a row
    (about 50 ms apart): a child that kept a connection it inherited, or a
    process using one it did not open.
    """

    def __init__(self, pg, master_pid):
        self.pg = pg
        self.master = master_pid
        self.violations = []
        self.suspects = set()   # (backend, holder) seen wrong in the previous sample
        self.samples = 0
        self.backends_seen = set()
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.psql = pg.session()

    def sample(self):
        rows = self.psql.sql("SELECT pid, client_port, application_name FROM pg_stat_activity "
                           "WHERE datname = 'notes' AND backend_type = 'client backend' "
                           "AND application_name LIKE 'notes pid=%'")
        pids = serval_tree(self.master)
        holders = socket_holders(pids)
        by_port = {}
        for inode, lport in tcp_inodes(self.pg.port).items():
            by_port.setdefault(lport, set()).update(holders.get(inode, set()))
        suspects = set()
        for backend, client_port, app in rows:
            owner = int(app.split("=")[1])
            held = by_port.get(int(client_port), set())
            self.backends_seen.add(backend)
            for wrong in sorted(held - {owner}):
                suspects.add((backend, wrong))
                if (backend, wrong) in self.suspects:
                    self.violations.append(f"backend {backend} (opened by {owner}, port {client_port}) "
                                           f"held by {sorted(held)} in two samples in a row")
        self.suspects = suspects
        self.samples += 1

    def _run(self):
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as e:  # noqa: BLE001 - a sampler failure is reported at the end
                self.errors.append(repr(e))
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)
        self.psql.close()

    def wait_samples(self, n, timeout=60):
        start = self.samples
        wait_until(lambda: self.samples - start >= n, timeout, what=f"{n} connection samples")

    def assert_clean(self):
        assert not self.violations, "connections shared across processes:\n" + "\n".join(self.violations[:10])
        assert self.samples >= 20, f"only {self.samples} samples ({self.errors[:3]})"


class NotesLoop(ClientLoop):
    """Writes a note and reads it back, on a new connection each time."""

    def _one(self, conn):
        title = f"t{threading.get_ident()}-{time.monotonic_ns()}"
        conn.request("POST", "/notes", body=json.dumps({"title": title}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        body = r.read()
        if r.status != 201:
            raise AssertionError(f"POST status {r.status} body {body[:120]!r}")
        note = json.loads(body)
        conn.close()
        conn.connect()
        conn.request("GET", f"/notes/{note['id']}")
        r = conn.getresponse()
        got = r.read()
        if r.status != 200 or json.loads(got)["title"] != title:
            raise AssertionError(f"GET status {r.status} body {got[:120]!r}")
        return got


def control(port2, path):
    return get(port2, f"{path}?token=tok")


def wait_op(port2, path, servalctl, timeout=60):
    r = subprocess.run([servalctl, "-C", f"tcp://127.0.0.1:{port2}", "-T", "tok", path, "--wait"],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"servalctl {path} --wait: {r.returncode}\n{r.stdout}\n{r.stderr}"


def test_notes_restarts_fail_no_request_and_never_share_a_connection(servers, port, port2, notes_env, pg,
                                                                     servalctl_bin):
    s = servers("-w", "3", "-t", "3:3", "--fork-worker", "0", "-b", f"tcp://127.0.0.1:{port}",
                "--control-url", f"tcp://127.0.0.1:{port2}", "--control-token", "tok", NOTES,
                env=notes_env, workers=3)
    with NotesLoop(port, threads=4) as loop, ConnectionSampler(pg, s.pid) as sampler:
        for op in ("phased-restart", "refork", "restart", None):
            loop.wait_requests(50, timeout=60)
            sampler.wait_samples(5)
            if op:
                wait_op(port2, op, servalctl_bin)
    loop.assert_clean(min_ok=200)
    sampler.assert_clean()
    assert len(sampler.backends_seen) >= 3, sampler.backends_seen

    # the old workers closed theirs at shutdown: every backend left belongs to a current worker
    def owners_are_workers():
        rows = pg.sql("SELECT application_name FROM pg_stat_activity WHERE datname = 'notes' "
                      "AND application_name LIKE 'notes pid=%'")
        owners = {int(r[0].split("=")[1]) for r in rows}
        return owners and owners <= set(s.workers())

    wait_until(owners_are_workers, 20, what="only current workers to hold connections")


def test_notes_refork_closes_worker0_connections_before_the_mold(servers, port, port2, notes_env, pg,
                                                                 servalctl_bin):
    s = servers("-w", "2", "-t", "2:2", "--fork-worker", "0", "-b", f"tcp://127.0.0.1:{port}",
                "--control-url", f"tcp://127.0.0.1:{port2}", "--control-token", "tok", NOTES,
                env=notes_env, workers=2)
    w0 = None
    for _ in range(300):  # until a request lands on worker 0
        who = get(port, "/db").json()
        if who["worker"] == 0:
            w0 = who
            break
    assert w0 is not None, "worker 0 never answered"
    before = {r[0] for r in pg.sql(f"SELECT pid FROM pg_stat_activity WHERE application_name = 'notes pid={w0['pid']}'")}
    assert str(w0["backend_pid"]) in before
    wait_op(port2, "refork", servalctl_bin)
    # on_refork closed them: their backends end, and worker 0 opens new ones on next use
    wait_until(lambda: not ({r[0] for r in pg.sql("SELECT pid FROM pg_stat_activity")} & before),
               timeout=20, what="worker 0's old backends to end")
    for _ in range(300):
        who = get(port, "/db").json()
        if who["pid"] == w0["pid"]:
            assert str(who["backend_pid"]) not in before
            break
    else:
        raise AssertionError("worker 0 did not answer after the refork")


def test_notes_survives_a_database_restart(servers, port, notes_env, pg):
    servers("-w", "2", "-t", "3:3", "-b", f"tcp://127.0.0.1:{port}", NOTES, env=notes_env, workers=2)
    # open a connection in (nearly) every serving thread
    for _ in range(30):
        assert send(port, "POST", "/notes", {"title": "before"}).status == 201
    old = {r[0] for r in pg.sql("SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'notes pid=%'")}
    assert len(old) >= 2

    pg.restart()

    # every thread finds its connection dead before using it, and reconnects:
    # not one request fails once the database is back
    statuses = [send(port, "POST", "/notes", {"title": "after"}).status for _ in range(30)]
    statuses += [get(port, "/notes?limit=5").status for _ in range(30)]
    assert statuses == [201] * 30 + [200] * 30, statuses
    new = {r[0] for r in pg.sql("SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'notes pid=%'")}
    assert new and not (new & old)


def test_notes_answers_503_while_the_database_is_down(servers, port, notes_env, pg):
    servers("-b", f"tcp://127.0.0.1:{port}", NOTES, env=notes_env)
    assert get(port, "/health").status == 200
    pg.stop()
    try:
        r = get(port, "/health", timeout=30)
        assert r.status == 503 and r.json() == {"error": "database unavailable"}
        assert send(port, "POST", "/notes", {"title": "x"}).status == 503
    finally:
        pg.start()
    wait_until(lambda: get(port, "/health").status == 200, timeout=30, what="notes to reconnect")


def test_notes_with_preload_forks_no_connection(servers, port, notes_env, pg):
    # init runs in the master (it creates the table there); the workers must not inherit a connection
    s = servers("-w", "2", "-t", "2:2", "--preload", "-b", f"tcp://127.0.0.1:{port}", NOTES, env=notes_env,
                workers=2)
    for _ in range(20):
        assert send(port, "POST", "/notes", {"title": "preloaded"}).status == 201
    with ConnectionSampler(pg, s.pid) as sampler:
        sampler.wait_samples(3)
    assert not sampler.violations, sampler.violations
    master_sockets = {inode for inode, pids in socket_holders([s.pid]).items() if s.pid in pids}
    assert not (master_sockets & set(tcp_inodes(pg.port))), "the master holds a database connection"
    owners = {int(r[0].split("=")[1]) for r in pg.sql(
        "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'notes pid=%'")}
    assert owners and owners <= set(s.workers()), (owners, s.workers())
