"""The docs stay true to the code: links resolve, stats fields and metric names exist.

Every relative link in README.md, docs/ and the other READMEs names a file that
exists, and its #anchor a heading of that file (GitHub's slugs). docs/stats.md
documents every /stats field and every /metrics name a real server gives, in
cluster and single mode, and nothing that the server does not give.
(docs/configuration.md is held to --help by test_config_docs.py.)
"""

import glob
import os
import re

import pytest

from conftest import ROOT
from helpers import free_port, get, stats, wait_until

TOKEN = "tok"
STATS_DOC = os.path.join(ROOT, "docs", "stats.md")


# ---- links ------------------------------------------------------------------------------------


def doc_files():
    files = ["README.md"] + sorted(glob.glob("docs/*.md", root_dir=ROOT))
    for pattern in ("bench/README.md", "fuzz/README.md", "contrib/**/*.md", "examples/**/*.md",
                    "tests/**/README.md"):
        files += sorted(glob.glob(pattern, root_dir=ROOT, recursive=True))
    return [os.path.join(ROOT, f) for f in files]


def without_code(text):
    """The text outside fenced code blocks and inline code spans."""
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped, spaces to -."""
    h = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", h).replace(" ", "-")


def anchors(path):
    out, seen = set(), {}
    text = re.sub(r"^```.*?^```", "", open(path).read(), flags=re.S | re.M)
    for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, re.M):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def test_every_relative_link_and_anchor_resolves():
    files = doc_files()
    assert len(files) >= 18, files
    bad, checked = [], 0
    for path in files:
        for target in re.findall(r"\]\(([^)\s]+)\)", without_code(open(path).read())):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto:
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            where = f"{os.path.relpath(path, ROOT)}: ({target})"
            checked += 1
            if not os.path.exists(dest):
                bad.append(f"{where}: no such file")
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                bad.append(f"{where}: no heading with that anchor")
    assert checked > 100
    assert bad == []


def test_the_slug_is_githubs():
    assert slug("App deadline: `app_timeout`") == "app-deadline-app_timeout"
    assert slug("Operations: ids, waiting, queueing") == "operations-ids-waiting-queueing"
    assert slug("`stats --format table`") == "stats---format-table"


# ---- stats fields -----------------------------------------------------------------------------


def section(title, level="###"):
    text = open(STATS_DOC).read()
    start = text.index(f"\n{level} {title}\n")
    end = re.search(r"\n#{2,3} ", text[start + 1:])
    return text[start:start + 1 + end.start()] if end else text[start:]


def table_names(text, column=0):
    """The backticked names in a column of the markdown tables in text."""
    names = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            cell = re.split(r"(?<!\\)\|", line)[1 + column]
            names.update(re.findall(r"`([a-z_]+)(?:\.[a-z_]+)?`", cell))
    return names


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A fork_worker cluster (so the mold is there too), with 20 requests answered."""
    from helpers import Server
    from conftest import BUILD
    tmp = tmp_path_factory.mktemp("docs-cluster")
    port, cport = free_port(), free_port()
    s = Server(BUILD, ["-w", "2", "-t", "1:5", "--fork-worker", "0", "-b", f"tcp://127.0.0.1:{port}",
                       "--control-url", f"tcp://127.0.0.1:{cport}", "--control-token", TOKEN,
                       os.path.join(BUILD, "examples", "testapp.so")], tmp)
    s.start()
    try:
        s.wait_booted(workers=2)
        s.port, s.cport = port, cport
        for _ in range(20):
            assert get(port, "/").status == 200
        wait_until(lambda: stats(cport)["mold"] and stats(cport)["mold"]["ready"], timeout=20, what="the mold")
        yield s
    finally:
        s.kill_group()


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    from helpers import Server
    from conftest import BUILD
    tmp = tmp_path_factory.mktemp("docs-single")
    port, cport = free_port(), free_port()
    s = Server(BUILD, ["-t", "1:5", "-b", f"tcp://127.0.0.1:{port}", "--control-url",
                       f"tcp://127.0.0.1:{cport}", "--control-token", TOKEN,
                       os.path.join(BUILD, "examples", "testapp.so")], tmp)
    s.start()
    try:
        s.wait_booted()
        s.port, s.cport = port, cport
        assert get(port, "/").status == 200
        yield s
    finally:
        s.kill_group()


