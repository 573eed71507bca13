# c_embed_runtime: build, set-up, demo and tests.
#
#   make demo    set up (venv, models), build, embed real sentences on the CPU
#   make test    every test suite: Rust, C (also under ASan+UBSan), header,
#                exported symbols, Python; plus fmt and clippy
#
# Everything the targets need is installed by `make setup` into .venv/ and models/.

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
VERSION    := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
SO_MAJOR   := $(firstword $(subst ., ,$(VERSION)))
BUILD      := build
# The ONNX Runtime of the pinned onnxruntime wheel (what tests run against).
ORT_DIR     = $(shell $(VPY) -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')
ORT_LIB     = $(firstword $(wildcard $(ORT_DIR)/libonnxruntime.so.*))

CC       ?= gcc
CXX      ?= g++
CWARN    := -Wall -Wextra -Wpedantic -Werror
CFLAGS_T := -std=c11 $(CWARN) -Iinclude -O1 -g
CXXFLAGS_T := -std=c++17 $(CWARN) -Iinclude
LINK_LIB := -L$(dir $(LIB)) -lc_embed_runtime -Wl,-rpath,$(abspath $(dir $(LIB))) -lpthread
SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: python-package all setup build demo test lint test-rust test-c test-header test-symbols test-python clean test-reliability check-valgrind install uninstall install-built test-install examples test-examples test-readme wheel test-wheel bench fuzz-check-clang fuzz-build fuzz

all: build

## ---- set-up -------------------------------------------------------------------

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

## ---- build --------------------------------------------------------------------

# Builds the library and puts the wheel's ONNX Runtime beside it, where the
# library looks first, so hosts need no environment variable.
build: $(VENV_STAMP)
	cargo build --release
	@# A new file, not a rewrite in place: a running test that mapped the old one would crash.
	cp --remove-destination $(ORT_DIR)/libonnxruntime.so.* $(ORT_DIR)/libonnxruntime_providers_shared.so $(dir $(LIB))
	@# Programs linked with -lc_embed_runtime need the file named by the soname.
	ln -sf libc_embed_runtime.so $(LIB).$(SO_MAJOR)

## ---- demo ---------------------------------------------------------------------

demo: setup build
	cd python && ../$(VPY) -m c_embed_runtime.demo --model ../$(REAL_MODEL) --tokenizer ../$(dir $(REAL_MODEL))tokenizer.json

## ---- tests --------------------------------------------------------------------

test: setup build lint test-rust test-c test-header test-symbols test-python test-reliability test-install test-examples test-readme test-wheel
	@echo "make test: all suites passed"

lint:
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings

test-rust: setup
	cargo test --release

$(BUILD)/c/test_abi: c_tests/test_abi.c c_tests/test_support.h include/c_embed_runtime.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_T) $< $(LINK_LIB) -o $@

$(BUILD)/c/test_abi_asan: c_tests/test_abi.c c_tests/test_support.h include/c_embed_runtime.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_T) $(SANITIZE) $< $(LINK_LIB) -o $@

$(BUILD)/c/legacy_prototypes: c_tests/legacy_prototypes.c $(LIB)
	@mkdir -p $(@D)
	$(CC) -std=c11 $(CWARN) $< $(LINK_LIB) -o $@

$(BUILD)/c/header_twice: c_tests/header_twice.c include/c_embed_runtime.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_T) $< $(LINK_LIB) -o $@

$(BUILD)/c/header_cpp: c_tests/header_cpp.cpp include/c_embed_runtime.h $(LIB)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS_T) $< $(LINK_LIB) -o $@

C_TESTS := $(addprefix $(BUILD)/c/,test_abi test_abi_asan legacy_prototypes header_twice header_cpp)

test-c: setup build $(C_TESTS)
	$(BUILD)/c/test_abi models/test
	@# The sanitizers must really be linked, or the run below proves nothing.
	ldd $(BUILD)/c/test_abi_asan | grep -q libasan
	ldd $(BUILD)/c/test_abi_asan | grep -q libubsan
	ASAN_OPTIONS=detect_leaks=1 $(BUILD)/c/test_abi_asan models/test
	$(BUILD)/c/legacy_prototypes models/test/tiny_bert.onnx
	$(BUILD)/c/header_twice
	$(BUILD)/c/header_cpp

# The committed files build.rs generates (header, _version.py, contract_errors.h) are fresh.
test-header: build
	git diff --exit-code -- include/ python/c_embed_runtime/_version.py c_tests/contract_errors.h

