# Thin wrapper over CMake. `make` builds into build/, `make run` serves, `make test` tests.
# On a fresh Debian machine the first configure installs the build packages
# (scripts/deps.sh build); `make test` also installs the test packages.
BUILD    ?= build
JOBS     ?= $(shell nproc)
PYTEST   := /usr/bin/python3 -m pytest
# Integration tests run in PYTEST_JOBS pytest-xdist processes when xdist is installed
# (scripts/deps.sh test): most of the suite waits on timers and restarts, so two halve
# its time on two cores. PYTEST_JOBS=1 runs it in one process, in file order.
PYTEST_JOBS ?= 2
XDIST    = $(shell [ "$(PYTEST_JOBS)" != 1 ] && /usr/bin/python3 -c 'import xdist' 2>/dev/null && echo "-n $(PYTEST_JOBS)")
WORKERS  ?= 2
APP      ?= $(BUILD)/examples/hello.so
ARGS     ?= -w $(WORKERS) -b tcp://127.0.0.1:9292
PREFIX   ?= /usr/local
# The dependency installer; DEPS=true skips it (a machine set up by hand).
DEPS     ?= scripts/deps.sh
# A configure that fails removes its cache, so the next command configures
# afresh instead of tripping over a half-made build directory.
configure = cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) $(1) >/dev/null \
            || { rm -f $(BUILD)/CMakeCache.txt $(BUILD)/Makefile; exit 1; }

.PHONY: all build run test unit integration integration-run deps test-config install asan tsan check fuzz bench clean

all: build

deps:
	@$(DEPS) test

# Keyed on the generated Makefile, which only a successful configure leaves.
$(BUILD)/Makefile:
	@$(DEPS) build
	$(call configure,)

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

# Unit tests build only when cmocka is found; the test targets ask for them.
test-config: $(BUILD)/Makefile
	$(call configure,-DSERVAL_TESTS=ON)

install: build
	cmake --install $(BUILD) --prefix $(abspath $(PREFIX))

run: build
	$(BUILD)/serval $(ARGS) $(APP)

unit: test-config
	$(MAKE) build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

integration: test-config
	$(MAKE) build
	$(MAKE) integration-run

# The integration suite against what $(BUILD) holds, without configuring and
# building again (make test has just done both for the unit tests).
integration-run:
	SERVAL_BUILD=$(abspath $(BUILD)) $(PYTEST) -q -x $(XDIST) tests/integration $(PYTEST_ARGS)

test: deps
	$(MAKE) unit
	$(MAKE) integration-run

# ASan + UBSan build; runs the unit tests and the integration suite against it,
# in $(PYTEST_JOBS) pytest-xdist processes as integration-run does. LeakSanitizer
# is on: a server that leaks on its way out fails the test that started it
# (tests/lsan.supp lists the third-party leaks serval cannot free, and why).
asan: deps
	$(MAKE) BUILD=build-asan build-san SAN=address,undefined
	ctest --test-dir build-asan --output-on-failure -j $(JOBS)
	ASAN_OPTIONS=handle_segv=0:detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0 \
	  SERVAL_BUILD=$(abspath build-asan) SERVAL_SANITIZED=1 $(PYTEST) -q $(XDIST) tests/integration $(PYTEST_ARGS)

