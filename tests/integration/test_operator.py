"""Operator comforts: timestamps on log lines (log_format), and servalctl's
data commands printing only data (metrics a Prometheus parser accepts)."""

import datetime
import os
import pty
import re
import select
import subprocess
import time

from helpers import get, wait_until

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ")


def test_log_lines_are_stamped_off_a_terminal(servers, testapp, port):
    s = servers("-w", "2", "-b", f"tcp://127.0.0.1:{port}", "--log-requests", testapp, workers=2)
    assert get(port, "/").status == 200
    s.wait_log(r"GET / HTTP/1.1")
    lines = [l for l in s.stdout().splitlines() if l]
    assert len(lines) > 5
    now = datetime.datetime.now(datetime.timezone.utc)
    for line in lines:
        m = STAMP.match(line)
        assert m, f"no timestamp: {line!r}"
        when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
        assert abs((now - when).total_seconds()) < 300, line
        assert re.match(r"\[\d+\] ", line[m.end():]), f"pid prefix follows the stamp: {line!r}"


def test_log_format_plain_and_iso8601(servers, testapp, port, tmp_path):
    cfg = tmp_path / "plain.rb"
    cfg.write_text('log_format "plain"\n')
    s = servers("-C", str(cfg), "-b", f"tcp://127.0.0.1:{port}", testapp)
    lines = [l for l in s.stdout().splitlines() if l]
    assert lines and not any(STAMP.match(l) for l in lines), lines[:3]
    assert lines[0].startswith("serval starting") or lines[0].startswith("*"), lines[0]

    cfg.write_text("log_format :iso8601\n")
    r = subprocess.run([s.binary, "-C", str(cfg), "--check"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    cfg.write_text('log_format "json"\n')
    r = subprocess.run([s.binary, "-C", str(cfg), "--check"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "log_format" in r.stderr and ":iso8601" in r.stderr, r.stderr


def test_log_format_auto_is_plain_on_a_terminal(serval_bin, testapp, port):
    master, slave = pty.openpty()
    proc = subprocess.Popen([serval_bin, "-b", f"tcp://127.0.0.1:{port}", testapp], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 20
        while b"Use Ctrl-C to stop" not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
        assert b"Use Ctrl-C to stop" in out, out
    finally:
        proc.kill()
        proc.wait(10)
        os.close(master)
    lines = [l for l in out.decode("utf-8", "replace").splitlines() if l.strip()]
    assert not any(STAMP.match(l) for l in lines), lines[:3]


# ---- servalctl data commands --------------------------------------------------------

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)')
VALUE = re.compile(r"^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]?Inf|NaN)$")


def parse_labels(text):
    out, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            raise AssertionError(f"bad labels {text!r} at {pos}")
        if m.group(1) in out:
            raise AssertionError(f"label {m.group(1)} twice in {text!r}")
        out[m.group(1)] = m.group(2)
        pos = m.end()
    return tuple(sorted(out.items()))


def check_prometheus_text(text):
    """What `promtool check metrics` checks: the text format parses, each
    family has one HELP and one TYPE before its samples and its samples are
    together, no series repeats; and its lint: counters end in _total, other
    types do not, every family has HELP. Returns {family: type}."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types, helps, done, series = {}, {}, set(), set()
    current = None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {n}: {line!r}"
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert METRIC_NAME.match(name), where
                assert name not in done, f"{where}: {name} comes back after other families"
                table = helps if parts[1] == "HELP" else types
                assert name not in table, f"{where}: second {parts[1]} for {name}"
                if parts[1] == "TYPE":
                    assert len(parts) == 4 and parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), where
                    assert not any(s[0] == name for s in series), f"{where}: TYPE after samples"
                table[name] = parts[3] if len(parts) == 4 else ""
                if current and current != name:
                    done.add(current)
                current = name
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$", line)
        assert m, f"{where}: not a sample"
        name, labels, value = m.group(1), parse_labels(m.group(3) or ""), m.group(4)
        assert VALUE.match(value), f"{where}: bad value"
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in types:
                family = name[: -len(suffix)]
        assert family not in done, f"{where}: samples of {family} are not together"
        if current and current != family:
            done.add(current)
        current = family
        key = (name, labels)
        assert key not in series, f"{where}: duplicate series"
        series.add(key)
    for name, typ in types.items():
        assert helps.get(name), f"lint: {name} has no HELP"
        if typ == "counter":
            assert name.endswith("_total"), f"lint: counter {name} should end in _total"
        else:
            assert not name.endswith("_total"), f"lint: {typ} {name} should not end in _total"
    return types


def test_prometheus_checker_catches_mistakes():
    good = "# HELP a_total A.\n# TYPE a_total counter\na_total{w=\"0\"} 1\na_total{w=\"1\"} 2\n"
    assert check_prometheus_text(good) == {"a_total": "counter"}
    bad = [
        good.rstrip("\n"),                                        # no final newline
        "Command metrics sent success\n" + good,                  # the old servalctl output
        good.replace("a_total counter", "a_total gauge"),         # gauge named _total
        good.replace("a_total", "a"),                             # counter without _total
        good + "a_total{w=\"1\"} 3\n",                           # duplicate series
        good.replace("w=\"1\"", "w=1"),                            # bad label
        good.replace("# HELP a_total A.\n", ""),                  # no HELP
        good + "# HELP b B.\n# TYPE b gauge\nb 1\na_total{w=\"2\"} 1\n",  # family split
        good.replace("} 2", "} two"),                             # bad value
    ]
    for text in bad:
        try:
            check_prometheus_text(text)
        except AssertionError:
            continue
        raise AssertionError(f"accepted: {text!r}")


def test_servalctl_data_commands_print_only_data(servers, testapp, port, port2, servalctl_bin):
    s = servers("-w", "2", "-b", f"tcp://127.0.0.1:{port}", "--control-url", f"tcp://127.0.0.1:{port2}",
                "--control-token", "tok", testapp, workers=2)
    for _ in range(5):
        assert get(port, "/").status == 200

    def ctl(*args):
        return subprocess.run([servalctl_bin, "-C", f"tcp://127.0.0.1:{port2}", "-T", "tok", *args],
                              capture_output=True, text=True, timeout=30)

    r = ctl("metrics")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "Command metrics sent success"
    types = check_prometheus_text(r.stdout)
    assert types.get("serval_worker_requests_total") == "counter", types

    r = ctl("stats")
    assert r.returncode == 0 and r.stdout.lstrip().startswith("{"), r.stdout[:80]
    assert __import__("json").loads(r.stdout)["workers"] == 2
    r = ctl("-Q", "stats")
    assert r.returncode == 0 and r.stderr == "", r.stderr

    # an action command keeps pumactl's line on stdout
    r = ctl("phased-restart")
    assert r.returncode == 0 and r.stdout.strip() == "Command phased-restart sent success", r.stdout
    wait_until(lambda: get(port2, "/stats?token=tok").json()["phase"] == 1, 60, what="the phased restart")


def test_servalctl_help_describes_every_command(servalctl_bin):
    r = subprocess.run([servalctl_bin, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    block = r.stdout.split("Commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    described = {line.split()[0]: line.split(None, 1)[1] for line in block if len(line.split()) > 1}
    for cmd in ("stop", "halt", "restart", "phased-restart", "refork", "status", "stats", "reload-worker-directory",
                "gc-stats", "thread-backtraces", "metrics"):
        assert described.get(cmd), f"{cmd} is not described in --help"
    assert "stdout" in r.stdout and "docs/servalctl.md" in r.stdout
