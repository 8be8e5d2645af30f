"""Helpers for serval's integration tests: a server handle, HTTP clients,
a background client loop, and bounded waits."""

import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time


# make asan / make tsan set SERVAL_SANITIZED: then a sanitizer report on a server's
# stderr fails the test that started it, even when the test never looked at the
# server's exit status.
SANITIZED = bool(os.environ.get("SERVAL_SANITIZED"))
SANITIZER_REPORT = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|"
                              r"WARNING: ThreadSanitizer|runtime error:")


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Poll predicate until it returns a truthy value or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_handed_out = set()


def free_port():
    """A port nothing is bound to, below the kernel's ephemeral range. A port that
    bind(0) hands out is an ephemeral one, and until the server binds it any outgoing
    connection on the machine (ours, or another suite's on a shared machine) may take
    it as its local port: "address already in use" on a busy machine. Below the range
    only listeners compete, and each port is handed out once per run."""
    rng = random.SystemRandom()
    hi = _EPHEMERAL_LOW - 1
    lo = max(1024, hi - 12000)
    # pytest-xdist workers (PYTEST_ARGS="-n 2") draw from separate slices of the range
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if worker.startswith("gw") and worker[2:].isdigit() and count > 1:
        size = (hi - lo + 1) // count
        lo += int(worker[2:]) % count * size
        hi = lo + size - 1
    for _ in range(200):
        p = rng.randint(lo, hi)
        if p in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        _handed_out.add(p)
        return p
    with socket.socket() as s:  # a crowded low range: the kernel's choice after all
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False


def children_of(pid):
    """Pids whose parent is pid (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return sorted(out)


def fd_targets(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return out


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("latin-1")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.body[:60]!r}>"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class TLSTarget:
    """An ssl:// listener for connection(), request() and ClientLoop: its port, the CA
    file that signed its certificate, and the server name to send (SNI)."""

    def __init__(self, port, cafile, server_name="localhost", context=None):
        import ssl
        self.port = port
        self.server_name = server_name
        self.context = context or ssl.create_default_context(cafile=cafile)

    def connection(self, timeout=10):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=self.context)
        name = self.server_name

        def connect():
            sock = socket.create_connection(("127.0.0.1", self.port), timeout)
            conn.sock = self.context.wrap_socket(sock, server_hostname=name)

        conn.connect = connect
        return conn


def connection(target, timeout=10):
    if isinstance(target, TLSTarget):
        return target.connection(timeout)
    if isinstance(target, str):
        return UnixHTTPConnection(target, timeout=timeout)
    host = "127.0.0.1"
    if isinstance(target, tuple):
        host, target = target
    return http.client.HTTPConnection(host, target, timeout=timeout)


def request(target, path="/", method="GET", body=None, headers=None, timeout=10):
    """One request on a new connection; target is a port, (host, port) or a unix path."""
    conn = connection(target, timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def get(target, path="/", **kw):
    return request(target, path, **kw)


def raw(port, data, timeout=5.0, host="127.0.0.1", shut=False):
    """Send raw bytes, return everything the server sends until it closes (or timeout)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                chunks.append(b"<RESET>")
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


class Server:
    """A serval process under test."""

    def __init__(self, build, args, tmp_path, env=None, cwd=None, name="serval", binary=None):
        self.binary = binary or os.path.join(build, "serval")
        self.args = args
        self.tmp = tmp_path
        self.name = name
        self.env = dict(os.environ)
        self.env.pop("WEB_CONCURRENCY", None)
        if env:
            self.env.update(env)
        self.cwd = cwd or str(tmp_path)
        n = 0
        while os.path.exists(os.path.join(str(tmp_path), f"{name}{n}.out")):
            n += 1
        self.out_path = os.path.join(str(tmp_path), f"{name}{n}.out")
        self.err_path = os.path.join(str(tmp_path), f"{name}{n}.err")
        self.proc = None

    # -- lifecycle ----------------------------------------------------------
    def start(self):
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary] + self.args,
            stdout=self.out,
            stderr=self.err,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def send(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=20):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"serval {self.pid} did not exit within {timeout}s\n{self.logs()}")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.alive():
            self.send(sig)
        return self.wait_exit(timeout)

    def kill_group(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.out, self.err):
            f.close()

    def sanitizer_reports(self):
        """Lines of a sanitizer report on stderr (only under make asan/tsan)."""
        if not SANITIZED or self.proc is None:
            return []
        return [f"serval {self.proc.pid}: {line}" for line in self.stderr().splitlines()
                if SANITIZER_REPORT.search(line)]

    # -- logs ---------------------------------------------------------------
    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def logs(self):
        return f"--- stdout ---\n{self.stdout()}\n--- stderr ---\n{self.stderr()}"

    def count(self, pattern, stream="stdout"):
        text = self.stdout() if stream == "stdout" else self.stderr()
        return len(re.findall(pattern, text))

    def wait_log(self, pattern, count=1, timeout=20, stream="stdout"):
        def ok():
            if not self.alive() and self.count(pattern, stream) < count:
                raise AssertionError(f"serval exited ({self.proc.returncode}) before {pattern!r}\n{self.logs()}")
            return self.count(pattern, stream) >= count

        try:
            wait_until(ok, timeout, what=f"{count}x {pattern!r}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.logs()}") from None

    def wait_booted(self, workers=None, timeout=20):
        self.wait_log(r"Use Ctrl-C to stop", timeout=timeout)
        if workers:
            self.wait_log(r"booted in", count=workers, timeout=timeout)

    # -- processes ------------------------------------------------------------
    def workers(self):
        """Pids of worker processes (children of the master titled as workers)."""
        out = []
        for pid in children_of(self.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"cluster worker" in f.read():
                        out.append(pid)
            except OSError:
                pass
        return out

    def wait_workers(self, n, timeout=20, exclude=()):
        def ok():
            w = [p for p in self.workers() if p not in exclude]
            return w if len(w) >= n else None

        return wait_until(ok, timeout, what=f"{n} workers")


def socket_table(port):
    """Who holds which connection to port, with queue sizes (ss), and the
    state of serval's processes: what a stuck request is waiting for."""
    out = []
    for argv in (["ss", "-tanpi", f"( sport = :{port} or dport = :{port} )"],
                 ["ps", "-eo", "pid,ppid,stat,wchan:24,args"]):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=5)
            lines = r.stdout.splitlines()
            if argv[0] == "ps":
                lines = [l for l in lines if "serval" in l or l.lstrip().startswith("PID")]
            out.append("\n".join(lines))
        except (OSError, subprocess.SubprocessError) as e:
            out.append(f"{argv[0]}: {e}")
    return "\n".join(out)