# Exactly the functions the header declares (the one list of them, generated from
# the code; python/tests/test_abi.py checks the Python prototypes against it too);
# nothing outside the prefix.
HEADER_FUNCTIONS := sed -n 's/^[^ *\/].*\b\(c_embed_runtime_[a-z_]*\)(.*/\1/p' include/c_embed_runtime.h
test-symbols: build
	@mkdir -p $(BUILD)
	@nm -D --defined-only $(LIB) | awk '{print $$3}' | sort > $(BUILD)/symbols.txt
	@if grep -v '^c_embed_runtime_' $(BUILD)/symbols.txt; then echo "symbols outside the prefix (above)"; exit 1; fi
	@$(HEADER_FUNCTIONS) | sort > $(BUILD)/header_functions.txt
	@diff $(BUILD)/header_functions.txt $(BUILD)/symbols.txt || { echo "exported symbols (>) differ from the header (<)"; exit 1; }
	@echo "exported symbols ($$(wc -l < $(BUILD)/symbols.txt)): $$(tr '\n' ' ' < $(BUILD)/symbols.txt)"

# test_versions.py runs the misuse suite against each ONNX Runtime of the matrix.
test-python: setup build $(BUILD)/c/misuse
	$(VPY) -m pytest -q python/tests --ignore=python/tests/test_wheel.py

clean:
	cargo clean
	rm -rf $(BUILD)

## ---- reliability --------------------------------------------------------------

# Hostile callers and load (c_tests/misuse.c, c_tests/stress.c, c_tests/lifecycle.c). misuse runs
# every case in its own fork()ed child; stress destroys a handle under four
# embedding threads and bounds RSS over create/destroy cycles (not under ASan,
# whose quarantine moves RSS: -g 0).
$(BUILD)/c/misuse: c_tests/misuse.c c_tests/test_support.h include/c_embed_runtime.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_T) $< $(LINK_LIB) -o $@

$(BUILD)/c/stress: c_tests/stress.c c_tests/test_support.h include/c_embed_runtime.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_T) $< $(LINK_LIB) -o $@

$(BUILD)/c/stress_asan: c_tests/stress.c c_tests/test_support.h include/c_embed_runtime.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_T) $(SANITIZE) $< $(LINK_LIB) -o $@

$(BUILD)/c/misuse_asan: c_tests/misuse.c c_tests/test_support.h include/c_embed_runtime.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_T) $(SANITIZE) $< $(LINK_LIB) -o $@

# What long-running hosts do (c_tests/lifecycle.c): model files replaced,
# fork(), pthread_cancel, hung runs, copies and reloads of the library, 100,000
# short-lived threads, huge runs; each case in its own child. Not under ASan:
# it loads a copy of the library with dlopen.
$(BUILD)/c/lifecycle: c_tests/lifecycle.c c_tests/test_support.h c_tests/contract_errors.h include/c_embed_runtime.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_T) $< $(LINK_LIB) -ldl -o $@

RELIABILITY_TESTS := $(addprefix $(BUILD)/c/,misuse misuse_asan stress stress_asan lifecycle)

test-reliability: setup build $(RELIABILITY_TESTS)
	$(BUILD)/c/misuse models/test $(REAL_MODEL)
	$(BUILD)/c/stress models/test
	@# The sanitizers must really be linked, or the run below proves nothing.
	ldd $(BUILD)/c/stress_asan | grep -q libasan
	ldd $(BUILD)/c/stress_asan | grep -q libubsan
	ASAN_OPTIONS=detect_leaks=1 $(BUILD)/c/stress_asan -g 0 models/test
	ldd $(BUILD)/c/misuse_asan | grep -q libasan
	ASAN_OPTIONS=detect_leaks=1 $(BUILD)/c/misuse_asan models/test $(REAL_MODEL)
	$(BUILD)/c/lifecycle models/test $(LIB)

# test_abi and stress under memcheck: any memory error or definite leak fails.
# c_tests/valgrind.supp silences only two known reports outside this library
# (ONNX Runtime's self-overlapping memcpy at environment set-up, ld.so's strncmp
# over-read of "$ORIGIN"). About 2.5-3.5 minutes on 2 cores (test_abi ~1.5,
# stress ~1); a quicker run: make check-valgrind VALGRIND_STRESS_ARGS="-r 2 -c 10 -g 0".
# --fair-sched=yes: valgrind runs one thread at a time, and its default hand-over
# can let one busy thread keep the CPU while the others starve (seen: stress
# stuck for 10 minutes).
VALGRIND := valgrind --fair-sched=yes --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite --suppressions=c_tests/valgrind.supp
VALGRIND_STRESS_ARGS ?= -g 0

