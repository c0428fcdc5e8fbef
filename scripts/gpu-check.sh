#!/usr/bin/env bash
# gpu-check.sh - everything that needs a GPU, in one go, in under 8 minutes:
#   1. nvidia-smi, build with the CUDA backend (build-gpu/), compile logs;
#   2. every GPU test: ctest -R cuda, test_cuda_ops again with cuBLAS forced for
#      every matmul (MTP_CUDA_MATMUL=cublas: how many greedy tokens then differ),
#      and test_cuda_ops under compute-sanitizer memcheck when it is installed;
#   3. mtpbench bench --model models/mtp-mini --backend cuda;
#   4. the quick study (experiments/quick.json with backend cuda) and its report.
# Every step writes a log into OUTDIR; a step whose command does not exist yet
# (bench, quick.json, report) is recorded as "absent", not as a failure.
# OUTDIR/summary.txt lists each step with ok / FAILED / absent / skipped and
# its time. Exit status: 0 when the build and the GPU tests pass.
#
#   scripts/gpu-check.sh OUTDIR
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: scripts/gpu-check.sh OUTDIR" >&2
  exit 2
fi
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
SUMMARY="$OUT/summary.txt"
BUDGET=${GPU_CHECK_BUDGET_S:-470} # seconds for the whole script (8 minutes less a margin)
START=$SECONDS
STATUS=0
: >"$SUMMARY"
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi

note() { printf '%-28s %-8s %s\n' "$1" "$2" "$3" | tee -a "$SUMMARY"; }
left() { echo $((BUDGET - (SECONDS - START))); }

# step NAME LIMIT_S LOG CMD...: run CMD with a time limit (capped by what is
# left of the budget), output to OUT/LOG; record the result.
step() {
  local name=$1 limit=$2 log=$3
  shift 3
  local remain
  remain=$(left)
  if [ "$remain" -lt 10 ]; then
    note "$name" skipped "(time budget spent)"
    return 1
  fi
  [ "$limit" -gt "$remain" ] && limit=$remain
  local t0=$SECONDS rc
  timeout --kill-after=5 "$limit" "$@" >"$OUT/$log" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then
    note "$name" ok "$((SECONDS - t0)) s, $log"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    note "$name" FAILED "timed out after ${limit} s, $log"
  else
    note "$name" FAILED "exit $rc after $((SECONDS - t0)) s, $log"
  fi
  return $rc
}

# --- 1. device and build ---------------------------------------------------
if ! nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1; then
  note nvidia-smi FAILED "no GPU visible; see nvidia-smi.txt"
  exit 1
fi
note nvidia-smi ok "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"

step configure 90 configure.log cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DMTP_CUDA=ON ||
  { echo "configure failed" >&2; exit 1; }
step build 240 build.log cmake --build build-gpu -j"$(nproc)" || {
  # Something outside the CUDA backend may be half-written: build what the GPU
  # tests need and go on.
  step build-gpu-targets 180 build-targets.log \
    cmake --build build-gpu -j"$(nproc)" --target mtp test_cuda_ops || exit 1
  STATUS=1
}
grep -nE "warning|error" "$OUT/build.log" >"$OUT/build-warnings.txt" 2>/dev/null || true

# --- 2. GPU tests ------------------------------------------------------------
step ctest-cuda 120 ctest-cuda.log \
  ctest --test-dir build-gpu -R cuda --output-on-failure -V || STATUS=1
if grep -q "Skipped" "$OUT/ctest-cuda.log"; then
  note ctest-cuda-skips FAILED "GPU tests skipped on a GPU machine: see ctest-cuda.log"
  STATUS=1
fi
step test-cuda-cublas 90 test_cuda_ops-cublas.log \
  env MTP_CUDA_MATMUL=cublas build-gpu/test_cuda_ops || true # informative: cuBLAS breaks batch invariance
grep -h "greedy\|rows differ" "$OUT/ctest-cuda.log" "$OUT/test_cuda_ops-cublas.log" \
  >"$OUT/greedy-differences.txt" 2>/dev/null || true
if command -v compute-sanitizer >/dev/null 2>&1; then
  step memcheck 120 memcheck.log \
    compute-sanitizer --tool memcheck --error-exitcode 9 build-gpu/test_cuda_ops || STATUS=1
else
  note memcheck absent "compute-sanitizer not installed"
fi

# --- 3. bench ------------------------------------------------------------------
MTPB=build-gpu/mtpbench
if [ -x "$MTPB" ] && "$MTPB" bench --help >/dev/null 2>&1; then
  step bench-cuda 90 bench-cuda.txt "$MTPB" bench --model models/mtp-mini --backend cuda || true
else
  note bench-cuda absent "'mtpbench bench' is not implemented in this tree"
fi

# --- 4. quick study --------------------------------------------------------------
QUICK=experiments/quick.json
if [ ! -f "$QUICK" ]; then
  note quick-study absent "$QUICK does not exist in this tree"
elif ! command -v python3 >/dev/null 2>&1; then
  note quick-study skipped "python3 is needed to rewrite the spec"
else
  # The same spec with backend cuda, paths made absolute, output under OUT.
  python3 - "$ROOT/$QUICK" "$OUT/quick-cuda.json" "$OUT/quick-cuda" <<'EOF'
import json, os, sys
src, dst, out_dir = sys.argv[1:4]
base = os.path.dirname(src)
spec = json.load(open(src))
absolute = lambda p: p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))
spec["backend"] = "cuda"
spec["model"] = absolute(spec["model"])
spec["datasets"] = [absolute(p) for p in spec.get("datasets", [])]
spec["output_dir"] = out_dir
json.dump(spec, open(dst, "w"), indent=2)
EOF
  if step quick-study 200 quick-cuda.log "$MTPB" run "$OUT/quick-cuda.json" --quiet; then
    if "$MTPB" report --help >/dev/null 2>&1; then
      step quick-report 30 quick-report.md "$MTPB" report "$OUT/quick-cuda" || true
    else
      note quick-report absent "'mtpbench report' is not implemented in this tree"
    fi
  fi
fi

note total "$([ $STATUS -eq 0 ] && echo ok || echo FAILED)" "$((SECONDS - START)) s; logs in $OUT"
exit $STATUS