class ClientLoop:
    """Requests in background threads until stopped; records every failure.

    keepalive=False opens a new connection per request (like Puma's restart
    tests); keepalive=True reuses one connection per thread and, as HTTP
    clients do, retries a request once on a fresh connection when a reused
    idle connection was closed before any byte of the response arrived."""

    def __init__(self, target, path="/", threads=4, keepalive=False, expect=b"Hello World", timeout=15):
        self.target = target
        self.path = path
        self.nthreads = threads
        self.keepalive = keepalive
        self.expect = expect
        self.timeout = timeout
        self.ok = 0
        self.failures = []
        self.latencies = []
        self.spans = []  # (start, end) of each answered request, time.monotonic()
        self.bodies = []
        self.diag = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []

    def _one(self, conn):
        conn.request("GET", self.path)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200 or (self.expect is not None and self.expect not in body):
            raise AssertionError(f"status {r.status} body {body[:80]!r}")
        return body

    def _run(self):
        conn = None
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                if conn is None or not self.keepalive:
                    conn = connection(self.target, self.timeout)
                try:
                    body = self._one(conn)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    if not self.keepalive:
                        raise
                    conn.close()
                    conn = connection(self.target, self.timeout)
                    body = self._one(conn)
                dt = time.monotonic() - t0
                with self._lock:
                    self.ok += 1
                    self.latencies.append(dt)
                    self.spans.append((t0, t0 + dt))
                    if len(self.bodies) < 100000:
                        self.bodies.append(body)
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                where = ""
                if conn is not None and conn.sock is not None:
                    try:
                        where = f" (local port {conn.sock.getsockname()[1]})"
                    except OSError:
                        pass
                if isinstance(e, TimeoutError) and not self.diag and isinstance(self.target, int):
                    self.diag = socket_table(self.target)  # while the connection is still stuck
                with self._lock:
                    self.failures.append(f"{time.strftime('%H:%M:%S')} {type(e).__name__}: {e}{where}")
                if conn:
                    conn.close()
                conn = None
            finally:
                if conn is not None and not self.keepalive:
                    conn.close()
                    conn = None

    def __enter__(self):
        for _ in range(self.nthreads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 5)

    def wait_requests(self, n, timeout=20):
        start = self.ok
        wait_until(lambda: self.ok - start >= n, timeout, what=f"{n} more requests")

    def max_latency(self, since=None):
        """The slowest answer; since: of the requests started at or after that time."""
        if since is None:
            return max(self.latencies) if self.latencies else 0.0
        with self._lock:
            return max((b - a for a, b in self.spans if a >= since), default=0.0)

    def assert_clean(self, min_ok=1):
        assert not self.failures, f"{len(self.failures)} failed requests (of {self.ok + len(self.failures)}): " + "; ".join(
            self.failures[:5]
        ) + (f"\nsockets at the first timeout:\n{self.diag}" if self.diag else "")
        assert self.ok >= min_ok, f"only {self.ok} requests succeeded"


def stats(control_port, token="tok"):
    return get(control_port, f"/stats?token={token}").json()


def read_state_file(path):
    out = {}
    with open(path) as f:
        for line in f:
            if ":" in line and not line.startswith("---"):
                k, v = line.split(":", 1)
                out[k.strip()] = v.strip().strip('"')
    return out


def slower_boot_than_noise(loop, boot_ms_file, floor_ms=2000, factor=10, cap_ms=12000):
    """Make the next boots of testapp (a release's ./BOOT_MS file) far slower than any
    answer loop has seen on this server so far, and return that boot time in ms.

    A request that waits for a boot takes at least the boot time; one that does not
    takes what requests take on this machine now. Tests that prove "no request waited
    for the boot" bound the latency at half the boot time: scaling the boot with the
    latencies measured just before keeps that bound clear of a loaded machine's noise
    (a fixed 0.5 s bound was not), and a request that waited still fails it."""
    ms = int(min(cap_ms, max(floor_ms, factor * loop.max_latency() * 1000)))
    with open(boot_ms_file, "w") as f:
        f.write(f"{ms}\n")
    return ms


# clock_nanosleep on x86_64 and aarch64 (first field of /proc/PID/task/TID/syscall): glibc's
# nanosleep() and usleep() sleep through it. The raw nanosleep syscall (35, 101) is left out:
# only a sanitizer's runtime makes it, from a background thread of its own (TSan's sleeps in
# it 100 ms at a time), which is no sleep of the app and made a fifth "sleep" beside four.
SLEEP_SYSCALLS = {"230", "115"}


def sleeping_threads(pid):
    """How many of pid's threads are blocked in clock_nanosleep (glibc's nanosleep): testapp's
    /sleep route, seen from outside (an event to wait for instead of a sleep)."""
    n = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                n += f.read().split()[0] in SLEEP_SYSCALLS
        except (OSError, IndexError):
            pass
    return n
