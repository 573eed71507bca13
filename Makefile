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
TEST_MODELS_STAMP := models/test/.generated
LIB        := target/release/libc_embed_runtime.so
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

.PHONY: all setup build demo test lint test-rust test-c test-header test-symbols test-python clean

all: build

## ---- set-up -------------------------------------------------------------------

setup: $(VENV_STAMP) $(REAL_MODEL) $(TEST_MODELS_STAMP)

$(VENV_STAMP): tools/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	touch $@

$(REAL_MODEL): $(VENV_STAMP) tools/fetch_models.py
	$(VPY) tools/fetch_models.py models

$(TEST_MODELS_STAMP): $(VENV_STAMP) tools/gen_test_models.py
	$(VPY) tools/gen_test_models.py models/test > /dev/null
	touch $@

## ---- build --------------------------------------------------------------------

# Builds the library and puts the wheel's ONNX Runtime beside it, where the
# library looks first, so hosts need no environment variable.
build: $(VENV_STAMP)
	cargo build --release
	cp -f $(ORT_DIR)/libonnxruntime.so.* $(ORT_DIR)/libonnxruntime_providers_shared.so $(dir $(LIB))

## ---- demo ---------------------------------------------------------------------

demo: setup build
	cd python && ../$(VPY) -m c_embed_runtime.demo --model ../$(REAL_MODEL) --tokenizer ../$(dir $(REAL_MODEL))tokenizer.json

## ---- tests --------------------------------------------------------------------

test: setup build lint test-rust test-c test-header test-symbols test-python
	@echo "make test: all suites passed"

lint:
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings

test-rust: setup
	ORT_DYLIB_PATH=$(ORT_LIB) cargo test --release

$(BUILD)/c/test_abi: c_tests/test_abi.c include/c_embed_runtime.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_T) $< $(LINK_LIB) -o $@

$(BUILD)/c/test_abi_asan: c_tests/test_abi.c include/c_embed_runtime.h $(LIB)
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

# The committed header is what build.rs generates from the code.
test-header: build
	git diff --exit-code -- include/

# The ten functions of the contract plus embed_batch, hidden_size and version;
# nothing outside the prefix.
test-symbols: build
	@mkdir -p $(BUILD)
	@nm -D --defined-only $(LIB) | awk '{print $$3}' | sort > $(BUILD)/symbols.txt
	@if grep -v '^c_embed_runtime_' $(BUILD)/symbols.txt; then echo "symbols outside the prefix (above)"; exit 1; fi
	@test "$$(wc -l < $(BUILD)/symbols.txt)" -eq 13 || { cat $(BUILD)/symbols.txt; echo "expected 13 symbols"; exit 1; }
	@echo "exported symbols: $$(tr '\n' ' ' < $(BUILD)/symbols.txt)"

test-python: setup build
	$(VPY) -m pytest -q python/tests

clean:
	cargo clean
	rm -rf $(BUILD)
