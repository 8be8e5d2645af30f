"""A fleet of serval hosts behind HAProxy, built from network namespaces on one box.

Topology (everything lives in namespaces this module creates and removes; the root
namespace gets no interface, no route and no traffic):

    netns LB  (HAProxy, the load client)
      lo   127.0.0.1            HAProxy's frontend
      br0  198.18.0.1/24        a bridge; 198.18.0.0/15 is RFC 2544's benchmark range
       |-- veth --> netns H1  eth0 198.18.0.11  serval cluster :8080, control :9293
       |-- veth --> netns H2  eth0 198.18.0.12  ...
       `-- veth --> netns H3  eth0 198.18.0.13

Each host has its own directory with a copy of the serval binary (so that a hot
restart can pick up a new binary put in its place), a `releases/N/` directory per app
release (a copy of testapp.so and a VERSION file) and a `current` symlink, the way a
deploy tool lays a host out. HAProxy health-checks every host on its readiness
endpoint and takes it out of rotation when that answers 503 (draining, lame duck) or
not at all.

Used by bench/fleet (the full scenario) and tests/integration/test_fleet.py (a small
one). Needs root (ip netns), iproute2 and haproxy.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

SUBNET = "198.18.0"
LB_ADDR = f"{SUBNET}.1"
APP_PORT = 8080
CONTROL_PORT = 9293
FRONT_PORT = 8000
TOKEN = "fleet"


def _run(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=30)


def wait_for(pred, timeout, what, step=0.05):
    """Polls pred() until it returns true, or raises after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def available():
    """None when a fleet can be built here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (ip netns)"
    for tool in ("ip", "haproxy"):
        if not shutil.which(tool):
            return f"{tool} not installed"
    return None


class Host:
    """One serval cluster in its own namespace."""

    def __init__(self, fleet, index):
        self.fleet = fleet
        self.index = index
        self.name = f"h{index}"
        self.ns = f"{fleet.prefix}-{self.name}"
        self.addr = f"{SUBNET}.{10 + index}"
        self.dir = os.path.join(fleet.dir, self.name)
        self.binary = os.path.join(self.dir, "serval")
        self.release = 0
        self.proc = None
        self.log_path = os.path.join(self.dir, "serval.log")
        self.log = None

    # Layout --------------------------------------------------------------------

    def deploy_release(self):
        """Puts a new release of the app beside the old ones and flips `current` to
        it atomically (a new symlink renamed over the old one), as a deploy tool does."""
        self.release += 1
        rel = os.path.join(self.dir, "releases", str(self.release))
        os.makedirs(rel)
        shutil.copy(self.fleet.app, os.path.join(rel, "app.so"))
        with open(os.path.join(rel, "VERSION"), "w") as f:
            f.write(f"release-{self.release}\n")
        tmp = os.path.join(self.dir, "current.new")
        os.symlink(rel, tmp)
        os.replace(tmp, os.path.join(self.dir, "current"))
        return f"release-{self.release}"

    def install_binary(self):
        """Puts a (new) serval binary at the host's path by rename: the running master
        keeps its image; a hot restart execs the new file."""
        tmp = self.binary + ".new"
        shutil.copy(self.fleet.serval, tmp)
        os.replace(tmp, self.binary)

    # Process -------------------------------------------------------------------

    def argv(self):
        a = [self.binary, "-w", str(self.fleet.workers), "-t", self.fleet.threads,
             "--dir", os.path.join(self.dir, "current"),
             "-b", f"tcp://{self.addr}:{APP_PORT}",
             "--control-url", f"tcp://{self.addr}:{CONTROL_PORT}",
             "--control-token", TOKEN,
             "-S", os.path.join(self.dir, "serval.state"),
             "--pidfile", os.path.join(self.dir, "serval.pid")]
        if self.fleet.config:
            a += ["-C", self.fleet.config]
        return a + [os.path.join(self.dir, "current", "app.so")]

    def start(self):
        env = dict(os.environ)
        env["TESTAPP_BOOT_MS"] = str(self.fleet.boot_ms)
        if self.log is None:
            self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns] + self.argv(),
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env,
                                     cwd=self.dir, start_new_session=True)

    def wait_ready(self, timeout=60):
        wait_for(lambda: self.http_get(CONTROL_PORT, f"/readyz?token={TOKEN}") == 200,
                 timeout, f"{self.name} ready")

    def signal(self, sig):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, timeout=60):
        """Graceful stop (TERM), bounded; the pid is ours (ip netns exec execs)."""
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        self.proc = None
        return rc

    def kill(self):
        """SIGKILL to the master and every process of its session (the workers, the
        mold): a host that dies at once."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    def ctl(self, *command, timeout=120):
        """servalctl against this host's control server, from inside its namespace."""
        r = subprocess.run(["ip", "netns", "exec", self.ns, self.fleet.servalctl,
                            "-C", f"tcp://{self.addr}:{CONTROL_PORT}", "-T", TOKEN,
                            *command], capture_output=True, text=True, timeout=timeout)
        return r.returncode, (r.stdout + r.stderr).strip()

    def http_get(self, port, path):
        """Status of GET path on this host (from the LB namespace), 0 on no answer."""
        r = subprocess.run(["ip", "netns", "exec", self.fleet.lb_ns, "curl", "-s",
                            "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2",
                            f"http://{self.addr}:{port}{path}"],
                           capture_output=True, text=True, timeout=10)
        try:
            return int(r.stdout.strip() or 0)
        except ValueError:
            return 0


