# Thin wrapper over CMake. `make` builds into build/, `make run` serves, `make test` tests.
BUILD    ?= build
JOBS     ?= $(shell nproc)
PYTEST   := /usr/bin/python3 -m pytest
WORKERS  ?= 2
APP      ?= $(BUILD)/examples/hello.so
ARGS     ?= -w $(WORKERS) -b tcp://0.0.0.0:9292

.PHONY: all build run test unit integration deps asan tsan check fuzz bench clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/serval $(ARGS) $(APP)

unit: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

integration: build
	SERVAL_BUILD=$(abspath $(BUILD)) $(PYTEST) -q -x tests/integration $(PYTEST_ARGS)

test: deps
	$(MAKE) build
	$(MAKE) unit
	$(MAKE) integration

# ASan + UBSan build; runs the unit tests and the integration suite against it.
asan: deps
	$(MAKE) BUILD=build-asan build-san SAN=address,undefined
	ctest --test-dir build-asan --output-on-failure -j $(JOBS)
	ASAN_OPTIONS=handle_segv=0:detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  SERVAL_BUILD=$(abspath build-asan) SERVAL_SANITIZED=1 $(PYTEST) -q tests/integration $(PYTEST_ARGS)

# TSan build, driven through the whole integration suite except fork_worker:
# TSan cannot follow a fork of a threaded process (worker 0 forking the mold).
tsan: deps
	$(MAKE) BUILD=build-tsan build-san SAN=thread
	ctest --test-dir build-tsan --output-on-failure -j $(JOBS)
	TSAN_OPTIONS=halt_on_error=1:exitcode=66 SERVAL_BUILD=$(abspath build-tsan) SERVAL_SANITIZED=1 \
	  $(PYTEST) -q tests/integration --deselect tests/integration/test_fork_worker.py \
	  --deselect tests/integration/test_servalctl.py::test_refork_wait $(PYTEST_ARGS)

build-san:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Debug -DSERVAL_SANITIZE=$(SAN) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

check: build
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --suppress=missingIncludeSystem --inline-suppr -I include -I src src ctl examples
	clang-tidy --quiet -p $(BUILD) $(shell find src ctl examples -name '*.c') 2>/dev/null

bench: build
	@scripts/deps.sh --bench
	bench/throughput

clean:
	rm -rf build build-asan build-tsan
