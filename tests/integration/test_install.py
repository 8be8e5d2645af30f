"""The first day: the Makefile on a fresh machine, make install with
pkg-config, and the README's app compiling warning-free and serving.

A fresh machine is simulated: DEPS= swaps scripts/deps.sh for a script that
records when it runs, and CMAKE_FIND_ROOT_PATH hides the system's libraries
from CMake, as if cmocka and libpq were not installed.
"""

import os
import re
import shutil
import stat
import subprocess

import pytest

from helpers import get

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SERVAL_BUILD", os.path.join(ROOT, "build"))
CFLAGS = ["-std=c17", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-O2"]


def make(*args, timeout=600, env=None):
    return subprocess.run(["make", "--no-print-directory", "-C", ROOT, *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def readme_app():
    text = open(os.path.join(ROOT, "README.md")).read()
    tour = text[text.index("## A tour"):]
    m = re.search(r"```c\n(.*?)```", tour, re.S)
    assert m, "no C snippet in the README's tour"
    return m.group(1)


def test_readme_app_compiles_warning_free_and_serves(servers, port, tmp_path):
    src = tmp_path / "hello.c"
    src.write_text(readme_app())
    so = tmp_path / "hello.so"
    r = subprocess.run(["cc", *CFLAGS, "-I", os.path.join(ROOT, "include"), "-o", str(so), str(src)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    servers("-b", f"tcp://127.0.0.1:{port}", str(so))
    assert get(port, "/").body == b"Hello World"
    assert get(port, "/?name=Ada+L%C3%B6").body == "Hello Ada Lö".encode()
    assert get(port, "/?name=%zz").body == b"Hello World"            # malformed: the default stays
    assert get(port, "/?name=" + "x" * 100).body == b"Hello World"    # too long: the default stays


def test_make_install_and_a_pkg_config_build(servers, port, tmp_path):
    prefix = tmp_path / "prefix"
    r = make("install", f"BUILD={BUILD}", f"PREFIX={prefix}", "DEPS=true")
    assert r.returncode == 0, r.stdout + r.stderr
    for f in ("bin/serval", "bin/servalctl", "include/serval.h", "lib/pkgconfig/serval.pc"):
        assert (prefix / f).exists(), f
    assert os.access(prefix / "bin" / "serval", os.X_OK)

    # installed elsewhere than configured: the .pc file is relocatable
    moved = tmp_path / "moved"
    shutil.copytree(prefix, moved, symlinks=True)
    env = {**os.environ, "PKG_CONFIG_PATH": str(moved / "lib" / "pkgconfig")}
    cflags = subprocess.run(["pkg-config", "--cflags", "serval"], capture_output=True, text=True, env=env)
    assert cflags.returncode == 0, cflags.stderr
    assert cflags.stdout.strip().startswith("-I"), cflags.stdout
    inc = cflags.stdout.strip()[2:]
    assert os.path.samefile(inc, moved / "include"), inc
    version = subprocess.run(["pkg-config", "--modversion", "serval"], capture_output=True, text=True, env=env)
    served = subprocess.run([str(moved / "bin" / "serval"), "--version"], capture_output=True, text=True)
    assert version.stdout.strip() and version.stdout.strip() in served.stdout, (version.stdout, served.stdout)

    src = tmp_path / "app.c"
    src.write_text(readme_app())
    so = tmp_path / "app.so"
    r = subprocess.run(f"cc $(pkg-config --cflags serval) {' '.join(CFLAGS)} -o {so} {src}", shell=True,
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    servers("-b", f"tcp://127.0.0.1:{port}", str(so), binary=str(moved / "bin" / "serval"))
    assert get(port, "/?name=pkg-config").body == b"Hello pkg-config"
    r = subprocess.run([str(moved / "bin" / "servalctl"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "phased-restart" in r.stdout


@pytest.fixture
def fake_deps(tmp_path):
    """A deps script that records each call and whether the build dir was configured then."""
    log = tmp_path / "deps.log"
    script = tmp_path / "deps.sh"
    script.write_text(f"#!/bin/sh\necho \"$* configured=$(test -f \"$SV_BUILD_DIR/CMakeCache.txt\" && echo yes || echo no)\""
                      f" >> {log}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, log


def test_first_configure_installs_the_build_packages_and_a_failure_leaves_nothing(tmp_path, fake_deps):
    script, log = fake_deps
    build = tmp_path / "b"
    env = {"SV_BUILD_DIR": str(build)}
    # a configure that fails (llhttp missing, as on a fresh machine before deps.sh)
    r = make(f"BUILD={build}", f"DEPS={script}", "CMAKE_ARGS=-DLLHTTP_DIR=/nonexistent", f"{build}/Makefile",
             env=env, timeout=120)
    assert r.returncode != 0 and "node-llhttp" in r.stderr, r.stdout + r.stderr
    assert log.read_text() == "build configured=no\n"   # the build packages come first
    assert not (build / "CMakeCache.txt").exists() and not (build / "Makefile").exists()

    # the next command configures afresh and succeeds: no half-made build dir in its way
    r = make(f"BUILD={build}", f"DEPS={script}", f"{build}/Makefile", env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (build / "Makefile").exists()
    assert log.read_text() == "build configured=no\nbuild configured=no\n"
    # configured: deps.sh is not run again
    r = make(f"BUILD={build}", f"DEPS={script}", f"{build}/Makefile", env=env, timeout=120)
    assert r.returncode == 0 and log.read_text().count("\n") == 2


def test_make_test_installs_the_test_packages_first():
    r = make("-n", "test", "DEPS=scripts/deps.sh")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].strip() == "scripts/deps.sh test", r.stdout[:300]
    r = make("-n", "run", "BUILD=/nonexistent-build-dir")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].strip() == "scripts/deps.sh build", lines[:3]
    assert "tcp://127.0.0.1:9292" in lines[-1], lines[-1]


def test_deps_sets_split_build_test_bench():
    def pkgs(which):
        r = subprocess.run([os.path.join(ROOT, "scripts", "deps.sh"), "--list", which], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stderr
        return set(r.stdout.split())

    build, test, bench = pkgs("build"), pkgs("test"), pkgs("bench")
    assert {"cmake", "gcc", "node-llhttp"} <= build
    assert not ({"libcmocka-dev", "python3-pytest", "postgresql", "libpq-dev", "wrk", "nginx-light"} & build)
    assert build <= test and {"libcmocka-dev", "libpq-dev", "postgresql"} <= test
    assert build <= bench and "wrk" in bench and "libcmocka-dev" not in bench


def required_library_args():
    """-D arguments naming where the build's required libraries are, so a search
    re-rooted elsewhere still finds them."""
    import glob
    def lib(name):
        found = sorted(glob.glob(f"/usr/lib/*/{name}") + glob.glob(f"/usr/lib/{name}"))
        assert found, f"{name} not found"
        return found[0]
    return ["-DOPENSSL_INCLUDE_DIR=/usr/include", f"-DOPENSSL_SSL_LIBRARY={lib('libssl.so')}",
            f"-DOPENSSL_CRYPTO_LIBRARY={lib('libcrypto.so')}"]


def test_without_cmocka_and_libpq_the_build_configures_without_tests_or_notes(tmp_path, fake_deps):
    script, _ = fake_deps
    build = tmp_path / "b"
    hide = f"CMAKE_ARGS=-DCMAKE_FIND_ROOT_PATH={tmp_path}/empty -DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY " \
           f"-DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY " + " ".join(required_library_args())
    # Every library search is re-rooted into an empty directory, which hides cmocka
    # and libpq; the libraries a build needs (OpenSSL) are named by their paths.
    r = subprocess.run(["cmake", "-S", ROOT, "-B", str(build), f"-DCMAKE_FIND_ROOT_PATH={tmp_path}/empty",
                        "-DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY", "-DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY",
                        *required_library_args()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not building examples/notes" in r.stdout
    targets = subprocess.run(["cmake", "--build", str(build), "--target", "help"], capture_output=True,
                             text=True).stdout
    assert "serval" in targets and "servalctl" in targets
    assert "test_urlencoded" not in targets and "notes" not in targets

    # make test / make unit ask for the tests: a clear failure, and nothing left behind
    # (in the directory just configured: its cache goes with the failure)
    r = make(f"BUILD={build}", f"DEPS={script}", hide, "test-config", timeout=120)
    assert r.returncode != 0 and "libcmocka-dev" in r.stderr, r.stdout + r.stderr
    assert not (build / "CMakeCache.txt").exists()
