# Sourced by the tools/*.sh scripts the Makefile's targets call (each says at its
# top how to run it on its own): strict mode, the checkout's root as the working
# directory (paths given to the scripts are relative to it), and what they share.
# $VPY (the venv's python) may be set by the caller.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VPY=${VPY:-.venv/bin/python}
VERSION=$(tools/version.sh)
SO_MAJOR=${VERSION%%.*}
LIB=target/release/libc_embed_runtime.so
TEST_MODELS=models/test
REAL_MODEL=models/all-MiniLM-L6-v2/model.onnx
CWARN=(-Wall -Wextra -Wpedantic -Werror)