# TSan build, driven through the whole integration suite (in $(PYTEST_JOBS) pytest-xdist
# processes, as integration-run) except fork_worker (test_docs' stats and metrics checks
# too: their cluster runs a mold, to show its fields):
# TSan cannot follow a fork of a threaded process (worker 0 forking the mold:
# "starting new threads after multi-threaded fork is not supported"), and except
# the 300-worker hot restart: 600 TSan processes at once exceed a 2-core, 24 GB
# machine's time bound (make asan runs it).
tsan: deps
	$(MAKE) BUILD=build-tsan build-san SAN=thread
	ctest --test-dir build-tsan --output-on-failure -j $(JOBS)
	TSAN_OPTIONS=halt_on_error=1:exitcode=66 SERVAL_BUILD=$(abspath build-tsan) SERVAL_SANITIZED=1 \
	  $(PYTEST) -q $(XDIST) tests/integration --deselect tests/integration/test_fork_worker.py \
	  --deselect tests/integration/test_servalctl.py::test_refork_wait \
	  --deselect tests/integration/test_notes.py::test_notes_restarts_fail_no_request_and_never_share_a_connection \
	  --deselect tests/integration/test_notes.py::test_notes_refork_closes_worker0_connections_before_the_mold \
	  --deselect 'tests/integration/test_fds.py::test_every_process_holds_only_its_keep_list[True]' \
	  --deselect 'tests/integration/test_overlap.py::test_ttin_ttou_during_an_operation[fork-worker-phased-ttou]' \
	  --deselect 'tests/integration/test_overlap.py::test_ttin_ttou_during_an_operation[refork-ttou]' \
	  --deselect 'tests/integration/test_overlap.py::test_ttin_ttou_during_an_operation[refork-storm]' \
	  --deselect tests/integration/test_overlap.py::test_failed_fork_worker_phased_restart_then_killed_worker \
	  --deselect 'tests/integration/test_tls.py::test_restarts_under_tls_load_fail_no_request[refork]' \
	  --deselect tests/integration/test_handover.py \
	  --deselect tests/integration/test_docs.py::test_every_cluster_stats_field_is_documented_and_every_documented_one_exists \
	  --deselect tests/integration/test_docs.py::test_the_cluster_example_has_the_real_keys \
	  --deselect tests/integration/test_docs.py::test_every_cluster_metric_is_documented_with_its_type_and_labels \
	  --deselect tests/integration/test_docs.py::test_every_metric_name_the_docs_mention_exists \
	  $(PYTEST_ARGS)

# libFuzzer (clang) over every harness in fuzz/, FUZZ_SECONDS each, into a scratch
# copy of its corpus (fuzz/README.md). A crash stops the run and leaves the input
# in $(FUZZ_BUILD)/artifacts/.
FUZZ_SECONDS ?= 60
FUZZ_BUILD   ?= build-fuzz
FUZZ_TARGETS ?= http_parser config control proxy
fuzz:
	@$(DEPS) fuzz
	CC=clang-14 cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSERVAL_FUZZ=ON >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(addsuffix _fuzz,$(FUZZ_TARGETS))
	@mkdir -p $(FUZZ_BUILD)/artifacts
	@set -e; for t in $(FUZZ_TARGETS); do \
	  dir=$$(echo $$t | sed 's/_parser//'); \
	  rm -rf $(FUZZ_BUILD)/corpus-$$t && mkdir -p $(FUZZ_BUILD)/corpus-$$t; \
	  cp fuzz/corpus/$$dir/* $(FUZZ_BUILD)/corpus-$$t/; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	  if ! $(FUZZ_BUILD)/fuzz/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=5 \
	       -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- $(FUZZ_BUILD)/corpus-$$t \
	       >$(FUZZ_BUILD)/fuzz-$$t.log 2>&1; then \
	    tail -40 $(FUZZ_BUILD)/fuzz-$$t.log; echo "fuzz: $$t FAILED (input in $(FUZZ_BUILD)/artifacts/)"; exit 1; \
	  fi; \
	  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' $(FUZZ_BUILD)/fuzz-$$t.log; \
	done

build-san:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Debug -DSERVAL_SANITIZE=$(SAN) -DSERVAL_TESTS=ON >/dev/null \
	  || { rm -f $(BUILD)/CMakeCache.txt $(BUILD)/Makefile; exit 1; }
	cmake --build $(BUILD) -j $(JOBS)

# clang does not know gcc's LTO flags (-fno-fat-lto-objects) in compile_commands.json.
check: build
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --suppress=missingIncludeSystem --inline-suppr -I include -I src src ctl examples
	clang-tidy --quiet -p $(BUILD) --extra-arg=-Wno-ignored-optimization-argument $(shell find src ctl examples -name '*.c') 2>/dev/null

bench: build
	@$(DEPS) --bench
	bench/throughput

clean:
	rm -rf build build-asan build-tsan build-fuzz