check-valgrind: setup build $(BUILD)/c/test_abi $(BUILD)/c/stress
	@command -v valgrind > /dev/null || { echo "check-valgrind needs valgrind (apt-get install valgrind)"; exit 1; }
	$(VALGRIND) $(BUILD)/c/test_abi models/test
	$(VALGRIND) $(BUILD)/c/stress $(VALGRIND_STRESS_ARGS) models/test

## ---- install ------------------------------------------------------------------

# make install [PREFIX=/usr/local] [DESTDIR=] [LIBDIR=$(PREFIX)/lib]
#              [INCLUDEDIR=$(PREFIX)/include] [PKGCONFIGDIR=$(LIBDIR)/pkgconfig]
# installs what `make build` built:
#   $(LIBDIR)/libc_embed_runtime.so.$(VERSION)    the library (soname libc_embed_runtime.so.$(SO_MAJOR))
#   $(LIBDIR)/libc_embed_runtime.so.$(SO_MAJOR)   link: what programs linked with -lc_embed_runtime load
#   $(LIBDIR)/libc_embed_runtime.so               link: for the linker and hosts that dlopen this name
#   $(INCLUDEDIR)/c_embed_runtime.h
#   $(PKGCONFIGDIR)/c_embed_runtime.pc            from tools/c_embed_runtime.pc.in
#   $(LIBDIR)/c_embed_runtime/                    the build's ONNX Runtime, where the installed
#                                                 library looks when ORT_DYLIB_PATH is unset
# It builds only when nothing was built, so `sudo make install` after `make build`
# runs neither cargo nor pip as root. `make uninstall` takes the same variables.
PREFIX       ?= /usr/local
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL      ?= install
ORT_SUBDIR   := c_embed_runtime
# The .pc names its directories relative to ${prefix} where it can, so that
# `pkg-config --define-prefix` can relocate it.
PC_LIBDIR     = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
I_LIBDIR      = $(DESTDIR)$(LIBDIR)

install-built:
	@if [ ! -f $(LIB) ] || ! ls $(dir $(LIB))libonnxruntime.so.* > /dev/null 2>&1; then \
		$(MAKE) --no-print-directory build; \
	elif [ -n "$$(find src build.rs Cargo.toml -newer $(LIB) 2> /dev/null | head -n 1)" ]; then \
		echo "warning: $(LIB) is older than the sources; run 'make build' to install them"; \
	fi

install: install-built
	$(INSTALL) -d "$(I_LIBDIR)/$(ORT_SUBDIR)" "$(DESTDIR)$(INCLUDEDIR)" "$(DESTDIR)$(PKGCONFIGDIR)"
	$(INSTALL) -m 755 $(LIB) "$(I_LIBDIR)/libc_embed_runtime.so.$(VERSION)"
	ln -sfn libc_embed_runtime.so.$(VERSION) "$(I_LIBDIR)/libc_embed_runtime.so.$(SO_MAJOR)"
	ln -sfn libc_embed_runtime.so.$(SO_MAJOR) "$(I_LIBDIR)/libc_embed_runtime.so"
	$(INSTALL) -m 644 include/c_embed_runtime.h "$(DESTDIR)$(INCLUDEDIR)/c_embed_runtime.h"
	@# One ONNX Runtime in the subdirectory: the one the library was built and tested with.
	rm -f "$(I_LIBDIR)/$(ORT_SUBDIR)"/libonnxruntime.so*
	$(INSTALL) -m 755 $(dir $(LIB))libonnxruntime.so.* $(dir $(LIB))libonnxruntime_providers_shared.so \
		"$(I_LIBDIR)/$(ORT_SUBDIR)/"
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
		-e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
		tools/c_embed_runtime.pc.in > "$(DESTDIR)$(PKGCONFIGDIR)/c_embed_runtime.pc"
	chmod 644 "$(DESTDIR)$(PKGCONFIGDIR)/c_embed_runtime.pc"
	@echo "installed c_embed_runtime $(VERSION) into $(DESTDIR)$(PREFIX)"

uninstall:
	rm -f "$(I_LIBDIR)/libc_embed_runtime.so" "$(I_LIBDIR)/libc_embed_runtime.so.$(SO_MAJOR)" \
		"$(I_LIBDIR)/libc_embed_runtime.so.$(VERSION)" "$(DESTDIR)$(INCLUDEDIR)/c_embed_runtime.h" \
		"$(DESTDIR)$(PKGCONFIGDIR)/c_embed_runtime.pc"
	rm -f "$(I_LIBDIR)/$(ORT_SUBDIR)"/libonnxruntime.so* \
		"$(I_LIBDIR)/$(ORT_SUBDIR)/libonnxruntime_providers_shared.so"
	rmdir "$(I_LIBDIR)/$(ORT_SUBDIR)" 2> /dev/null || true

