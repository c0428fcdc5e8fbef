#!/usr/bin/env bash
# sanitize.sh - build everything with AddressSanitizer + UndefinedBehaviorSanitizer
# (gcc, -DMTP_SANITIZE=ON, CPU backend) in build-asan/ and run the whole test
# suite there, fuzz regression replays included. Any sanitizer report fails
# the test it happens in (UBSan does not recover; ASan aborts).
#   scripts/sanitize.sh            # about 2x the time of scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
B=build-asan
cmake -S . -B $B -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMTP_SANITIZE=ON -DMTP_CUDA=OFF \
  -DMTP_WERROR=ON >/dev/null
cmake --build $B -j"$(nproc)" >/dev/null
# detect_leaks: a leak on an error path is a finding too.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir $B --output-on-failure -j"$(nproc)" --timeout 900
