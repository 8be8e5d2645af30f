#!/usr/bin/env bash
# Install the Debian packages serval needs to build, test and benchmark.
# Idempotent: runs `apt-get update` at most once, and installs only what is missing.
#   scripts/deps.sh          build + test packages
#   scripts/deps.sh --bench  also the peers and load tools used by bench/
#   scripts/deps.sh --fuzz   also clang and its libFuzzer runtime (make fuzz)
set -euo pipefail

build_pkgs=(cmake make gcc pkg-config node-llhttp libunwind-dev libcmocka-dev python3 python3-pytest curl procps iproute2)
bench_pkgs=(nginx-light h2o puma ruby-rack wrk siege gnuplot-nox slowhttptest)
test_pkgs=(slowhttptest)
fuzz_pkgs=(clang-14 libclang-rt-14-dev)

want=("${build_pkgs[@]}" "${test_pkgs[@]}")
if [[ "${1:-}" == "--bench" ]]; then want+=("${bench_pkgs[@]}"); fi
if [[ "${1:-}" == "--fuzz" ]]; then want+=("${fuzz_pkgs[@]}"); fi

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