# test-install: installs into a staging tree (DESTDIR, PREFIX=/opt/c_embed_runtime)
# and into a plain temporary prefix, checks the files, the soname and the exported
# symbols, builds c_tests/install/ (C11 and C++17) with nothing but pkg-config's
# flags and runs them on the installed library alone: no ORT_DYLIB_PATH, no rpath,
# LD_LIBRARY_PATH = the installed libdir. install_c prints the files it mapped,
# which must be the installed library and the ONNX Runtime of its subdirectory.
IT_DIR    := $(abspath $(BUILD)/install-test)
IT_ROOT   := $(IT_DIR)/root
IT_PREFIX := /opt/c_embed_runtime
IT_LIBDIR := $(IT_ROOT)$(IT_PREFIX)/lib
IT_VARS    = PREFIX=$(IT_PREFIX) LIBDIR=$(IT_PREFIX)/lib INCLUDEDIR=$(IT_PREFIX)/include \
	PKGCONFIGDIR=$(IT_PREFIX)/lib/pkgconfig
IT_PKG    := PKG_CONFIG_PATH=$(IT_LIBDIR)/pkgconfig PKG_CONFIG_SYSROOT_DIR=$(IT_ROOT) pkg-config
IT_RUN    := env -u ORT_DYLIB_PATH LD_LIBRARY_PATH=$(IT_LIBDIR)
IT_SO     := $(IT_LIBDIR)/libc_embed_runtime.so.$(VERSION)

test-install: setup build
	@command -v pkg-config > /dev/null || { echo "test-install needs pkg-config (apt-get install pkg-config)"; exit 1; }
	rm -rf $(IT_DIR)
	$(MAKE) --no-print-directory install DESTDIR=$(IT_ROOT) $(IT_VARS)
	@# The layout: a real versioned file, the two links, the header, ONNX Runtime.
	test -f $(IT_SO) && test ! -L $(IT_SO)
	test "$$(readlink $(IT_LIBDIR)/libc_embed_runtime.so.$(SO_MAJOR))" = libc_embed_runtime.so.$(VERSION)
	test "$$(readlink $(IT_LIBDIR)/libc_embed_runtime.so)" = libc_embed_runtime.so.$(SO_MAJOR)
	test -f $(IT_ROOT)$(IT_PREFIX)/include/c_embed_runtime.h
	ls $(IT_LIBDIR)/$(ORT_SUBDIR)/libonnxruntime.so.* $(IT_LIBDIR)/$(ORT_SUBDIR)/libonnxruntime_providers_shared.so
	readelf -d $(IT_SO) | grep -F 'Library soname: [libc_embed_runtime.so.$(SO_MAJOR)]'
	@if readelf -d $(IT_SO) | grep -E 'R(UN)?PATH' | grep -F '$(CURDIR)'; then echo "the installed library has a path into the build tree"; exit 1; fi
	@nm -D --defined-only $(IT_SO) | awk '{print $$3}' > $(IT_DIR)/symbols.txt
	@if grep -v '^c_embed_runtime_' $(IT_DIR)/symbols.txt; then echo "symbols outside the prefix (above)"; exit 1; fi
	@echo "installed library exports $$(wc -l < $(IT_DIR)/symbols.txt) symbols, all c_embed_runtime_*"
	@# pkg-config: the staged .pc, with DESTDIR as the sysroot; relocatable with --define-prefix.
	test "$$($(IT_PKG) --modversion c_embed_runtime)" = "$(VERSION)"
	$(IT_PKG) --cflags --libs c_embed_runtime
	test "$$(PKG_CONFIG_PATH=$(IT_LIBDIR)/pkgconfig pkg-config --define-prefix --variable=libdir c_embed_runtime)" = "$(IT_LIBDIR)"
	$(CC) -std=c11 $(CWARN) c_tests/install/install_c.c $$($(IT_PKG) --cflags --libs c_embed_runtime) -lm -o $(IT_DIR)/install_c
	$(CXX) -std=c++17 $(CWARN) c_tests/install/install_cpp.cpp $$($(IT_PKG) --cflags --libs c_embed_runtime) -o $(IT_DIR)/install_cpp
	$(IT_RUN) $(IT_DIR)/install_c models/test/tiny_bert.onnx $(VERSION) > $(IT_DIR)/install_c.out || { cat $(IT_DIR)/install_c.out; exit 1; }
	@cat $(IT_DIR)/install_c.out
	grep -q '^install_c: ok' $(IT_DIR)/install_c.out
	grep -qx "library: $$(realpath $(IT_SO))" $(IT_DIR)/install_c.out
	grep -q "^onnxruntime: $$(realpath $(IT_LIBDIR)/$(ORT_SUBDIR))/libonnxruntime.so." $(IT_DIR)/install_c.out
	$(IT_RUN) $(IT_DIR)/install_cpp models/test/tiny_bert.onnx
	@# Legacy hosts dlopen the unversioned name.
	$(IT_RUN) $(PYTHON) -c 'import ctypes, sys; f = ctypes.CDLL(sys.argv[1]).c_embed_runtime_version; f.restype = ctypes.c_char_p; v = f().decode(); print("dlopen libc_embed_runtime.so: version", v); sys.exit(v != sys.argv[2])' $(IT_LIBDIR)/libc_embed_runtime.so $(VERSION)
	$(MAKE) --no-print-directory uninstall DESTDIR=$(IT_ROOT) $(IT_VARS)
	@test -z "$$(find $(IT_ROOT) ! -type d)" || { find $(IT_ROOT) ! -type d; echo "uninstall left files behind (above)"; exit 1; }
	@# A plain install into a temporary prefix (no DESTDIR), used as a C user would.
	$(MAKE) --no-print-directory install PREFIX=$(IT_DIR)/prefix LIBDIR=$(IT_DIR)/prefix/lib \
		INCLUDEDIR=$(IT_DIR)/prefix/include PKGCONFIGDIR=$(IT_DIR)/prefix/lib/pkgconfig
	$(CC) -std=c11 $(CWARN) c_tests/install/install_c.c \
		$$(PKG_CONFIG_PATH=$(IT_DIR)/prefix/lib/pkgconfig pkg-config --cflags --libs c_embed_runtime) -lm -o $(IT_DIR)/install_c_prefix
	env -u ORT_DYLIB_PATH LD_LIBRARY_PATH=$(IT_DIR)/prefix/lib $(IT_DIR)/install_c_prefix models/test/tiny_bert.onnx \
		$(VERSION) > $(IT_DIR)/install_c_prefix.out || { cat $(IT_DIR)/install_c_prefix.out; exit 1; }
	grep -q "^onnxruntime: $$(realpath $(IT_DIR)/prefix/lib/$(ORT_SUBDIR))/libonnxruntime.so." $(IT_DIR)/install_c_prefix.out
	@echo "test-install: ok"

