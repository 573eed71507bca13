#!/usr/bin/env bash
# `make test-symbols`: the library exports exactly the functions its header
# declares (the one list of them, generated from the code;
# python/tests/test_abi.py checks the Python prototypes against it too) and
# nothing outside the c_embed_runtime_ prefix. tools/test_install.sh runs it on
# the installed library.
#
#   tools/test_symbols.sh [library [header]]   default: the release build, include/c_embed_runtime.h
. "$(dirname "$0")/common.sh"
library=${1:-$LIB}
header=${2:-include/c_embed_runtime.h}
list_dir=$(mktemp -d)
trap 'rm -rf "$list_dir"' EXIT

nm -D --defined-only "$library" | awk '{print $3}' | sort > "$list_dir/symbols.txt"
if grep -v '^c_embed_runtime_' "$list_dir/symbols.txt"; then echo "symbols outside the prefix (above)"; exit 1; fi
sed -n 's/^[^ *\/].*\b\(c_embed_runtime_[a-z_]*\)(.*/\1/p' "$header" | sort > "$list_dir/header_functions.txt"
diff "$list_dir/header_functions.txt" "$list_dir/symbols.txt" || { echo "exported symbols (>) differ from the header (<)"; exit 1; }
echo "exported symbols ($(wc -l < "$list_dir/symbols.txt")): $(tr '\n' ' ' < "$list_dir/symbols.txt")"
