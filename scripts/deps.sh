#!/usr/bin/env bash
# Install the Debian packages serval needs, by purpose.
# Idempotent: installs only what is missing, and runs `apt-get update` only then.
#   scripts/deps.sh build    what `make` / `make run` need (compiler, cmake, llhttp)
#   scripts/deps.sh test     build + what `make test` needs (cmocka, pytest, libpq, PostgreSQL)
#   scripts/deps.sh bench    build + the peers and load tools used by bench/
#   scripts/deps.sh          same as `test` (what this script did before the split)
#   scripts/deps.sh --bench  test + bench (kept for old callers)
#   scripts/deps.sh fuzz     test + clang and its libFuzzer runtime (make fuzz); also --fuzz
#   scripts/deps.sh --list SET   print the packages of SET, install nothing
set -euo pipefail

build_pkgs=(cmake make gcc libc6-dev pkg-config node-llhttp libssl-dev libunwind-dev)
test_pkgs=(libcmocka-dev python3 python3-pytest python3-pytest-xdist curl procps iproute2 util-linux libpq-dev postgresql slowhttptest haproxy openssl systemd)
bench_pkgs=(curl python3 openssl testssl.sh nginx-light h2o puma ruby-rack wrk siege gnuplot-nox slowhttptest haproxy linux-perf valgrind)
fuzz_pkgs=(clang-14 libclang-rt-14-dev)

list_only=0
if [[ "${1:-}" == "--list" ]]; then list_only=1; shift; fi

want=("${build_pkgs[@]}")
case "${1:-test}" in
  build) ;;
  test) want+=("${test_pkgs[@]}") ;;
  bench) want+=("${bench_pkgs[@]}") ;;
  --bench) want+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  fuzz | --fuzz) want+=("${test_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
  *) echo "usage: scripts/deps.sh [--list] [build|test|bench|fuzz]" >&2; exit 2 ;;
esac

if [[ $list_only -eq 1 ]]; then printf '%s\n' "${want[@]}"; exit 0; fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