# examples/embed_ids.c, built as the repository's tests build C (warnings are errors).
$(BUILD)/examples/embed_ids: examples/embed_ids.c examples/example_options.h include/c_embed_runtime.h $(LIB)
	@mkdir -p $(@D)
	$(CC) -std=c11 $(CWARN) -O2 -Iinclude $< $(LINK_LIB) -o $@

# examples/embed_text.c (text in), built the same way.
$(BUILD)/examples/embed_text: examples/embed_text.c examples/example_options.h include/c_embed_runtime.h $(LIB)
	@mkdir -p $(@D)
	$(CC) -std=c11 $(CWARN) -O2 -Iinclude $< $(LINK_LIB) -o $@

examples: build $(BUILD)/examples/embed_ids $(BUILD)/examples/embed_text

# VECTORS rows dim FILE: exactly `rows` lines of `dim` numbers, each of norm 1.
VECTORS = awk -v rows=$(1) -v dim=$(2) 'NF != dim { print FILENAME ": line " NR ": " NF " values, not " dim; exit 1 } \
	{ s = 0; for (i = 1; i <= NF; i++) s += $$i * $$i; if (s < 0.9999 || s > 1.0001) { print FILENAME ": line " NR ": norm^2 " s; exit 1 } } \
	END { if (NR != rows) { print FILENAME ": " NR " lines, not " rows; exit 1 } }' $(3)
EX     := $(BUILD)/examples

