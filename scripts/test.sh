#!/usr/bin/env bash
# test.sh - the README's test command: install build dependencies, build with
# warnings as errors, and run every test (CMocka, via ctest). GPU tests report
# themselves as skipped on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh -DMTP_WERROR=ON
ctest --test-dir build --output-on-failure -j"$(nproc)"
