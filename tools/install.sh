#!/usr/bin/env bash
# Installs (or uninstalls) what `make build` built; `make install` and
# `make uninstall` call it with their variables, as does tools/test_install.sh.
#
#   PREFIX=/usr/local DESTDIR= LIBDIR=$PREFIX/lib INCLUDEDIR=$PREFIX/include \
#   PKGCONFIGDIR=$LIBDIR/pkgconfig DATADIR=$PREFIX/share tools/install.sh install|uninstall
#
# installs (all variables optional, defaults as shown):
#   $LIBDIR/libc_embed_runtime.so.$VERSION    the library (soname libc_embed_runtime.so.$SO_MAJOR)
#   $LIBDIR/libc_embed_runtime.so.$SO_MAJOR   link: what programs linked with -lc_embed_runtime load
#   $LIBDIR/libc_embed_runtime.so             link: for the linker and hosts that dlopen this name
#   $INCLUDEDIR/c_embed_runtime.h
#   $PKGCONFIGDIR/c_embed_runtime.pc          from tools/c_embed_runtime.pc.in
#   $LIBDIR/c_embed_runtime/                  the build's ONNX Runtime, where the installed
#                                             library looks when ORT_DYLIB_PATH is unset
#   $DATADIR/c_embed_runtime/c_embed_runtime.cpp  the drop-in source for hosts that build the
#                                             legacy library from source, opening the installed
#                                             library (python -m c_embed_runtime host-source)
# It never builds (so `sudo make install` after `make build` runs neither cargo nor pip as root).
. "$(dirname "$0")/common.sh"

PREFIX=${PREFIX:-/usr/local}
LIBDIR=${LIBDIR:-$PREFIX/lib}
INCLUDEDIR=${INCLUDEDIR:-$PREFIX/include}
PKGCONFIGDIR=${PKGCONFIGDIR:-$LIBDIR/pkgconfig}
DATADIR=${DATADIR:-$PREFIX/share}
DESTDIR=${DESTDIR:-}
INSTALL=${INSTALL:-install}
ORT_SUBDIR=c_embed_runtime
lib_dir=$DESTDIR$LIBDIR
built_dir=$(dirname "$LIB")

# The .pc names its directories relative to ${prefix} where it can, so that
# `pkg-config --define-prefix` can relocate it.
under_prefix() {
    case $1 in
        "$PREFIX"/*) echo "\${prefix}/${1#"$PREFIX"/}" ;;
        *) echo "$1" ;;
    esac
}

uninstall() {
    set -x
    rm -f "$lib_dir/libc_embed_runtime.so" "$lib_dir/libc_embed_runtime.so.$SO_MAJOR" \
        "$lib_dir/libc_embed_runtime.so.$VERSION" "$DESTDIR$INCLUDEDIR/c_embed_runtime.h" \
        "$DESTDIR$PKGCONFIGDIR/c_embed_runtime.pc" "$DESTDIR$DATADIR/c_embed_runtime/c_embed_runtime.cpp"
    rmdir "$DESTDIR$DATADIR/c_embed_runtime" 2> /dev/null || true
    rm -f "$lib_dir/$ORT_SUBDIR"/libonnxruntime.so* "$lib_dir/$ORT_SUBDIR/libonnxruntime_providers_shared.so"
    rmdir "$lib_dir/$ORT_SUBDIR" 2> /dev/null || true
}

install_built() {
    set -x
    $INSTALL -d "$lib_dir/$ORT_SUBDIR" "$DESTDIR$INCLUDEDIR" "$DESTDIR$PKGCONFIGDIR"
    $INSTALL -m 755 "$LIB" "$lib_dir/libc_embed_runtime.so.$VERSION"
    ln -sfn "libc_embed_runtime.so.$VERSION" "$lib_dir/libc_embed_runtime.so.$SO_MAJOR"
    ln -sfn "libc_embed_runtime.so.$SO_MAJOR" "$lib_dir/libc_embed_runtime.so"
    $INSTALL -m 644 include/c_embed_runtime.h "$DESTDIR$INCLUDEDIR/c_embed_runtime.h"
    # One ONNX Runtime in the subdirectory: the one the library was built and tested with.
    rm -f "$lib_dir/$ORT_SUBDIR"/libonnxruntime.so*
    $INSTALL -m 755 "$built_dir"/libonnxruntime.so.* "$built_dir/libonnxruntime_providers_shared.so" \
        "$lib_dir/$ORT_SUBDIR/"
    sed -e "s|@PREFIX@|$PREFIX|" -e "s|@LIBDIR@|$(under_prefix "$LIBDIR")|" \
        -e "s|@INCLUDEDIR@|$(under_prefix "$INCLUDEDIR")|" -e "s|@VERSION@|$VERSION|" \
        tools/c_embed_runtime.pc.in > "$DESTDIR$PKGCONFIGDIR/c_embed_runtime.pc"
    chmod 644 "$DESTDIR$PKGCONFIGDIR/c_embed_runtime.pc"
    # The drop-in source opens the library by its soname's path (any 0.x.y installed there).
    $INSTALL -d "$DESTDIR$DATADIR/c_embed_runtime"
    (cd python && "../$VPY" -m c_embed_runtime host-source --library "$LIBDIR/libc_embed_runtime.so.$SO_MAJOR" \
        --output "$DESTDIR$DATADIR/c_embed_runtime/c_embed_runtime.cpp")
    chmod 644 "$DESTDIR$DATADIR/c_embed_runtime/c_embed_runtime.cpp"
    { set +x; } 2> /dev/null
    echo "installed c_embed_runtime $VERSION into $DESTDIR$PREFIX"
}

case ${1:-} in
    install) install_built ;;
    uninstall) uninstall ;;
    *) echo "usage: tools/install.sh install|uninstall" >&2; exit 2 ;;
esac