test-examples: setup build $(EX)/embed_ids $(EX)/embed_text
	printf '1 5 9 2\n# a comment, then a blank line\n\n1 7 7 3 2 | 1 1 1 1 0\n' > $(EX)/ids.txt
	$(EX)/embed_ids models/test/tiny_bert.onnx $(EX)/ids.txt > $(EX)/tiny.out
	$(call VECTORS,2,32,$(EX)/tiny.out)
	@# Masked-out trailing tokens change nothing: the same vector as without them.
	echo '1 7 7 3' | $(EX)/embed_ids models/test/tiny_bert.onnx > $(EX)/tiny_short.out
	test "$$(sed -n 2p $(EX)/tiny.out)" = "$$(cat $(EX)/tiny_short.out)"
	$(EX)/embed_ids --out-dim 8 --seq-len 8 models/test/tiny_bert.onnx < $(EX)/ids.txt > $(EX)/tiny8.out
	$(call VECTORS,2,8,$(EX)/tiny8.out)
	@# Errors: a missing model, an id outside the vocabulary, bad input.
	$(EX)/embed_ids missing.onnx < /dev/null 2> $(EX)/err.txt; test $$? -eq 1 && grep -q 'cannot open missing.onnx: std_create_error:' $(EX)/err.txt
	echo '1 100' | $(EX)/embed_ids models/test/tiny_bert.onnx > /dev/null 2> $(EX)/err.txt; test $$? -eq 1 && grep -q 'line 1: ort_error:' $(EX)/err.txt
	echo '1 x' | $(EX)/embed_ids models/test/tiny_bert.onnx > /dev/null 2> $(EX)/err.txt; test $$? -eq 2 && grep -q 'line 1: not an integer: x' $(EX)/err.txt
	@# The real model: "[CLS] hello world [SEP]".
	echo '101 7592 2088 102' | $(EX)/embed_ids $(REAL_MODEL) > $(EX)/real.out
	$(call VECTORS,1,384,$(EX)/real.out)
	@# Text in: every line is a text (a blank one too); its vector is that of its ids.
	printf 'hello world\n\nA man is playing a guitar.\n' > $(EX)/text.txt
	$(EX)/embed_text $(REAL_MODEL) $(dir $(REAL_MODEL))tokenizer.json $(EX)/text.txt > $(EX)/text.out
	$(call VECTORS,3,384,$(EX)/text.out)
	test "$$(sed -n 1p $(EX)/text.out)" = "$$(cat $(EX)/real.out)"
	echo 'hello world' | $(EX)/embed_text --out-dim 8 --seq-len 8 $(REAL_MODEL) $(dir $(REAL_MODEL))tokenizer.json > $(EX)/text8.out
	$(call VECTORS,1,8,$(EX)/text8.out)
	@# Errors: a bad tokenizer, a line that is not UTF-8, no tokenizer given.
	$(EX)/embed_text $(REAL_MODEL) missing.json < /dev/null 2> $(EX)/err.txt; test $$? -eq 1 && grep -q 'cannot open .* with missing.json: std_create_error:cannot load tokenizer missing.json' $(EX)/err.txt
	printf 'ok\n\377\n' | $(EX)/embed_text $(REAL_MODEL) $(dir $(REAL_MODEL))tokenizer.json > /dev/null 2> $(EX)/err.txt; test $$? -eq 1 && grep -q 'line 2: std_error:text is not valid UTF-8' $(EX)/err.txt
	$(EX)/embed_text $(REAL_MODEL) < /dev/null 2> $(EX)/err.txt; test $$? -eq 2 && grep -q 'give the model and its tokenizer.json' $(EX)/err.txt
	@echo "test-examples: ok"

# The README's C, C++ and Python snippets, compiled and run on the real model.
test-readme: setup build
	$(VPY) tools/run_readme_snippets.py

## ---- Python package -----------------------------------------------------------

# Installs the wheel (`make wheel`: the package, the library and its ONNX Runtime) into .venv.
python-package: setup wheel
	$(VPY) -m pip install --quiet --no-deps --force-reinstall $(BUILD)/wheel/c_embed_runtime-$(VERSION)-py3-none-*.whl

# The platform wheel with the library inside (tools/build_wheel.py): build/wheel/*.whl.
wheel: build
	$(VPY) tools/build_wheel.py --out $(BUILD)/wheel

# The wheel installed into a fresh venv and used from elsewhere (needs the package registry or pip's cache).
test-wheel: setup build
	$(VPY) -m pytest -q python/tests/test_wheel.py

## ---- benchmarks ---------------------------------------------------------------

# `make bench` (bench/README.md): the library through its C ABI against a bare
# ONNX Runtime run and the padded Python baseline, on real sentences; prints a
# table and the target checks, writes bench/results/latest.json and
# bench/results/latency_by_length.png. Iteration counts (override as
# `make bench BENCH_CALLS=48`); the defaults take about 15-20 minutes on 2 cores.
BENCH_CALLS        ?= 240
BENCH_PADDED_CALLS ?= 40
BENCH_RSS_CALLS    ?= 20000
BENCH_RSS_WARMUP   ?= 500
export BENCH_CALLS BENCH_PADDED_CALLS BENCH_RSS_CALLS BENCH_RSS_WARMUP

