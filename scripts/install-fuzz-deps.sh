#!/usr/bin/env bash
# install-fuzz-deps.sh - the Debian packages the fuzz targets and the sanitizer
# build need beyond the build's own: clang (libFuzzer ships in
# libclang-rt-*-dev) and clang's OpenMP runtime. Idempotent; needs root or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh clang libclang-rt-dev libomp-dev
