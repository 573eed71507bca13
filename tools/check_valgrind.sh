#!/usr/bin/env bash
# `make check-valgrind`: the C harness (test_abi) and the stress program under
# memcheck; any memory error or definite leak fails. c_tests/valgrind.supp
# silences only two known reports outside this library (ONNX Runtime's
# self-overlapping memcpy at environment set-up, ld.so's strncmp over-read of
# "$ORIGIN"). --fair-sched=yes: valgrind runs one thread at a time, and its
# default hand-over can let one busy thread keep the CPU while the others starve.
# About 2.5-3.5 minutes on 2 cores; a quicker run passes fewer cycles to stress.
#
#   make build build/c/test_abi build/c/stress && tools/check_valgrind.sh [stress args]
#   default stress args: -g 0; quicker: tools/check_valgrind.sh -r 2 -c 10 -g 0
. "$(dirname "$0")/common.sh"
command -v valgrind > /dev/null || { echo "check-valgrind needs valgrind (apt-get install valgrind)"; exit 1; }
[ $# -gt 0 ] || set -- -g 0
valgrind=(valgrind --fair-sched=yes --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --suppressions=c_tests/valgrind.supp)
set -x
"${valgrind[@]}" build/c/test_abi "$TEST_MODELS"
"${valgrind[@]}" build/c/stress "$@" "$TEST_MODELS"