BENCH_BUILD   := $(BUILD)/bench
BENCH_RESULTS := bench/results
# The library with the `alloc-counter` feature, in its own target directory so
# the shipped build (and test-symbols) never sees the extra symbol.
BENCH_LIB_DIR := target/bench/release
BENCH_STAMP   := $(VENV)/.bench-installed
BENCH_PRELOAD := $(abspath $(BENCH_BUILD)/liballoc_counter.so)
BENCH_TOKENS  := $(BENCH_BUILD)/tokens.txt
BENCH_OPENVINO_ORT := $(ORT_CACHE)/onnxruntime-openvino-1.22.0/libonnxruntime.so.1.22.0

$(BENCH_STAMP): bench/requirements.txt $(VENV_STAMP)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@

$(BENCH_PRELOAD): bench/alloc_counter.c
	@mkdir -p $(@D)
	$(CC) -std=c11 $(CWARN) -O2 -shared -fPIC $< -o $@

$(BENCH_TOKENS): bench/tokenize_sentences.py bench/sentences.txt $(REAL_MODEL)
	@mkdir -p $(@D)
	$(VPY) bench/tokenize_sentences.py $(dir $(REAL_MODEL))tokenizer.json bench/sentences.txt $@ 128

bench: setup build $(BENCH_STAMP) $(BENCH_PRELOAD) $(BENCH_TOKENS)
	cargo build --release --features alloc-counter --target-dir target/bench
	cp --remove-destination $(ORT_DIR)/libonnxruntime.so.* $(ORT_DIR)/libonnxruntime_providers_shared.so $(BENCH_LIB_DIR)
	@# A program linked with -lc_embed_runtime loads the file its soname names.
	@soname=$$(objdump -p $(BENCH_LIB_DIR)/libc_embed_runtime.so | awk '/SONAME/ {print $$2}'); \
	if [ -n "$$soname" ] && [ "$$soname" != libc_embed_runtime.so ]; then \
		ln -sf libc_embed_runtime.so $(BENCH_LIB_DIR)/$$soname; fi
	$(CC) -std=c11 $(CWARN) -O2 -Iinclude bench/embed_bench.c -L$(BENCH_LIB_DIR) -lc_embed_runtime \
		-Wl,-rpath,$(abspath $(BENCH_LIB_DIR)) -lpthread -ldl -o $(BENCH_BUILD)/embed_bench
	cargo build --release --example bare_ort
	@# Other work on the cores makes the timings noisy; the report says so.
	cat /proc/loadavg > $(BENCH_BUILD)/loadavg.txt
	LD_PRELOAD=$(BENCH_PRELOAD) $(BENCH_BUILD)/embed_bench $(REAL_MODEL) $(BENCH_TOKENS) $(BENCH_BUILD)/library.json
	@# The OpenVINO provider on its CPU device, with the hosts' onnxruntime-openvino build.
	ORT_DYLIB_PATH=$(abspath $(BENCH_OPENVINO_ORT)) BENCH_DEVICE=OPENVINO_CPU LD_PRELOAD=$(BENCH_PRELOAD) \
		$(BENCH_BUILD)/embed_bench $(REAL_MODEL) $(BENCH_TOKENS) $(BENCH_BUILD)/library_openvino_cpu.json
	LD_PRELOAD=$(BENCH_PRELOAD) target/release/examples/bare_ort $(ORT_LIB) $(REAL_MODEL) $(BENCH_TOKENS) $(BENCH_BUILD)/bare.json
	LD_PRELOAD=$(BENCH_PRELOAD) $(VPY) bench/padded_baseline.py $(REAL_MODEL) $(BENCH_TOKENS) $(BENCH_BUILD)/python_padded.json
	LD_PRELOAD=$(BENCH_PRELOAD) $(VPY) bench/python_ort.py $(REAL_MODEL) $(BENCH_TOKENS) $(BENCH_BUILD)/python_trimmed.json
	$(VPY) bench/python_objects.py --alloc-counter $(BENCH_PRELOAD)
	$(VPY) bench/report.py $(BENCH_BUILD) $(BENCH_RESULTS)

## ---- fuzzing ----------------------------------------------------------------

