# c_embed_runtime: `make demo` sets up (.venv/, models/), builds and embeds real
# sentences on the CPU; `make test` runs every suite (docs/testing.md).
# Longer targets run tools/*.sh, each runnable on its own (see its top).

PYTHON     ?= python3
VENV       := .venv
VPY        := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
REAL_MODEL := models/all-MiniLM-L6-v2/model.onnx
PARAPHRASE_MODEL := models/paraphrase-MiniLM-L3-v2/model.onnx
TEST_MODELS_STAMP := models/test/.generated
# The ONNX Runtime builds of the version matrix (tools/ort_versions.py).
ORT_CACHE  := $(or $(C_EMBED_RUNTIME_ORT_CACHE),.cache/ort)
ORT_CACHE_STAMP := $(ORT_CACHE)/.fetched
LIB        := target/release/libc_embed_runtime.so
BUILD      := build
export VPY

CC       ?= gcc
CXX      ?= g++
CWARN    := -Wall -Wextra -Wpedantic -Werror
CFLAGS_T := -std=c11 $(CWARN) -Iinclude -O1 -g
CXXFLAGS_T := -std=c++17 $(CWARN) -Iinclude
LINK_LIB := -L$(dir $(LIB)) -lc_embed_runtime -Wl,-rpath,$(abspath $(dir $(LIB))) -lpthread
SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# Runs $(1) with leak checks, once its sanitizers are seen linked (else it proves nothing).
ASAN_RUN = ldd $(1) | grep -q libasan && ldd $(1) | grep -q libubsan && ASAN_OPTIONS=detect_leaks=1 $(1)

.PHONY: all setup build demo test lint test-rust test-c test-header test-symbols test-python \
	test-reliability check-valgrind install uninstall install-built test-install examples \
	test-examples test-readme host-source python-package wheel test-wheel bench \
	fuzz-build fuzz clean

all: build

## ---- set-up, build, demo ------------------------------------------------------

setup: $(VENV_STAMP) $(REAL_MODEL) $(PARAPHRASE_MODEL) $(TEST_MODELS_STAMP) $(ORT_CACHE_STAMP)

$(VENV_STAMP): tools/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	touch $@
$(REAL_MODEL) $(PARAPHRASE_MODEL) &: $(VENV_STAMP) tools/fetch_models.py
	$(VPY) tools/fetch_models.py models
# Once: each build's wheel by package name (--no-deps), keeping only its shared libraries.
$(ORT_CACHE_STAMP): $(VENV_STAMP) tools/ort_versions.py
	C_EMBED_RUNTIME_ORT_CACHE=$(ORT_CACHE) $(VPY) tools/ort_versions.py fetch
	touch $@
$(TEST_MODELS_STAMP): $(VENV_STAMP) tools/gen_test_models.py
	$(VPY) tools/gen_test_models.py models/test > /dev/null
	touch $@

# The library, with the wheel's ONNX Runtime and the soname link beside it.
build: $(VENV_STAMP)
	cargo build --release
	tools/stage_library.sh $(dir $(LIB))
# Named as a target so that the pattern rules needing it apply before it exists.
$(LIB): | build

# The drop-in source for hosts that build the legacy library from source, opening
# this checkout's build (docs/hosts.md, "Hosts that build the old library from source").
HOST_SOURCE := $(BUILD)/host/c_embed_runtime.cpp
host-source: build
	cd python && ../$(VPY) -m c_embed_runtime host-source --library $(abspath $(LIB)) --output ../$(HOST_SOURCE)
	@echo "wrote $(HOST_SOURCE)"

demo: $(VENV_STAMP) $(REAL_MODEL) build
	cd python && ../$(VPY) -m c_embed_runtime.demo --model ../$(REAL_MODEL) --tokenizer ../$(dir $(REAL_MODEL))tokenizer.json

clean:
	cargo clean
	rm -rf $(BUILD)

## ---- tests --------------------------------------------------------------------

test: setup build lint test-rust test-c test-header test-symbols test-python test-reliability test-install \
	test-examples test-readme test-wheel
	@echo "make test: all suites passed"

lint:
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings

test-rust: setup
	cargo test --release

# C test programs: c_tests/NAME.c (or .cpp) -> $(BUILD)/c/NAME; NAME_asan under ASan+UBSan.
C_TESTS := test_abi test_abi_asan legacy_prototypes header_twice header_cpp
RELIABILITY_TESTS := misuse misuse_asan stress stress_asan lifecycle
C_TEST_DEPS := c_tests/test_support.h c_tests/contract_errors.h include/c_embed_runtime.h $(LIB) | $(BUILD)/c

$(BUILD)/c/%_asan: c_tests/%.c $(C_TEST_DEPS)
	$(CC) $(CFLAGS_T) $(SANITIZE) $< $(LINK_LIB) -o $@
$(BUILD)/c/%: c_tests/%.c $(C_TEST_DEPS)
	$(CC) $(CFLAGS_T) $< $(LINK_LIB) -o $@
$(BUILD)/c/%: c_tests/%.cpp $(C_TEST_DEPS)
	$(CXX) $(CXXFLAGS_T) $< $(LINK_LIB) -o $@
$(BUILD)/c/lifecycle: LINK_LIB += -ldl
$(BUILD)/c $(BUILD)/examples:
	mkdir -p $@

test-c: setup build $(addprefix $(BUILD)/c/,$(C_TESTS))
	$(BUILD)/c/test_abi models/test
	$(call ASAN_RUN,$(BUILD)/c/test_abi_asan) models/test
	$(BUILD)/c/legacy_prototypes models/test/tiny_bert.onnx
	$(BUILD)/c/header_twice
	$(BUILD)/c/header_cpp