class Fleet:
    """Namespaces, hosts and HAProxy. Use as a context manager: everything it made
    (processes, namespaces, files) is removed on exit, whatever happened."""

    def __init__(self, build, workdir, hosts=3, workers=2, threads="0:5", boot_ms=500,
                 keep_alive=True, config=None, check_inter_ms=300):
        self.build = build
        self.serval = os.path.join(build, "serval")
        self.servalctl = os.path.join(build, "servalctl")
        self.app = os.path.join(build, "examples", "testapp.so")
        self.dir = workdir
        self.prefix = f"svf{os.getpid()}"
        self.lb_ns = f"{self.prefix}-lb"
        self.workers = workers
        self.threads = threads
        self.boot_ms = boot_ms
        self.keep_alive = keep_alive
        self.config = config
        self.check_inter_ms = check_inter_ms
        self.hosts = [Host(self, i + 1) for i in range(hosts)]
        self.haproxy = None
        self.haproxy_sock = os.path.join(workdir, "haproxy.sock")
        self.namespaces = []

    # Setup ---------------------------------------------------------------------

    def __enter__(self):
        try:
            self._network()
            for h in self.hosts:
                os.makedirs(h.dir)
                h.install_binary()
                h.deploy_release()
                h.start()
            for h in self.hosts:
                h.wait_ready()
            self._haproxy()
            wait_for(lambda: all(s == "UP" for s in self.states().values()), 30,
                     "every host UP in HAProxy")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _ns(self, name):
        _run("ip", "netns", "add", name)
        self.namespaces.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")

    def _network(self):
        self._ns(self.lb_ns)
        lb = ["ip", "-n", self.lb_ns]
        _run(*lb, "link", "add", "br0", "type", "bridge")
        _run(*lb, "addr", "add", f"{LB_ADDR}/24", "dev", "br0")
        _run(*lb, "link", "set", "br0", "up")
        for h in self.hosts:
            self._ns(h.ns)
            port = f"v{h.name}"
            _run(*lb, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                 "netns", h.ns)
            _run(*lb, "link", "set", port, "master", "br0")
            _run(*lb, "link", "set", port, "up")
            _run("ip", "-n", h.ns, "addr", "add", f"{h.addr}/24", "dev", "eth0")
            _run("ip", "-n", h.ns, "link", "set", "eth0", "up")

    def haproxy_config(self):
        inter = self.check_inter_ms
        servers = "\n".join(
            f"    server {h.name} {h.addr}:{APP_PORT} check port {CONTROL_PORT}"
            for h in self.hosts)
        # keep-alive: HAProxy keeps idle server connections and reuses them (its
        # default http-keep-alive mode); close: a new server connection per request.
        server_mode = ("    option http-keep-alive\n    http-reuse safe" if self.keep_alive
                       else "    option http-server-close")
        return f"""global
    stats socket {self.haproxy_sock} mode 600 level admin
    maxconn 4096
    log stdout format raw local0 warning

defaults
    mode http
    log global
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    # A connection refused by a host that has just stopped is retried on another.
    retries 3
    option redispatch 1

frontend fe
    bind 127.0.0.1:{FRONT_PORT}
    default_backend be

backend be
    balance roundrobin
{server_mode}
    option httpchk
    http-check send meth GET uri /readyz?token={TOKEN}
    http-check expect status 200
    default-server inter {inter}ms fastinter {inter}ms downinter {inter}ms fall 1 rise 2
{servers}
"""

    def _haproxy(self):
        cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(self.haproxy_config())
        self.haproxy_log = open(os.path.join(self.dir, "haproxy.log"), "ab")
        self.haproxy = subprocess.Popen(
            ["ip", "netns", "exec", self.lb_ns, "haproxy", "-db", "-f", cfg],
            stdin=subprocess.DEVNULL, stdout=self.haproxy_log, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for(lambda: os.path.exists(self.haproxy_sock), 15, "haproxy stats socket")

    # Observation ---------------------------------------------------------------

    def haproxy_cmd(self, cmd):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(self.haproxy_sock)
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        return out.decode()

    def states(self):
        """{host name: HAProxy status (UP, DOWN, 'UP 1/2', ...)} from `show stat`."""
        try:
            text = self.haproxy_cmd("show stat")
        except OSError:
            return {}
        lines = text.splitlines()
        if not lines:
            return {}
        cols = lines[0].lstrip("# ").split(",")
        st = {}
        for line in lines[1:]:
            f = line.split(",")
            if len(f) < len(cols):
                continue
            row = dict(zip(cols, f))
            if row.get("pxname") == "be" and row.get("svname") not in ("BACKEND", "FRONTEND"):
                st[row["svname"]] = row.get("status", "")
        return st

    def load_argv(self, loadclient, out_csv, concurrency, duration, rate, start_at=None):
        """The load client's command line, run inside the LB namespace against HAProxy."""
        a = ["ip", "netns", "exec", self.lb_ns, "/usr/bin/python3", loadclient,
             "--host", "127.0.0.1", "--port", str(FRONT_PORT), "-c", str(concurrency),
             "--duration", str(duration), "--timeout", "10", "--out", out_csv]
        if rate:
            a += ["--rate", str(rate)]
        if self.keep_alive:
            a.append("--keep-alive")
        if start_at is not None:
            a += ["--start-at", repr(start_at)]
        return a

    # Teardown ------------------------------------------------------------------

    def close(self):
        for h in self.hosts:
            if h.proc is not None:
                h.stop(timeout=20)
            if h.log is not None:
                h.log.close()
                h.log = None
        if self.haproxy is not None:
            try:
                os.killpg(self.haproxy.pid, signal.SIGTERM)
                self.haproxy.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.haproxy.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.haproxy = None
        for ns in reversed(self.namespaces):
            _run("ip", "netns", "del", ns, check=False)
        self.namespaces = []