# A libFuzzer harness (fuzz/fuzz_abi.c; fuzz/README.md) runs random programs of
# ABI calls against the generated test models, under ASan+UBSan, linked with the
# library built a second time with libFuzzer's coverage instrumentation (stable
# rustc flags, into target/fuzz). Needs clang with libFuzzer (Debian: `clang`).
#
#   make fuzz                     60 s from fuzz/seeds + build/fuzz/corpus; fails on a finding
#   make fuzz FUZZ_SECONDS=3600   longer; FUZZ_ARGS=-fork=2 for two processes

FUZZ_CC        ?= clang
FUZZ_SECONDS   ?= 60
FUZZ_ARGS      ?=
FUZZ_DIR       := $(BUILD)/fuzz
FUZZ_BIN       := $(FUZZ_DIR)/fuzz_abi
FUZZ_LIB_DIR   := $(FUZZ_DIR)/lib
FUZZ_CORPUS    := $(FUZZ_DIR)/corpus
FUZZ_ARTIFACTS := $(FUZZ_DIR)/artifacts
FUZZ_TRIPLE     = $(shell rustc -vV | sed -n 's/^host: //p')
# Coverage for libFuzzer as cargo-fuzz sets it (8-bit counters, PC table,
# comparison operands; debug assertions and overflow checks on: a panic is a
# finding), with stable flags only, plus line tables for the stack traces. An
# explicit --target keeps RUSTFLAGS off build.rs, which could not link without libFuzzer.
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 \
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
	-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions=on -Coverflow-checks=on \
	--cfg fuzzing
FUZZ_CFLAGS    := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude

fuzz-check-clang:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { \
		echo "make fuzz needs clang with libFuzzer, which is not installed: apt-get install -y clang"; exit 1; }

fuzz-build: fuzz-check-clang $(VENV_STAMP)
	RUSTFLAGS="$(FUZZ_RUSTFLAGS)" CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
		cargo build --release --lib --target $(FUZZ_TRIPLE) --target-dir target/fuzz
	@mkdir -p $(FUZZ_LIB_DIR)
	cp -f target/fuzz/$(FUZZ_TRIPLE)/release/libc_embed_runtime.so $(FUZZ_LIB_DIR)/
	@soname=$$(objdump -p $(FUZZ_LIB_DIR)/libc_embed_runtime.so | awk '/SONAME/ {print $$2}'); \
	if [ -n "$$soname" ] && [ "$$soname" != libc_embed_runtime.so ]; then \
		ln -sf libc_embed_runtime.so $(FUZZ_LIB_DIR)/$$soname; fi
	cp --remove-destination $(ORT_DIR)/libonnxruntime.so.* $(ORT_DIR)/libonnxruntime_providers_shared.so $(FUZZ_LIB_DIR)/
	$(FUZZ_CC) $(FUZZ_CFLAGS) fuzz/fuzz_abi.c -L$(FUZZ_LIB_DIR) -lc_embed_runtime \
		-Wl,-rpath,$(abspath $(FUZZ_LIB_DIR)) -lm -lpthread -o $(FUZZ_BIN)

# libFuzzer exits non-zero on a finding and writes the input to $(FUZZ_ARTIFACTS).
fuzz: fuzz-build $(TEST_MODELS_STAMP)
	@mkdir -p $(FUZZ_CORPUS) $(FUZZ_ARTIFACTS)
	@{ FUZZ_MODEL_DIR=models/test UBSAN_OPTIONS=print_stacktrace=1 \
		$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -timeout=60 \
		-artifact_prefix=$(FUZZ_ARTIFACTS)/ $(FUZZ_ARGS) $(FUZZ_CORPUS) fuzz/seeds fuzz/findings 2>&1; \
		echo $$? > $(FUZZ_DIR)/exit-code; } | tee $(FUZZ_DIR)/fuzz.log
	@rc=$$(cat $(FUZZ_DIR)/exit-code); echo "---- make fuzz: $(FUZZ_SECONDS) s, log in $(FUZZ_DIR)/fuzz.log"; \
	grep -E '^#[0-9]+:?[[:space:]].*cov:' $(FUZZ_DIR)/fuzz.log | tail -n 1; \
	grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' $(FUZZ_DIR)/fuzz.log; \
	if [ "$$rc" != 0 ]; then \
		echo "make fuzz: FINDING (exit $$rc); inputs in $(FUZZ_ARTIFACTS)/:"; ls -l $(FUZZ_ARTIFACTS); \
		echo "reproduce: FUZZ_TRACE=1 $(FUZZ_BIN) $(FUZZ_ARTIFACTS)/<file>"; exit 1; fi