def test_every_cluster_stats_field_is_documented_and_every_documented_one_exists(cluster):
    j = stats(cluster.cport)
    top = table_names(section("Top-level fields"))
    # tls appears only with an ssl:// listener (test_tls.py holds its keys to docs/tls.md)
    assert sorted(set(j) - top) == [], "in /stats, not in docs/stats.md's top-level table"
    assert sorted(top - set(j) - {"tls"}) == [], "in docs/stats.md's top-level table, not in /stats"
    worker = table_names(section("Per worker"))
    w = j["worker_status"][0]
    assert sorted(set(w) ^ worker) == [], "per-worker fields: docs/stats.md vs /stats"
    last = table_names(section("last_status (and single-mode top level)"))
    single_only = {"app_timeouts", "crashes"}
    assert sorted(set(w["last_status"]) ^ (last - single_only)) == [], "last_status: docs/stats.md vs /stats"
    assert sorted(j["worker_deaths"]) == sorted(re.findall(r"`(\w+)` \(", row(section("Top-level fields"),
                                                                                   "worker_deaths")))
    assert set(j["mold"]) == set(re.findall(r"\w+", re.search(r"`\{(pid[^}]*)\}`",
                                                               row(section("Top-level fields"), "mold")).group(1)))
    assert set(j["restart"]) == {"current", "queued", "last"}


def row(text, name):
    return next(line for line in text.splitlines() if line.startswith(f"| `{name}`"))


def test_every_single_mode_stats_field_is_documented(single):
    j = stats(single.cport)
    documented = table_names(section("last_status (and single-mode top level)"))
    top = table_names(section("Top-level fields"))
    assert j["mode"] == "single"
    assert sorted(set(j) - documented - top) == [], "single-mode /stats keys that docs/stats.md does not describe"
    absent = {"backlog_max", "reactor_max", "connections_rebalanced"}
    assert sorted(absent & set(j)) == [], "docs/stats.md says single mode has none of these"
    example = re.search(r"## Single mode\n\n```json\n(.*?)\n```", open(STATS_DOC).read(), re.S).group(1)
    import json
    assert sorted(json.loads(example)) == sorted(j), "docs/stats.md's single-mode example has other keys"


def test_the_cluster_example_has_the_real_keys(cluster):
    import json
    text = open(STATS_DOC).read()
    example = json.loads(re.search(r"## Cluster mode\n.*?```json\n(.*?)\n```", text, re.S).group(1))
    j = stats(cluster.cport)
    assert sorted(example) == sorted(j)
    assert sorted(example["worker_status"][0]) == sorted(j["worker_status"][0])
    assert sorted(example["worker_status"][0]["last_status"]) == sorted(j["worker_status"][0]["last_status"])


# ---- metrics ----------------------------------------------------------------------------------


def metric_types(text):
    return dict(re.findall(r"^# TYPE (\w+) (\w+)$", text, re.M))


def metric_labels(text):
    out = {}
    for name, labels in re.findall(r"^(\w+)\{([^}]*)\} ", text, re.M):
        out.setdefault(name, set()).update(re.findall(r'(\w+)="', labels))
    return out


