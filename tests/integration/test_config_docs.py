"""docs/configuration.md tells the truth about the directive and flag tables.

`serval --help` is generated from the directive table and the flag table
(src/config/directives.c, src/config/cli.c), its defaults read from
sv_config_defaults. These tests hold docs/configuration.md to it: every
directive and flag the binary accepts is documented, every documented one
exists, and each directive's documented default is the one --help prints.
They also hold both to the outside contract's names, and the page's table of
every Puma directive to Puma's DSL.
"""

import os
import re
import subprocess

import pytest

from conftest import BUILD, ROOT

SERVAL = os.path.join(BUILD, "serval")
DOC = os.path.join(ROOT, "docs", "configuration.md")

# The directives and flags /work/shared/CONTRACT.md names (the first round and the second).
CONTRACT_DIRECTIVES = [
    "workers", "threads", "bind", "port", "fork_worker", "preload_app!", "directory", "activate_control_app",
    "state_path", "pidfile", "environment", "tag", "quiet", "log_requests", "stdout_redirect",
    "persistent_timeout", "first_data_timeout", "force_shutdown_after", "worker_timeout", "worker_boot_timeout",
    "worker_shutdown_timeout", "worker_check_interval", "wait_for_less_busy_worker", "app", "ssl_bind",
    "app_timeout", "shutdown_delay", "set_remote_address", "bind_to_activated_sockets",
]
CONTRACT_FLAGS = [
    "-C", "--config", "-w", "--workers", "-t", "--threads", "-b", "--bind", "-p", "--port", "--fork-worker",
    "--preload", "--dir", "--control-url", "--control-token", "-S", "--state", "--pidfile", "-e",
    "--environment", "--tag", "-q", "--log-requests", "--redirect-stdout", "--redirect-stderr",
    "--redirect-append", "-V", "--version", "-h", "--help", "--check", "--strict",
]

# The public methods of Puma's DSL (lib/puma/dsl.rb, Puma 7), with their aliases.
PUMA_DSL = [
    "activate_control_app", "after_booted", "after_refork", "after_stopped", "after_worker_boot",
    "after_worker_fork", "after_worker_shutdown", "allow_underscore_headers", "app", "before_fork",
    "before_refork", "before_restart", "before_thread_exit", "before_thread_start", "before_worker_boot",
    "before_worker_fork", "before_worker_shutdown", "bind", "bind_to_activated_sockets", "clean_thread_locals",
    "clear_binds!", "cluster", "custom_logger", "debug", "directory", "drain_on_shutdown", "early_hints",
    "enable_keep_alives", "environment", "extra_runtime_dependencies", "fiber_per_request", "first_data_timeout",
    "force_shutdown_after", "fork_worker", "http_content_length_limit", "idle_timeout", "io_selector_backend",
    "load", "log_formatter", "log_requests", "lowlevel_error_handler", "max_fast_inline", "max_io_threads",
    "max_keep_alive", "mutate_stdout_and_stderr_to_sync_on_write", "on_booted", "on_refork", "on_restart",
    "on_stopped", "on_thread_exit", "on_thread_start", "on_worker_boot", "on_worker_fork",
    "on_worker_shutdown", "out_of_band", "persistent_timeout", "pidfile", "plugin", "port", "preload_app!",
    "prune_bundler", "queue_requests", "quiet", "rack_url_scheme", "rackup", "raise_exception_on_sigterm",
    "restart_command", "set_default_host", "set_remote_address", "shutdown_debug",
    "silence_fork_callback_warning", "silence_single_worker_warning", "single", "ssl_bind", "state_path",
    "state_permission", "stdout_redirect", "supported_http_methods", "tag", "threads",
    "wait_for_less_busy_worker", "worker_boot_timeout", "worker_check_interval", "worker_culling_strategy",
    "worker_shutdown_timeout", "worker_timeout", "workers",
]


def clean_env():
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


@pytest.fixture(scope="module")
def help_text():
    r = subprocess.run([SERVAL, "--help"], capture_output=True, text=True, timeout=10, env=clean_env())
    assert r.returncode == 0, r.stderr
    return r.stdout


