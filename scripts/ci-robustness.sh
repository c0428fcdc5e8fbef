#!/usr/bin/env bash
# ci-robustness.sh - the CI steps after scripts/test.sh: the whole test suite
# under ASan + UBSan (scripts/sanitize.sh), then every fuzz target for a short
# while (scripts/fuzz.sh all 20) from the seeds and tests/fuzz/regressions/,
# and scripts/gpu-check.sh's dry run (the GPU check's own steps, CUDA
# emulated, against the C libraries it carries to a lent GPU machine), made
# as a session's two staged calls in a throwaway clone (scripts/gpu-check-ci.sh).
# Installs what it needs (clang, libFuzzer, OpenMP for clang) with apt-get.
# FUZZ_SECONDS overrides the 20 s per target. Prints the time of each step.
set -euo pipefail
cd "$(dirname "$0")/.."
step() {
  local name=$1 start
  shift
  start=$(date +%s)
  "$@"
  echo "ci-robustness: $name took $(( $(date +%s) - start )) s"
}
step "sanitizer build and tests" scripts/sanitize.sh
step "CUDA tests emulated on the CPU, plain and sanitized" scripts/cuda-emu-test.sh
step "gpu-check.sh --prepare, then --stage and --dry-run as two device calls (emulated)" \
  bash -c 'scripts/gpu-check.sh --prepare >/dev/null && scripts/gpu-check-ci.sh build-gpu-dry/out'
step "fuzzing (${FUZZ_SECONDS:-20} s per target)" scripts/fuzz.sh all "${FUZZ_SECONDS:-20}"