def test_every_cluster_metric_is_documented_with_its_type_and_labels(cluster):
    text = get(cluster.cport, f"/metrics?token={TOKEN}").text
    real = metric_types(text)
    real_labels = metric_labels(text)
    documented, doc_labels = {}, {}
    for line in section("Metrics", "##").splitlines():
        if line.startswith("| `serval_"):
            name, kind, labels = [c.strip() for c in line.split("|")[1:4]]
            documented[name.strip("`")] = kind
            doc_labels[name.strip("`")] = set(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", labels)))
    assert len(real) > 20
    assert sorted(set(real) - set(documented)) == [], "in /metrics, not in docs/stats.md"
    assert sorted(set(documented) - set(real)) == [], "in docs/stats.md, not in /metrics"
    assert {n: t for n, t in real.items() if documented[n] != t} == {}, "documented type differs"
    wrong = {n: (doc_labels[n], real_labels.get(n, set())) for n in real if doc_labels[n] != real_labels.get(n, set())}
    assert wrong == {}, "documented labels differ: {name: (docs, /metrics)}"
    restarts = row(section("Metrics", "##"), "serval_restarts_total")
    kinds = set(re.findall(r'kind="([\w-]+)"', text))
    assert kinds == set(re.findall(r"`([\w-]+)`", re.search(r"`kind` \(([^)]*)\)", restarts).group(1)))
    causes = set(re.findall(r'cause="(\w+)"', text))
    assert causes == set(stats(cluster.cport)["worker_deaths"])


def test_every_single_mode_metric_is_documented(single):
    text = get(single.cport, f"/metrics?token={TOKEN}").text
    real = set(metric_types(text))
    para = re.search(r"\nSingle mode exposes (.*?)\n\n", section("Metrics", "##"), re.S).group(1)
    documented = set(re.findall(r"`(serval_\w+)`", para))
    assert sorted(real ^ documented) == [], "single-mode metrics: docs/stats.md vs /metrics"
    assert all(labels == {"worker"} for labels in metric_labels(text).values() if "kind" not in labels)


def test_every_metric_name_the_docs_mention_exists(cluster, single):
    """Names in PromQL examples and prose anywhere in the docs, not only the tables."""
    real = set(metric_types(get(cluster.cport, f"/metrics?token={TOKEN}").text))
    real |= set(metric_types(get(single.cport, f"/metrics?token={TOKEN}").text))
    tls_counters = {"handshakes", "resumed", "failed_protocol", "failed_client_certificate", "failed_plain_http",
                    "failed_incomplete", "failed_other", "certificate_reloads", "certificate_reload_failures",
                    "ticket_key_rotations"}
    real |= {f"serval_tls_{k}_total" for k in tls_counters} | {"serval_tls_certificate_not_after_seconds"}
    unknown = set()
    for path in doc_files():
        for name in re.findall(r"\b(serval_[a-z_]+_(?:total|seconds|bytes)|serval_(?:up|workers\w*|phase|"
                               r"restart_in_progress|worker_\w+))\b", open(path).read()):
            if name not in real:
                unknown.add(f"{os.path.relpath(path, ROOT)}: {name}")
    assert sorted(unknown) == []


# ---- servalctl --------------------------------------------------------------------------------


def test_servalctl_commands_and_options_are_the_documented_ones():
    import subprocess
    from conftest import BUILD
    out = subprocess.run([os.path.join(BUILD, "servalctl"), "--help"], capture_output=True, text=True,
                         timeout=10).stdout
    commands = dict(re.findall(r"^  ([a-z][a-z-]+) +(.*)$", out.split("\nCommands:\n", 1)[1], re.M))
    assert len(commands) > 15, out
    assert sorted(n for n, what in commands.items() if not what.strip()) == [], "commands --help leaves bare"
    flags = set(re.findall(r"(?<![\w-])(--?[\w][\w-]*)", "\n".join(
        line.strip().split("  ", 1)[0] for line in out.split("\nCommands:\n", 1)[0].splitlines()
        if line.startswith("  -") or line.startswith("      --"))))
    doc = open(os.path.join(ROOT, "docs", "servalctl.md")).read()
    commands_table = doc.split("\n## Commands\n", 1)[1].split("\n### ", 1)[0]
    doc_commands = set()
    for line in commands_table.splitlines():
        if line.startswith("| `"):
            doc_commands.update(re.findall(r"`([a-z][a-z-]+)`", line.split("|")[1]))
    assert sorted(set(commands) ^ doc_commands) == [], "servalctl --help commands vs docs/servalctl.md"
    options_table = doc.split("\n| option | meaning |\n", 1)[1].split("\n\n", 1)[0]
    doc_flags = set()
    for line in options_table.splitlines():
        if line.startswith("| `"):
            doc_flags.update(re.findall(r"(?<![\w-])(--?[\w][\w-]*)", line.split("|")[1]))
    assert len(flags) > 15
    assert sorted(flags ^ doc_flags) == [], "servalctl --help options vs docs/servalctl.md"


def test_every_test_the_docs_cite_exists():
    """`tests/integration/test_x.py`, `test_x.py::test_y` and bare `test_y` names in the docs."""
    sources = ""
    for path in glob.glob(os.path.join(ROOT, "tests", "**", "*.[cp]*"), recursive=True):
        with open(path, errors="replace") as f:
            sources += f.read()
    cited, missing = 0, []
    for path in doc_files():
        for name in re.findall(r"\b(tests/[\w/]+\.(?:py|c)|test_\w+\.(?:py|c)|test_\w+)\b", open(path).read()):
            cited += 1
            if "." in name:
                found = glob.glob(os.path.join(ROOT, "tests", "**", os.path.basename(name)), recursive=True)
            else:
                found = re.search(rf"\b(def|void) {name}\(|/{name}\.c\b|\b{name}\.c\b", sources) or \
                    os.path.exists(os.path.join(ROOT, "tests", "unit", name + ".c"))
            if not found:
                missing.append(f"{os.path.relpath(path, ROOT)}: {name}")
    assert cited > 10
    assert sorted(set(missing)) == []


def test_the_trees_in_the_docs_name_every_folder_and_file():
    """README's tree has a row per src/ folder; architecture.md's names each .c of the folders it lists."""
    readme = open(os.path.join(ROOT, "README.md")).read().split("\n## The tree\n", 1)[1].split("\n## ", 1)[0]
    folders = sorted(d for d in os.listdir(os.path.join(ROOT, "src")) if os.path.isdir(os.path.join(ROOT, "src", d)))
    assert len(folders) >= 9
    assert [d for d in folders if f"`src/{d}/`" not in readme] == [], "src/ folders missing from README's tree"
    arch = open(os.path.join(ROOT, "docs", "architecture.md")).read().split("\n## The tree\n", 1)[1]
    arch = arch.split("\n## ", 1)[0]
    missing = []
    for line in arch.splitlines():
        m = re.match(r"^\| `src/(\w+)/` \|(.*)$", line)
        if m:
            for path in sorted(glob.glob(os.path.join(ROOT, "src", m.group(1), "*.c"))):
                if f"`{os.path.basename(path)}`" not in m.group(2):
                    missing.append(os.path.relpath(path, ROOT))
    assert missing == [], "files docs/architecture.md's tree does not name"


def test_every_control_path_is_in_the_control_table():
    table = open(os.path.join(ROOT, "src", "control", "commands.c")).read()
    paths = set(re.findall(r'"(/[a-z-]+)"', table))
    doc = open(os.path.join(ROOT, "docs", "control.md")).read().split("\n## Requests and answers\n", 1)[1]
    documented = set()
    for line in doc.split("\n### ", 1)[0].splitlines():
        if line.startswith("| `/"):
            documented.update(re.findall(r"`(/[a-z-]+)", line.split("|")[1]))
    assert len(paths) > 12
    assert sorted(paths ^ documented) == [], "control paths: src/control/commands.c vs docs/control.md's table"


def test_the_signal_table_is_the_command_table():
    """docs/signals.md's master table: each signal with the servalctl command and control path
    that src/control/commands.c gives it."""
    code = {}
    for name, path, sig in re.findall(r'\{SV_CMD_\w+, "([a-z-]+)", (NULL|"/[a-z-]+"), SIG(\w+)',
                                      open(os.path.join(ROOT, "src", "control", "commands.c")).read()):
        code[sig] = (name, path.strip('"') if path != "NULL" else "")
    doc = open(os.path.join(ROOT, "docs", "signals.md")).read()
    table = doc.split("\n## To the master, or the single process\n", 1)[1].strip().split("\n\n", 1)[0]
    documented = {}
    for line in table.splitlines():
        c = [x.strip() for x in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(c) == 5 and re.fullmatch(r"`[A-Z0-9]+`", c[0]) and c[3]:
            path = re.match(r"`(/[a-z-]+)`", c[4])
            documented[c[0].strip("`")] = (c[3].strip("`"), path.group(1) if path else "")
    assert len(code) >= 10
    # PWR has no control path of its own; the table points at /thread-backtraces, the master's part
    assert documented.pop("PWR") == ("info", "/thread-backtraces") and code.pop("PWR") == ("info", "")
    assert documented == code


def test_every_ruby_example_in_the_docs_is_a_config_serval_reads(tmp_path):
    """Each ```ruby block of README.md and docs/ loads with --print-config: no error, no warning."""
    import subprocess
    from conftest import BUILD
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TLS_CERT_PEM": "x", "TLS_KEY_PEM": "y"}
    bad, n = [], 0
    for path in doc_files():
        text = open(path).read()
        for m in re.finditer(r"^```ruby\n(.*?)^```", text, re.S | re.M):
            n += 1
            conf = tmp_path / "example.rb"
            conf.write_text(m.group(1))
            r = subprocess.run([os.path.join(BUILD, "serval"), "--print-config", "-C", str(conf)],
                               capture_output=True, text=True, timeout=10, env=env, cwd=tmp_path)
            if r.returncode != 0 or r.stderr.strip():
                line = text[:m.start()].count("\n") + 1
                bad.append(f"{os.path.relpath(path, ROOT)}:{line}: {r.stderr.strip()}")
    assert n >= 10
    assert bad == []


def test_every_environment_variable_the_code_reads_is_documented():
    names = set()
    for path in glob.glob(os.path.join(ROOT, "src", "**", "*.c"), recursive=True) + \
            glob.glob(os.path.join(ROOT, "ctl", "*.c")):
        names.update(re.findall(r'getenv\("([A-Z_]+)"\)', open(path).read()))
    docs = "".join(open(p).read() for p in doc_files())
    assert len(names) > 10
    assert sorted(n for n in names - {"PATH", "PWD"} if f"`{n}" not in docs) == []


def test_every_path_in_the_tree_the_docs_name_exists():
    """`src/...`, `examples/...`, `bench/...` and the like, as README.md and docs/ write them."""
    missing, n = [], 0
    for path in [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        text = open(path).read()
        for m in re.finditer(r"(?<![\w/.-])((?:src|include|examples|contrib|tests|scripts|fuzz|ctl|bench)/"
                             r"[A-Za-z0-9_./-]*[A-Za-z0-9_/])", text):
            n += 1
            if not os.path.exists(os.path.join(ROOT, m.group(1))):
                missing.append(f"{os.path.relpath(path, ROOT)}: {m.group(1)}")
    assert n > 100
    assert sorted(set(missing)) == []
