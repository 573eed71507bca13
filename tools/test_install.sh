#!/usr/bin/env bash
# `make test-install`: installs what `make build` built into a staging tree
# (DESTDIR, PREFIX=/opt/c_embed_runtime) and into a plain temporary prefix, checks
# the files, the soname and the exported symbols, builds c_tests/install/ (C11
# and C++17) with nothing but pkg-config's flags and runs them on the installed
# library alone: no ORT_DYLIB_PATH, no rpath, LD_LIBRARY_PATH = the installed
# libdir. install_c prints the files it mapped, which must be the installed
# library and the ONNX Runtime of its subdirectory. Needs pkg-config.
#
#   make build && tools/test_install.sh     (CC, CXX, PYTHON as in make)
. "$(dirname "$0")/common.sh"
command -v pkg-config > /dev/null || { echo "test-install needs pkg-config (apt-get install pkg-config)"; exit 1; }
CC=${CC:-gcc}
CXX=${CXX:-g++}
PYTHON=${PYTHON:-python3}
set -x

it_dir=$PWD/build/install-test
root=$it_dir/root
prefix=/opt/c_embed_runtime
libdir=$root$prefix/lib
so=$libdir/libc_embed_runtime.so.$VERSION
staged=(PREFIX=$prefix LIBDIR=$prefix/lib INCLUDEDIR=$prefix/include PKGCONFIGDIR=$prefix/lib/pkgconfig)
pkg() { PKG_CONFIG_PATH=$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root pkg-config "$@"; }
run() { env -u ORT_DYLIB_PATH LD_LIBRARY_PATH="$libdir" "$@"; }

rm -rf "$it_dir"
env DESTDIR="$root" "${staged[@]}" tools/install.sh install
# The layout: a real versioned file, the two links, the header, ONNX Runtime.
test -f "$so" && test ! -L "$so"
test "$(readlink "$libdir/libc_embed_runtime.so.$SO_MAJOR")" = "libc_embed_runtime.so.$VERSION"
test "$(readlink "$libdir/libc_embed_runtime.so")" = "libc_embed_runtime.so.$SO_MAJOR"
test -f "$root$prefix/include/c_embed_runtime.h"
grep -qF "#define CER_DEFAULT_LIBRARY \"$prefix/lib/libc_embed_runtime.so.$SO_MAJOR\"" \
    "$root$prefix/share/c_embed_runtime/c_embed_runtime.cpp"
ls "$libdir"/c_embed_runtime/libonnxruntime.so.* "$libdir/c_embed_runtime/libonnxruntime_providers_shared.so"
readelf -d "$so" | grep -F "Library soname: [libc_embed_runtime.so.$SO_MAJOR]"
if readelf -d "$so" | grep -E 'R(UN)?PATH' | grep -F "$PWD"; then
    echo "the installed library has a path into the build tree"; exit 1
fi
tools/test_symbols.sh "$so" "$root$prefix/include/c_embed_runtime.h"

# pkg-config: the staged .pc, with DESTDIR as the sysroot; relocatable with --define-prefix.
test "$(pkg --modversion c_embed_runtime)" = "$VERSION"
pkg --cflags --libs c_embed_runtime
test "$(PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --define-prefix --variable=libdir c_embed_runtime)" = "$libdir"
# shellcheck disable=SC2046 # pkg-config's flags are words
"$CC" -std=c11 "${CWARN[@]}" c_tests/install/install_c.c $(pkg --cflags --libs c_embed_runtime) -lm -o "$it_dir/install_c"
# shellcheck disable=SC2046
"$CXX" -std=c++17 "${CWARN[@]}" c_tests/install/install_cpp.cpp $(pkg --cflags --libs c_embed_runtime) -o "$it_dir/install_cpp"
run "$it_dir/install_c" "$TEST_MODELS/tiny_bert.onnx" "$VERSION" > "$it_dir/install_c.out" || { cat "$it_dir/install_c.out"; exit 1; }
cat "$it_dir/install_c.out"
grep -q '^install_c: ok' "$it_dir/install_c.out"
grep -qx "library: $(realpath "$so")" "$it_dir/install_c.out"
grep -q "^onnxruntime: $(realpath "$libdir/c_embed_runtime")/libonnxruntime.so." "$it_dir/install_c.out"
run "$it_dir/install_cpp" "$TEST_MODELS/tiny_bert.onnx"
# Legacy hosts dlopen the unversioned name.
run "$PYTHON" -c 'import ctypes, sys; f = ctypes.CDLL(sys.argv[1]).c_embed_runtime_version; f.restype = ctypes.c_char_p; v = f().decode(); print("dlopen libc_embed_runtime.so: version", v); sys.exit(v != sys.argv[2])' \
    "$libdir/libc_embed_runtime.so" "$VERSION"
env DESTDIR="$root" "${staged[@]}" tools/install.sh uninstall
test -z "$(find "$root" ! -type d)" || { find "$root" ! -type d; echo "uninstall left files behind (above)"; exit 1; }

# A plain install into a temporary prefix (no DESTDIR), used as a C user would.
plain=$it_dir/prefix
env PREFIX="$plain" LIBDIR="$plain/lib" INCLUDEDIR="$plain/include" PKGCONFIGDIR="$plain/lib/pkgconfig" \
    tools/install.sh install
# shellcheck disable=SC2046
"$CC" -std=c11 "${CWARN[@]}" c_tests/install/install_c.c \
    $(PKG_CONFIG_PATH=$plain/lib/pkgconfig pkg-config --cflags --libs c_embed_runtime) -lm -o "$it_dir/install_c_prefix"
env -u ORT_DYLIB_PATH LD_LIBRARY_PATH="$plain/lib" "$it_dir/install_c_prefix" "$TEST_MODELS/tiny_bert.onnx" \
    "$VERSION" > "$it_dir/install_c_prefix.out" || { cat "$it_dir/install_c_prefix.out"; exit 1; }
grep -q "^onnxruntime: $(realpath "$plain/lib/c_embed_runtime")/libonnxruntime.so." "$it_dir/install_c_prefix.out"
# The installed drop-in source, built as a host that builds from source does (no
# ONNX Runtime to link: the installed library's own is used), opens the installed library.
"$CXX" -O3 -fPIC -shared -std=c++17 "${CWARN[@]}" "$plain/share/c_embed_runtime/c_embed_runtime.cpp" \
    -o "$it_dir/libc_embed_runtime.host.so"
env -u ORT_DYLIB_PATH "$PYTHON" -c 'import ctypes, sys
lib = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL)
lib.c_embed_runtime_create.restype = ctypes.c_void_p
lib.c_embed_runtime_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int64] + [ctypes.c_int32] * 3
lib.c_embed_runtime_onnxruntime_path.restype = ctypes.c_char_p
lib.c_embed_runtime_last_create_error.restype = ctypes.c_char_p
handle = lib.c_embed_runtime_create(sys.argv[2].encode(), b"CPU", 128, 24, 1, 1)
assert handle, lib.c_embed_runtime_last_create_error()
mapped = open("/proc/self/maps").read()
assert sys.argv[3] in mapped, "the installed library is not mapped"
print("drop-in source: onnxruntime", lib.c_embed_runtime_onnxruntime_path().decode())' \
    "$it_dir/libc_embed_runtime.host.so" "$TEST_MODELS/tiny_bert.onnx" "$(realpath "$plain/lib/libc_embed_runtime.so.$SO_MAJOR")"
{ set +x; } 2> /dev/null
echo "test-install: ok"
