#!/usr/bin/env bash
# cuda-emu-test.sh - every CUDA test (tests/test_cuda_*.c and the emulation
# layer's selftest) with the CUDA backend EMULATED on the CPU
# (kernels/cuda_emu/README.md), twice:
#   1. build-cuda-emu/ (-DMTP_CUDA_EMU=ON, warnings as errors), forward schedule;
#   2. build-cuda-emu-asan/ (ASan + UBSan), random schedule, NaN fill: a
#      missing barrier, a read of unwritten memory or an overrun shows here.
# The random schedule's seed is printed; CUDA_EMU_SEED=N replays a run.
# Nothing this measures is a GPU figure. Prints the time of each step.
#   scripts/cuda-emu-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
JOBS=$(nproc)
TARGETS=(test_cuda_emu_selftest)
for f in tests/test_cuda_*.c; do
  TARGETS+=("$(basename "$f" .c)")
done

step() {
  local name=$1 start
  shift
  start=$(date +%s)
  "$@"
  echo "cuda-emu-test: $name took $(( $(date +%s) - start )) s"
}

build() { # DIR CMAKE_ARGS...
  local dir=$1
  shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DMTP_WERROR=ON -DMTP_CUDA_EMU=ON "$@" >/dev/null
  cmake --build "$dir" -j"$JOBS" --target "${TARGETS[@]}" >/dev/null
}

run() { # DIR [VAR=VALUE...]: the CUDA tests of DIR in that environment
  local dir=$1
  shift
  env "$@" ctest --test-dir "$dir" --output-on-failure -j"$JOBS" --timeout 1500 -R '^test_cuda_'
}

step "emulated build" build build-cuda-emu
step "emulated CUDA tests (forward schedule)" run build-cuda-emu MTP_CUDA_EMU_SCHEDULE=forward

SEED=${CUDA_EMU_SEED:-$(date +%s)}
echo "cuda-emu-test: sanitized run with MTP_CUDA_EMU_SCHEDULE=random MTP_CUDA_EMU_SEED=$SEED"
step "emulated sanitized build" build build-cuda-emu-asan -DCMAKE_C_FLAGS=-g1 -DMTP_SANITIZE=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export LSAN_OPTIONS=suppressions=$PWD/tests/sanitizer/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
step "emulated CUDA tests (ASan + UBSan, random schedule, NaN fill)" run build-cuda-emu-asan \
  MTP_CUDA_EMU_SCHEDULE=random MTP_CUDA_EMU_SEED="$SEED" MTP_CUDA_EMU_FILL=nan
