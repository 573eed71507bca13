#!/usr/bin/env bash
# Places ONNX Runtime beside a built libc_embed_runtime.so, where the library looks
# first (so hosts need no environment variable), and adds the link its soname
# names (what programs linked with -lc_embed_runtime load). The one place that
# does either: `make build` (target/release), `make bench`, `make fuzz-build`.
# ONNX Runtime comes from the venv's onnxruntime wheel, or the directory $ORT_DIR.
#
#   tools/stage_library.sh <lib-dir>    e.g. tools/stage_library.sh target/release
#   tools/stage_library.sh --ort-lib    prints the path of that libonnxruntime.so.N
. "$(dirname "$0")/common.sh"

ort_dir=${ORT_DIR:-$("$VPY" -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')}
ort_libs=("$ort_dir"/libonnxruntime.so.*)
[ -f "${ort_libs[0]}" ] || { echo "no libonnxruntime.so.* in $ort_dir (run make setup)" >&2; exit 1; }
if [ "${1:-}" = --ort-lib ]; then
    echo "${ort_libs[0]}"
    exit 0
fi
lib_dir=${1:?usage: tools/stage_library.sh <lib-dir> | --ort-lib}

# A new file, not a rewrite in place: a running test that mapped the old one would crash.
cp --remove-destination "${ort_libs[@]}" "$ort_dir/libonnxruntime_providers_shared.so" "$lib_dir/"
soname=$(objdump -p "$lib_dir/libc_embed_runtime.so" | awk '/SONAME/ {print $2}')
if [ -n "$soname" ] && [ "$soname" != libc_embed_runtime.so ]; then
    ln -sf libc_embed_runtime.so "$lib_dir/$soname"
fi
