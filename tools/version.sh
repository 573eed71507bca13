#!/usr/bin/env bash
# Prints the library's version, read from Cargo.toml, its one source (the
# tools/*.sh scripts read it here).
#
#   tools/version.sh
set -euo pipefail
sed -n 's/^version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml" | head -n 1