# The committed files build.rs generates (header, _version.py, contract_errors.h,
# the drop-in source's template) are fresh.
test-header: build
	git diff --exit-code -- include/ python/c_embed_runtime/_version.py c_tests/contract_errors.h \
		python/c_embed_runtime/c_embed_runtime.cpp.in

test-symbols: build
	@tools/test_symbols.sh $(LIB)

# test_versions.py runs the misuse suite against each ONNX Runtime of the matrix.
test-python: setup build $(BUILD)/c/misuse
	$(VPY) -m pytest -q python/tests --ignore=python/tests/test_wheel.py

# Hostile callers, load, long-running hosts (c_tests/misuse.c, stress.c, lifecycle.c);
# stress bounds RSS, not under ASan (its quarantine moves RSS: -g 0); nor lifecycle (dlopen).
test-reliability: setup build $(addprefix $(BUILD)/c/,$(RELIABILITY_TESTS))
	$(BUILD)/c/misuse models/test $(REAL_MODEL)
	$(BUILD)/c/stress models/test
	$(call ASAN_RUN,$(BUILD)/c/stress_asan) -g 0 models/test
	$(call ASAN_RUN,$(BUILD)/c/misuse_asan) models/test $(REAL_MODEL)
	$(BUILD)/c/lifecycle models/test $(LIB)

# test_abi and stress under memcheck (tools/check_valgrind.sh); quicker:
# make check-valgrind VALGRIND_STRESS_ARGS="-r 2 -c 10 -g 0".
VALGRIND_STRESS_ARGS ?= -g 0
check-valgrind: setup build $(BUILD)/c/test_abi $(BUILD)/c/stress
	tools/check_valgrind.sh $(VALGRIND_STRESS_ARGS)

test-install: setup build
	CC="$(CC)" CXX="$(CXX)" PYTHON="$(PYTHON)" tools/test_install.sh

# examples/NAME.c, built as the repository's tests build C (warnings are errors).
EXAMPLES := embed_ids embed_text
$(BUILD)/examples/%: examples/%.c examples/example_options.h include/c_embed_runtime.h $(LIB) | $(BUILD)/examples
	$(CC) -std=c11 $(CWARN) -O2 -Iinclude $< $(LINK_LIB) -o $@
examples: build $(addprefix $(BUILD)/examples/,$(EXAMPLES))

test-examples: setup examples
	tools/test_examples.sh

# The docs (README.md, docs/*.md): their programs compiled, their commands run in
# the order a reader meets them, their links resolved (tools/run_readme_snippets.py),
# and docs/performance.md's figures those of bench/results/latest.json (bench/perf_doc.py).
test-readme: setup build
	$(VPY) tools/run_readme_snippets.py
	$(VPY) bench/perf_doc.py --check

## ---- install, Python package --------------------------------------------------

# make [un]install [PREFIX=] [DESTDIR=] [LIBDIR=] [INCLUDEDIR=] [PKGCONFIGDIR=] [DATADIR=]: what
# `make build` built (tools/install.sh lists the files). It builds only when nothing
# was, so `sudo make install` after `make build` runs neither cargo nor pip as root.
PREFIX       ?= /usr/local
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL      ?= install
DATADIR      ?= $(PREFIX)/share
INSTALL_VARS  = PREFIX="$(PREFIX)" LIBDIR="$(LIBDIR)" INCLUDEDIR="$(INCLUDEDIR)" \
	PKGCONFIGDIR="$(PKGCONFIGDIR)" DATADIR="$(DATADIR)" DESTDIR="$(DESTDIR)" INSTALL="$(INSTALL)"

install-built:
	@[ -f $(LIB) ] && ls $(dir $(LIB))libonnxruntime.so.* > /dev/null 2>&1 || $(MAKE) --no-print-directory build
	@[ -z "$$(find src build.rs Cargo.toml -newer $(LIB) 2> /dev/null | head -n 1)" ] || \
		echo "warning: $(LIB) is older than the sources; run 'make build' to install them"

install: install-built
	@$(INSTALL_VARS) tools/install.sh install

uninstall:
	@$(INSTALL_VARS) tools/install.sh uninstall

# Installs the wheel (`make wheel`: the package, the library and its ONNX Runtime) into .venv.
python-package: setup wheel
	$(VPY) -m pip install --quiet --no-deps --force-reinstall $(BUILD)/wheel/c_embed_runtime-*-py3-none-*.whl

# The platform wheel with the library inside (tools/build_wheel.py): build/wheel/*.whl.
wheel: build
	$(VPY) tools/build_wheel.py --out $(BUILD)/wheel

# The wheel installed into a fresh venv and used from elsewhere (needs the package registry or pip's cache).
test-wheel: setup build
	$(VPY) -m pytest -q python/tests/test_wheel.py

## ---- benchmarks and fuzzing ---------------------------------------------------

# `make bench` (bench/README.md, tools/bench.sh); iteration counts (defaults in the
# programs) from the command line or environment: make bench BENCH_CALLS=48 etc.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): bench/requirements.txt $(VENV_STAMP)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@
bench: setup build $(BENCH_STAMP)
	CC="$(CC)" tools/bench.sh

# A libFuzzer harness over the instrumented library (fuzz/README.md, tools/fuzz.sh):
#   make fuzz                     60 s from fuzz/seeds + build/fuzz/corpus; fails on a finding
#   make fuzz FUZZ_SECONDS=3600   longer; FUZZ_ARGS=-fork=2 for two processes
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_ARGS    ?=
fuzz-build: $(VENV_STAMP)
	FUZZ_CC="$(FUZZ_CC)" tools/fuzz.sh build
fuzz: fuzz-build $(TEST_MODELS_STAMP)
	@tools/fuzz.sh run $(FUZZ_SECONDS) $(FUZZ_ARGS)
