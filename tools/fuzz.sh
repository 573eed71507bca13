#!/usr/bin/env bash
# `make fuzz-build` and `make fuzz` (fuzz/README.md). A libFuzzer harness
# (fuzz/fuzz_abi.c) runs random programs of ABI calls against the generated test
# models, under ASan+UBSan, linked with the library built a second time with
# libFuzzer's coverage instrumentation (stable rustc flags, into target/fuzz).
# Needs clang with libFuzzer ($FUZZ_CC, default clang; Debian: `clang`).
#
#   tools/fuzz.sh build                                 -> build/fuzz/fuzz_abi
#   tools/fuzz.sh run [SECONDS [libFuzzer flags...]]    default 60 s
#
# run starts from fuzz/seeds, fuzz/findings and the corpus kept in build/fuzz/corpus,
# keeps the log in build/fuzz/fuzz.log, prints the final statistics and fails on a
# finding, whose input libFuzzer writes to build/fuzz/artifacts/.
. "$(dirname "$0")/common.sh"
FUZZ_CC=${FUZZ_CC:-clang}
dir=build/fuzz
bin=$dir/fuzz_abi

build() {
    command -v "$FUZZ_CC" > /dev/null 2>&1 || {
        echo "make fuzz needs clang with libFuzzer, which is not installed: apt-get install -y clang"; exit 1; }
    local triple lib_dir=$dir/lib
    triple=$(rustc -vV | sed -n 's/^host: //p')
    set -x
    # Coverage for libFuzzer as cargo-fuzz sets it (8-bit counters, PC table,
    # comparison operands; debug assertions and overflow checks on: a panic is a
    # finding), with stable flags only, plus line tables for the stack traces. An
    # explicit --target keeps RUSTFLAGS off build.rs, which could not link without libFuzzer.
    local rustflags=(-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table
        -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions=on -Coverflow-checks=on
        --cfg fuzzing)
    RUSTFLAGS="${rustflags[*]}" CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
        cargo build --release --lib --target "$triple" --target-dir target/fuzz
    mkdir -p "$lib_dir"
    cp -f "target/fuzz/$triple/release/libc_embed_runtime.so" "$lib_dir/"
    tools/stage_library.sh "$lib_dir"
    "$FUZZ_CC" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude \
        fuzz/fuzz_abi.c -L"$lib_dir" -lc_embed_runtime -Wl,-rpath,"$PWD/$lib_dir" -lm -lpthread -o "$bin"
}

run() {
    local seconds=${1:-60} rc=0
    shift $(($# > 0 ? 1 : 0))
    mkdir -p "$dir/corpus" "$dir/artifacts"
    FUZZ_MODEL_DIR=$TEST_MODELS UBSAN_OPTIONS=print_stacktrace=1 \
        "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=60 \
        -artifact_prefix="$dir/artifacts/" "$@" "$dir/corpus" fuzz/seeds fuzz/findings 2>&1 | tee "$dir/fuzz.log" \
        || rc=${PIPESTATUS[0]}
    echo "---- make fuzz: $seconds s, log in $dir/fuzz.log"
    grep -E '^#[0-9]+:?[[:space:]].*cov:' "$dir/fuzz.log" | tail -n 1 || true
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$dir/fuzz.log" || true
    if [ "$rc" != 0 ]; then
        echo "make fuzz: FINDING (exit $rc); inputs in $dir/artifacts/:"
        ls -l "$dir/artifacts"
        echo "reproduce: FUZZ_TRACE=1 FUZZ_MODEL_DIR=$TEST_MODELS $bin $dir/artifacts/<file>"
        exit 1
    fi
}

case ${1:-} in
    build) build ;;
    run) shift; run "$@" ;;
    *) echo "usage: tools/fuzz.sh build | run [SECONDS [libFuzzer flags...]]" >&2; exit 2 ;;
esac
