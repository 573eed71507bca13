#!/usr/bin/env bash
# `make bench` (bench/README.md): the library through its C ABI against a bare
# ONNX Runtime run and the padded Python baseline, on real sentences; prints a
# table and the target checks, writes bench/results/latest.json and
# bench/results/latency_by_length.png. Iteration counts come from the environment
# (BENCH_CALLS, BENCH_PADDED_CALLS, BENCH_RSS_CALLS, BENCH_RSS_WARMUP; defaults in
# the programs). Needs `make setup build` and bench/requirements.txt in the venv
# (`make bench` installs it); then, on an otherwise idle machine:
#
#   tools/bench.sh
. "$(dirname "$0")/common.sh"
CC=${CC:-gcc}
out=build/bench
preload=$PWD/$out/liballoc_counter.so
tokens=$out/tokens.txt
# The library with the `alloc-counter` feature, in its own target directory so
# the shipped build (and test-symbols) never sees the extra symbol.
lib_dir=target/bench/release
set -x

mkdir -p "$out"
"$CC" -std=c11 "${CWARN[@]}" -O2 -shared -fPIC bench/alloc_counter.c -o "$preload"
"$VPY" bench/tokenize_sentences.py "$(dirname "$REAL_MODEL")/tokenizer.json" bench/sentences.txt "$tokens" 128
# The longer-text corpus, at a seq_len that cuts none of its sentences.
"$VPY" bench/tokenize_sentences.py "$(dirname "$REAL_MODEL")/tokenizer.json" bench/long_sentences.txt "$out/long_tokens.txt" 256
cargo build --release --features alloc-counter --target-dir target/bench
tools/stage_library.sh "$lib_dir"
"$CC" -std=c11 "${CWARN[@]}" -O2 -Iinclude bench/embed_bench.c -L"$lib_dir" -lc_embed_runtime \
    -Wl,-rpath,"$PWD/$lib_dir" -lpthread -ldl -o "$out/embed_bench"
cargo build --release --example bare_ort
# Other work on the cores makes the timings noisy; the report says so.
cat /proc/loadavg > "$out/loadavg.txt"
LD_PRELOAD=$preload "$out/embed_bench" "$REAL_MODEL" "$tokens" "$out/library.json"
LD_PRELOAD=$preload "$out/embed_bench" "$REAL_MODEL" "$out/long_tokens.txt" "$out/library_long.json"
# The OpenVINO provider on its CPU device, with the hosts' onnxruntime-openvino build.
ORT_DYLIB_PATH=$(realpath "${C_EMBED_RUNTIME_ORT_CACHE:-.cache/ort}")/onnxruntime-openvino-1.22.0/libonnxruntime.so.1.22.0 \
    BENCH_DEVICE=OPENVINO_CPU LD_PRELOAD=$preload \
    "$out/embed_bench" "$REAL_MODEL" "$tokens" "$out/library_openvino_cpu.json"
LD_PRELOAD=$preload target/release/examples/bare_ort "$(tools/stage_library.sh --ort-lib)" "$REAL_MODEL" "$tokens" "$out/bare.json"
LD_PRELOAD=$preload "$VPY" bench/padded_baseline.py "$REAL_MODEL" "$tokens" "$out/python_padded.json"
LD_PRELOAD=$preload "$VPY" bench/python_ort.py "$REAL_MODEL" "$tokens" "$out/python_trimmed.json"
"$VPY" bench/python_objects.py --alloc-counter "$preload"
"$VPY" bench/report.py "$out" bench/results