def help_directives(text):
    """{name: default text} from the directive part of --help."""
    part = text.split("Config file directives", 1)[1].split("\nEnvironment:", 1)[0]
    out = {}
    for line in part.splitlines():
        if line.startswith("  ") and not line.startswith("   ") and " default: " in line:
            head, default = line.split(" default: ", 1)
            out[head.split()[0]] = default.strip()
    assert len(out) > 40, part
    return out


def help_flags(text):
    part = text.split("Options:", 1)[1].split("Config file directives", 1)[0]
    flags = set()
    for line in part.splitlines():
        m = re.match(r"^  (?:(-\w), )?\s*(--[\w-]+)", line)
        if m:
            flags.update(f for f in m.groups() if f)
    assert len(flags) > 20, part
    return flags


def doc_section(title):
    text = open(DOC).read()
    start = text.index("\n## " + title + "\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


def cells(row):
    """The cells of a markdown table row; an escaped \\| stays in its cell."""
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def normalise(s):
    return " ".join(s.replace("`", "").split())


def doc_directives():
    """{name: documented default} from the '## Directives' table."""
    out = {}
    for line in doc_section("Directives").splitlines():
        if line.startswith("| `"):
            c = cells(line)
            name = re.match(r"`([^`\s]+)", c[0]).group(1)
            assert name not in out, f"{name} documented twice"
            out[name] = normalise(c[1])
    return out


def test_every_directive_is_documented_with_its_default(help_text):
    code = help_directives(help_text)
    docs = doc_directives()
    assert sorted(set(code) - set(docs)) == [], "accepted by serval, missing from docs/configuration.md"
    assert sorted(set(docs) - set(code)) == [], "documented, but not a directive of serval --help"
    wrong = {n: (docs[n], code[n]) for n in code if docs[n] != normalise(code[n])}
    assert wrong == {}, "documented default != serval --help default: {name: (docs, code)}"


def test_every_flag_is_documented(help_text):
    code = help_flags(help_text)
    docs = set()
    for line in doc_section("Command line: `serval [options] [APP]`").splitlines():
        if line.startswith("| `-"):
            docs.update(re.findall(r"(?<![\w-])(--?[\w][\w-]*)", cells(line)[0]))
    assert sorted(code - docs) == [], "flags serval takes that docs/configuration.md does not list"
    assert sorted(docs - code) == [], "flags docs/configuration.md lists that serval does not take"


def test_contract_names_exist(help_text):
    assert sorted(set(CONTRACT_DIRECTIVES) - set(help_directives(help_text))) == []
    assert sorted(set(CONTRACT_FLAGS) - help_flags(help_text)) == []


def puma_table_names():
    names = set()
    for line in doc_section("The config file").splitlines():
        if line.startswith("| `") or line.startswith("| every hook"):
            names.update(re.findall(r"`([a-z_]+[!?]?)[^`]*`", cells(line)[0]))
    return names


def test_every_puma_directive_is_in_the_puma_table():
    assert sorted(set(PUMA_DSL) - puma_table_names()) == []


def test_every_name_in_the_puma_table_is_known(tmp_path):
    """Each is a directive, a compatibility directive, a hook or a known Ruby/Puma name: never a typo."""
    for name in sorted(puma_table_names()):
        conf = tmp_path / "puma.rb"
        conf.write_text(f"{name} do\nend\n" if name.startswith(("on_", "before_", "after_", "out_of"))
                        else f"{name}\n")
        r = subprocess.run([SERVAL, "-C", str(conf), "--print-config"], capture_output=True, text=True,
                           timeout=10, env=clean_env(), cwd=tmp_path)
        assert "unknown directive" not in r.stderr, r.stderr


def test_every_environment_variable_is_documented(help_text):
    part = help_text.split("\nEnvironment:", 1)[1].split("Precedence:", 1)[0]
    code = set(re.findall(r"\b[A-Z][A-Z_]{2,}\b", part))
    docs = set()
    for line in doc_section("Environment variables").splitlines():
        if line.startswith("| `"):
            docs.update(re.findall(r"`([A-Z][A-Z_]+)`", cells(line)[0]))
    assert len(code) >= 8, part
    assert sorted(code - docs) == [] and sorted(docs - code) == []
