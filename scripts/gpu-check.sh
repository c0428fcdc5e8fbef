#!/usr/bin/env bash
# gpu-check.sh - everything that needs a GPU, in one call of at most 8 minutes
# on a bare lent machine (nvcc, CMake and Python there; no jansson, PCRE2,
# CMocka, msgpack-c or pkg-config, no network):
#   1. probe: nvcc, the GPU (name, compute capability, driver), cmake, the C
#      compiler, python3, compute-sanitizer, and each C library, natively or
#      in the carried prefix; what is missing is named;
#   2. build only what the checks need (build-gpu/): the CUDA backend with
#      -Xptxas -v, mtpbench and the CUDA tests; no MPI, fuzzing or docs;
#   3. registers: every kernel's registers and spill bytes from ptxas
#      (issue 22: the GEMV must not spill), registers.txt;
#   4. the CUDA tests (ctest -R '^test_cuda_'): none may be skipped on a GPU;
#   5. mtpbench bench --backend cuda (JSON cost curve kept);
#   6. the quick study on the CUDA backend and its report;
#   7. test_cuda_ops with cuBLAS forced (informative) and under
#      compute-sanitizer memcheck when it is installed.
# Results: OUT/summary.txt (one line per step: ok / FAILED / absent /
# skipped, its time), OUT/probe.txt, OUT/registers.txt and OUT/logs.tar.gz
# (every log): 4 files, under the 8 a lent machine returns.
#
#   scripts/gpu-check.sh --prepare          here, once: the C libraries into .gpu-deps/prefix
#   scripts/gpu-check.sh [--out DIR]        on the GPU machine (DIR: $OUT there)
#   scripts/gpu-check.sh --dry-run [--out DIR]   here: the same steps, CUDA emulated, small sizes
#   scripts/gpu-check.sh --stage MODEL      here, before each call: MODEL's checkpoint
#                                           gzipped into .gpu-models, every model.safetensors
#                                           out of the tree; prints the bytes that travel
#   scripts/gpu-check.sh --unstage          here, after the calls: the checkpoints back
#   scripts/gpu-check.sh --reuse-build ...  a later call on the warm machine: the earlier
#                                           build as it is (built afresh only where there is
#                                           none), only the checks needing a model
#
# A call sends at most 64 MiB (tree + carried paths) and the shipped
# checkpoints are 134 MB, so each call carries one model (scripts/gpu-stage.sh).
# There, every .gpu-models/NAME.safetensors.gz is first unpacked into
# models/NAME/model.safetensors; with .gpu-models present only the models
# staged there count as present, else those in models/. A check runs only when
# its models are present, and summary.txt names each one skipped for lack of a
# model (NEEDS below: the CUDA tests, the bench and the quick study).
#
# --prepare downloads the Debian packages of the C libraries and pkg-config
# (apt-get download: no root needed for the files) and unpacks them with
# dpkg-deb -x into .gpu-deps/prefix (ignored by git; about 3 MB), with the
# pkg-config files made relocatable (${pcfiledir}). That prefix travels with
# the call (the device tool's carry). There the script puts it on
# PKG_CONFIG_PATH, CMAKE_PREFIX_PATH and PATH; the binaries link the shared
# libraries by full path with a build-tree RPATH, so nothing is installed.
# Shared, not static: Debian's libcmocka-dev ships no .a, and the four
# libraries need only glibc symbols up to this machine's glibc (2.36), which
# any newer image provides (probe.txt records both).
#
# --dry-run builds with -DMTP_CUDA_EMU=ON instead of nvcc (build-gpu-dry/),
# runs the probe, the build, the register parser (on a ptxas log written
# by nvcc 13.0 for sm_90, tests/fixtures/gpu-check/ptxas.log), a few quick CUDA
# tests, `bench --help` (an emulated bench takes minutes), a one-prompt study,
# and the packaging: what CI runs (scripts/ci-robustness.sh).
# Any step that FAILED fails the dry run.
# Its figures are EMULATED, never GPU figures.
# Exit status: 0 when the probe, the build and the CUDA tests pass.
set -uo pipefail

MODE=gpu
OUTARG=
REUSE=0
while [ $# -gt 0 ]; do
  case $1 in
  --prepare) MODE=prepare ;;
  --dry-run) MODE=dry ;;
  --reuse-build) REUSE=1 ;;
  --stage) exec "$(dirname "$0")/gpu-stage.sh" stage "${2:?--stage needs MODEL[,MODEL...]}" ;;
  --unstage) exec "$(dirname "$0")/gpu-stage.sh" unstage ;;
  --out) OUTARG=${2:?--out needs a folder}; shift ;;
  -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  -*) echo "gpu-check: unknown option $1 (see --help)" >&2; exit 2 ;;
  *) OUTARG=$1 ;;
  esac
  shift
done
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
DEPS=$ROOT/.gpu-deps
PREFIX=$DEPS/prefix
ARCH_DIR=x86_64-linux-gnu
# Runtime packages and the -dev ones beside them; pkgconf is pkg-config.
PACKAGES=(libjansson4 libjansson-dev libpcre2-8-0 libpcre2-dev libcmocka0 libcmocka-dev
          pkgconf pkgconf-bin libpkgconf3)

# ------------------------------------------------------------------ prepare
prepare() {
  local msgpack=(libmsgpackc2 libmsgpack-dev) # Debian 12; Debian 13 renamed them
  if apt-cache show libmsgpack-c-dev >/dev/null 2>&1; then
    msgpack=(libmsgpack-c2 libmsgpack-c-dev)
  fi
  rm -rf "$DEPS/debs" "$PREFIX"
  mkdir -p "$DEPS/debs" "$PREFIX"
  (cd "$DEPS/debs" && apt-get download "${PACKAGES[@]}" "${msgpack[@]}") || {
    echo "gpu-check --prepare: apt-get download failed (network? package names?)" >&2
    return 1
  }
  local deb
  for deb in "$DEPS"/debs/*.deb; do
    dpkg-deb -x "$deb" "$PREFIX" || { echo "gpu-check --prepare: cannot unpack $deb" >&2; return 1; }
  done
  rm -rf "$PREFIX/usr/share/doc" "$PREFIX/usr/share/man" "$PREFIX/usr/share/lintian"
  # /usr in prefix=, -L and -I (cmocka.pc spells its paths out) -> the
  # prefix the .pc file sits in, wherever it travels.
  local pc up
  for pc in "$PREFIX"/usr/lib/$ARCH_DIR/pkgconfig/*.pc "$PREFIX"/usr/share/pkgconfig/*.pc; do
    [ -f "$pc" ] || continue
    case $pc in
    */usr/share/pkgconfig/*) up='${pcfiledir}/../..' ;;
    *) up='${pcfiledir}/../../..' ;;
    esac
    sed -i -e "s|^prefix=/usr\$|prefix=$up|" -e "s|-L/usr/|-L$up/|g" -e "s|-I/usr/|-I$up/|g" "$pc"
  done
  {
    echo "prepared $(date -u +%FT%TZ) on $(. /etc/os-release && echo "$PRETTY_NAME"), $(ldd --version | head -1)"
    for deb in "$DEPS"/debs/*.deb; do dpkg-deb -f "$deb" Package Version | paste -sd' '; done
  } >"$PREFIX/MANIFEST.txt"
  rm -rf "$DEPS/debs"
  echo "gpu-check --prepare: $(du -sh "$PREFIX" | cut -f1) in $PREFIX; carry .gpu-deps/prefix"
  cat "$PREFIX/MANIFEST.txt"
}
if [ "$MODE" = prepare ]; then
  prepare
  exit $?
fi

# ---------------------------------------------------------------- reporting
OUTDIR=${OUTARG:-${OUT:-$ROOT/gpu-check-out}}
mkdir -p "$OUTDIR" || exit 2
OUTDIR=$(cd "$OUTDIR" && pwd)
if [ "$MODE" = dry ]; then
  BUILD=${GPU_CHECK_BUILD_DIR:-$ROOT/build-gpu-dry}
  BUDGET=${GPU_CHECK_BUDGET_S:-1200}
else
  BUILD=${GPU_CHECK_BUILD_DIR:-$ROOT/build-gpu}
  BUDGET=${GPU_CHECK_BUDGET_S:-450} # the call's 8 minutes, less the packaging and a margin
fi
LOGS=$BUILD/gpu-check-logs
rm -rf "$LOGS"
mkdir -p "$LOGS" || exit 2
SUMMARY=$OUTDIR/summary.txt
PROBE=$OUTDIR/probe.txt
START=$SECONDS
STATUS=0
: >"$SUMMARY"
: >"$PROBE"

note() { printf '%-22s %-8s %s\n' "$1" "$2" "$3" | tee -a "$SUMMARY"; }
left() { echo $((BUDGET - (SECONDS - START))); }

# The logs as one tarball, whatever happens (the call's files come back even
# when the script is cut short).
package() {
  tar -czf "$OUTDIR/logs.tar.gz" -C "$BUILD" gpu-check-logs 2>/dev/null
  note package ok "logs.tar.gz ($(du -k "$OUTDIR/logs.tar.gz" | cut -f1) KiB); files in $OUTDIR: $(ls "$OUTDIR" | paste -sd' ')"
}
trap package EXIT

# step NAME LIMIT_S LOG CMD...: run CMD with a time limit (capped by what is
# left of the budget), output to LOGS/LOG; record the result.
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
  timeout --kill-after=5 "$limit" "$@" >"$LOGS/$log" 2>&1
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

[ "$MODE" = dry ] && note mode dry-run "CUDA backend EMULATED on the CPU: no figure here is a GPU figure"

# ------------------------------------------------------------------- models
# Staged checkpoints back into models/ first (scripts/gpu-stage.sh). PRESENT:
# the models this call may load; with .gpu-models there, only those staged
# (a file left in models/ by an earlier call on a warm machine is not counted).
PRESENT=()
if compgen -G "$ROOT/.gpu-models/*.safetensors.gz" >/dev/null; then
  step models-unpack 60 models-unpack.log scripts/gpu-stage.sh unpack || { STATUS=1; exit 1; }
  mapfile -t PRESENT <"$LOGS/models-unpack.log"
  note models ok "staged in .gpu-models: ${PRESENT[*]}"
else
  for f in models/*/model.safetensors; do
    [ -f "$f" ] && PRESENT+=("$(basename "$(dirname "$f")")")
  done
  note models ok "nothing staged; in models/: ${PRESENT[*]:-none}"
fi
present() {
  local m
  for m in "${PRESENT[@]}"; do [ "$m" = "$1" ] && return 0; done
  return 1
}
# The models each check loads; a check runs only when all of its are present.
# test_cuda_paths decodes each shipped model it is given in
# MTP_CUDA_SHIPPED_MODELS (the rest of it needs none), so it is not listed.
QUICK_MODEL=$(sed -n 's/^ *"model": *"\([^"]*\)".*/\1/p' experiments/quick.json | head -1)
declare -A NEEDS=([test_cuda_prefill]=mtp-mini [test_cuda_round_trips]=mtp-mini
                  [bench]=mtp-mini [quick-study]=$(basename "${QUICK_MODEL:-mtp-mini}"))
PATHS_MODELS=(mtp-mini mtp-v3) # test_cuda_paths' shipped_greedy cases
lacking() { # CHECK: the models it needs that are not present
  local m out=()
  for m in ${NEEDS[$1]:-}; do present "$m" || out+=("$m"); done
  echo "${out[*]}"
}
# A CUDA test that loads a model must be in NEEDS, or a staged call would run
# it without its model and fail for the wrong reason.
for f in tests/test_cuda_*.c; do
  t=$(basename "$f" .c)
  if grep -q 'models/' "$f" && [ -z "${NEEDS[$t]:-}" ] && [ "$t" != test_cuda_paths ]; then
    note needs-table FAILED "$f loads a model but has no entry in NEEDS (scripts/gpu-check.sh)"
    STATUS=1
  fi
done

# -------------------------------------------------------------------- probe
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
# The carried prefix comes first wherever it exists (also in the dry run, so
# CI builds against exactly what travels).
if [ -d "$PREFIX/usr" ]; then
  export PATH="$PREFIX/usr/bin:$PATH"
  export LD_LIBRARY_PATH="$PREFIX/usr/lib/$ARCH_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PKG_CONFIG_PATH="$PREFIX/usr/lib/$ARCH_DIR/pkgconfig:$PREFIX/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export CMAKE_PREFIX_PATH="$PREFIX/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
fi

have() { command -v "$1" >/dev/null 2>&1; }
MISSING=()
probe_tool() { # NAME PATTERN CMD...: CMD's first output line matching PATTERN, or "missing"
  local name=$1 pattern=$2
  shift 2
  if have "$1"; then
    printf '%-18s %s\n' "$name" "$("$@" 2>&1 | grep -m1 -E "$pattern")" >>"$PROBE"
  else
    printf '%-18s missing\n' "$name" >>"$PROBE"
    MISSING+=("$name")
  fi
}
probe_lib() { # PKG-CONFIG-NAME
  local where=missing
  if have pkg-config && pkg-config --exists "$1" 2>/dev/null; then
    where="$(pkg-config --modversion "$1"): $(pkg-config --libs "$1")"
  else
    MISSING+=("$1")
  fi
  printf '%-18s %s\n' "$1" "$where" >>"$PROBE"
}
probe() {
  echo "machine: $(uname -srm), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), $(ldd --version 2>&1 | head -1)" >>"$PROBE"
  [ -f "$PREFIX/MANIFEST.txt" ] && echo "carried prefix: $(head -1 "$PREFIX/MANIFEST.txt")" >>"$PROBE"
  [ -d "$PREFIX/usr" ] || echo "carried prefix: none (.gpu-deps/prefix; run --prepare here and carry it)" >>"$PROBE"
  if [ "$MODE" = gpu ]; then
    probe_tool nvcc release nvcc --version
    if have nvidia-smi && nvidia-smi >/dev/null 2>&1; then
      printf '%-18s %s\n' gpu "$(nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader | head -1)" >>"$PROBE"
    else
      printf '%-18s none visible (nvidia-smi)\n' gpu >>"$PROBE"
      MISSING+=(gpu)
    fi
  else
    printf '%-18s %s\n' nvcc "not needed: dry run, CUDA emulated" gpu "none: dry run" >>"$PROBE"
  fi
  probe_tool cmake version cmake --version
  probe_tool cc . cc --version
  probe_tool c++ . c++ --version
  probe_tool pkg-config . pkg-config --version
  probe_lib jansson
  probe_lib libpcre2-8
  probe_lib cmocka
  local mp=missing
  for d in "$PREFIX/usr/include" /usr/include /usr/local/include; do
    [ -f "$d/msgpack.h" ] && { mp="header in $d"; break; }
  done
  [ "$mp" = missing ] && MISSING+=(msgpack-c)
  printf '%-18s %s\n' msgpack-c "$mp" >>"$PROBE"
  probe_tool python3 . python3 --version
  if have gzip; then # unpacks .gpu-models; python3's gzip module stands in
    printf '%-18s %s\n' gzip "$(gzip --version 2>&1 | head -1)" >>"$PROBE"
  else
    printf '%-18s missing (the gzip module of python3 unpacks .gpu-models)\n' gzip >>"$PROBE"
  fi
  if have python3; then # the study's plots want these; their absence is reported, not fatal
    printf '%-18s %s\n' "python3 modules" "$(python3 -c 'import matplotlib, msgpack; print("matplotlib", matplotlib.__version__, "and msgpack present")' 2>&1 | tail -1)" >>"$PROBE"
  fi
  if have compute-sanitizer; then
    printf '%-18s %s\n' compute-sanitizer "$(command -v compute-sanitizer)" >>"$PROBE"
  else
    printf '%-18s missing (memcheck step skipped)\n' compute-sanitizer >>"$PROBE"
  fi
  cat "$PROBE" >"$LOGS/probe.txt"
  if [ ${#MISSING[@]} -gt 0 ]; then
    note probe FAILED "missing: ${MISSING[*]} (probe.txt)"
    return 1
  fi
  note probe ok "$(grep '^gpu ' "$PROBE" | sed 's/^gpu *//')"
}
# python3 missing only costs the study; anything else stops the run.
if ! probe; then
  only_python=1
  for m in "${MISSING[@]}"; do [ "$m" = python3 ] || only_python=0; done
  [ $only_python -eq 1 ] || { STATUS=1; exit 1; }
fi

# -------------------------------------------------------------------- build
if [ "$MODE" = gpu ]; then
  TESTS='^test_cuda_'
else # emulated: the quick ones (scripts/cuda-emu-test.sh runs them all in CI)
  TESTS=${GPU_CHECK_DRY_TESTS:-'^test_cuda_(emu_selftest|route_nan|draft_vocab)$'}
fi
TARGETS=(mtpbench)
for f in tests/test_cuda_*.c kernels/cuda_emu/selftest/emu_selftest.cu; do
  t=$(basename "$f" .c)
  [ "$t" = emu_selftest.cu ] && t=test_cuda_emu_selftest
  [ "$MODE" = gpu ] && [ "$t" = test_cuda_emu_selftest ] && continue # an emulation target
  [[ $t =~ $TESTS ]] && TARGETS+=("$t")
done
# Each test whose models are present; with --reuse-build only those that
# need a model (the first call ran the others).
SHIPPED=()
for m in "${PATHS_MODELS[@]}"; do
  if present "$m"; then
    SHIPPED+=("$m")
  elif [[ " ${TARGETS[*]} " == *" test_cuda_paths "* ]]; then
    note "test_cuda_paths $m" skipped "model $m not present: its greedy decoding not run"
  fi
done
export MTP_CUDA_SHIPPED_MODELS
MTP_CUDA_SHIPPED_MODELS=$(IFS=,; echo "${SHIPPED[*]}")
RUN_TESTS=()
for t in "${TARGETS[@]}"; do
  [[ $t =~ ^test_cuda_ ]] || continue
  miss=$(lacking "$t")
  if [ -n "$miss" ]; then
    note "$t" skipped "model $miss not present"
  elif [ $REUSE -eq 0 ] || [ -n "${NEEDS[$t]:-}" ] || { [ "$t" = test_cuda_paths ] && [ ${#SHIPPED[@]} -gt 0 ]; }; then
    RUN_TESTS+=("$t")
  fi
done
[ $REUSE -eq 1 ] && TARGETS=(mtpbench "${RUN_TESTS[@]}") # nothing else runs
CONF=(-DCMAKE_BUILD_TYPE=Release -DMTP_MPI=OFF)
if [ "$MODE" = gpu ]; then
  CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
  CONF+=(-DMTP_CUDA=ON -DMTP_CUDA_PTXAS_VERBOSE=ON -DCMAKE_CUDA_ARCHITECTURES="${CAP:-90}")
else
  CONF+=(-DMTP_CUDA=OFF -DMTP_CUDA_EMU=ON)
fi
if [ -f "$PREFIX/usr/include/msgpack.h" ]; then
  CONF+=(-DMSGPACK_INCLUDE_DIR="$PREFIX/usr/include"
         -DMSGPACK_LIBRARY="$(ls "$PREFIX"/usr/lib/$ARCH_DIR/libmsgpack*.so | head -1)")
fi
# --reuse-build, on the warm machine: the earlier call's build as it is (the
# copied sources are newer, a build would start over). On a fresh machine
# (the last one went back while idle) it builds what this call runs.
BUILT=1
if [ $REUSE -eq 1 ]; then
  BUILT=0
  absent=()
  for t in "${TARGETS[@]}"; do [ -x "$BUILD/$t" ] || absent+=("$t"); done
  if [ ${#absent[@]} -eq 0 ]; then
    note build reused "--reuse-build: $BUILD from the earlier call"
  else
    BUILT=1
    note build rebuilt "--reuse-build: no ${absent[*]} in $BUILD (a fresh machine?): building ${TARGETS[*]}"
  fi
fi
if [ $BUILT -eq 1 ]; then
  step configure 90 configure.log cmake -S . -B "$BUILD" "${CONF[@]}" || { STATUS=1; exit 1; }
  BUILD_LIMIT=300
  [ "$MODE" = dry ] && BUILD_LIMIT=900 # host C++ of the emulation, on CI's 2 cores
  step build $BUILD_LIMIT build.log cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}" ||
    { STATUS=1; exit 1; }
fi
if [ $BUILT -eq 1 ] && [ -d "$PREFIX/usr" ]; then
  linked=$(ldd "$BUILD/mtpbench" 2>/dev/null | grep -c "$PREFIX")
  note carried-libs "$([ "$linked" -gt 0 ] && echo ok || echo unused)" "mtpbench loads $linked libraries from .gpu-deps/prefix (ldd in build.log)"
  ldd "$BUILD/mtpbench" >>"$LOGS/build.log" 2>&1
fi

# ---------------------------------------------------------------- registers
# ptxas -v prints, per kernel: "Compiling entry function 'NAME' for 'sm_XX'",
# "N bytes stack frame, S bytes spill stores, L bytes spill loads" and
# "Used R registers". registers.txt: one line per kernel, demangled.
registers() { # PTXAS_LOG
  awk '
    /^#/ { next }
    /Compiling entry function/ { match($0, /function .[^'"'"']*/); name = substr($0, RSTART + 10, RLENGTH - 10) }
    /bytes spill stores/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "bytes" && $(i+2) == "spill" && $(i+3) == "stores,") st = $i; if ($(i+1) == "bytes" && $(i+2) == "spill" && $(i+3) == "loads") ld = $i } }
    /Used [0-9]+ registers/ { match($0, /Used [0-9]+ registers/); regs = substr($0, RSTART + 5, RLENGTH - 15);
                              if (name != "") printf "%4d regs %6d spill-st %6d spill-ld  %s\n", regs, st, ld, name; name = ""; st = ld = 0 }
  ' "$1" | (have c++filt && c++filt || cat) | sort -k7 >"$OUTDIR/registers.txt"
  local kernels spills gemv_worst
  kernels=$(wc -l <"$OUTDIR/registers.txt")
  spills=$(awk '$3 > 0 || $5 > 0' "$OUTDIR/registers.txt" | wc -l)
  gemv_worst=$(awk '/gemv_kernel/ && $1 > w { w = $1 } END { print w + 0 }' "$OUTDIR/registers.txt")
  if [ "$kernels" -eq 0 ]; then
    note registers FAILED "no ptxas lines in $(basename "$1")"
    return 1
  fi
  if awk '/gemv_kernel/ && ($3 > 0 || $5 > 0) { bad = 1 } END { exit !bad }' "$OUTDIR/registers.txt"; then
    note registers FAILED "a gemv_kernel spills (registers.txt); $kernels kernels, most gemv registers $gemv_worst"
    return 1
  fi
  note registers ok "$kernels kernels, $spills with spills, gemv at most $gemv_worst registers (registers.txt)"
}
if [ $BUILT -eq 0 ]; then
  note registers skipped "--reuse-build: the first call's registers.txt holds them"
elif [ "$MODE" = gpu ]; then
  registers "$LOGS/build.log" || STATUS=1
else
  registers "$ROOT/tests/fixtures/gpu-check/ptxas.log" || STATUS=1 # the parser, on a recorded log
fi

# ---------------------------------------------------------------- CUDA tests
if [ ${#RUN_TESTS[@]} -eq 0 ]; then
  note ctest-cuda skipped "no CUDA test to run with the models present (${PRESENT[*]:-none})"
  : >"$LOGS/ctest-cuda.log"
else
  step ctest-cuda 200 ctest-cuda.log \
    ctest --test-dir "$BUILD" -R "^($(IFS='|'; echo "${RUN_TESTS[*]}"))\$" --output-on-failure -V || STATUS=1
fi
if [ "$MODE" = gpu ] && grep -q "Skipped\|SKIPPED" "$LOGS/ctest-cuda.log"; then
  note ctest-cuda-skips FAILED "CUDA tests skipped on a GPU machine: see ctest-cuda.log"
  STATUS=1
fi
grep -h "INFO" "$LOGS/ctest-cuda.log" >"$LOGS/measured-errors.txt" 2>/dev/null || true

# --------------------------------------------------------------------- bench
MTPB=$BUILD/mtpbench
if [ -n "$(lacking bench)" ]; then
  note bench-cuda skipped "model $(lacking bench) not present"
elif [ "$MODE" = gpu ]; then
  step bench-cuda 90 bench-cuda.txt "$MTPB" bench --model models/mtp-mini --backend cuda \
    --json "$LOGS/bench-cuda.json" || true
else # emulated, even one round takes minutes of CPU: check that the command is there
  step bench-help 10 bench-help.txt "$MTPB" bench --help || true
  note bench-cuda skipped "dry run: an emulated bench takes minutes; only 'bench --help' ran"
fi

# ---------------------------------------------------------------- quick study
QUICK=experiments/quick.json
if [ -n "$(lacking quick-study)" ]; then
  note quick-study skipped "model $(lacking quick-study) not present"
elif ! have python3; then
  note quick-study skipped "python3 is needed to rewrite the spec"
else
  # The same spec with backend cuda, paths made absolute, output under LOGS;
  # the dry run keeps one prompt of one dataset, 8 tokens, two decoders, T = 0.
  python3 - "$ROOT/$QUICK" "$LOGS/quick-cuda.json" "$LOGS/quick-cuda" "$MODE" <<'EOF'
import json, os, sys
src, dst, out_dir, mode = sys.argv[1:5]
base = os.path.dirname(src)
spec = json.load(open(src))
absolute = lambda p: p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))
spec["backend"] = "cuda"
spec["model"] = absolute(spec["model"])
spec["datasets"] = [absolute(p) for p in spec.get("datasets", [])]
spec["output_dir"] = out_dir
if mode == "dry":
    spec.update(datasets=spec["datasets"][:1], max_prompts=1, max_new_tokens=8, warmup=0,
                sampling=[{"temperature": 0}], decoders=spec["decoders"][:2])
json.dump(spec, open(dst, "w"), indent=2)
EOF
  if step quick-study 150 quick-cuda.log "$MTPB" run "$LOGS/quick-cuda.json" --quiet; then
    step quick-report 30 quick-report.md "$MTPB" report "$LOGS/quick-cuda" || true
  fi
fi

# ------------------------------------------------ cuBLAS forced, memcheck
if [ $REUSE -eq 1 ]; then
  note test-cuda-cublas skipped "--reuse-build: needs no model, the first call ran it"
  note memcheck skipped "--reuse-build: needs no model, the first call ran it"
elif [ "$MODE" = gpu ]; then
  step test-cuda-cublas 60 test_cuda_ops-cublas.log \
    env MTP_CUDA_MATMUL=cublas "$BUILD/test_cuda_ops" || true # informative: cuBLAS breaks batch invariance
  grep -h "greedy\|rows differ" "$LOGS/ctest-cuda.log" "$LOGS/test_cuda_ops-cublas.log" \
    >"$LOGS/greedy-differences.txt" 2>/dev/null || true
  if have compute-sanitizer; then
    step memcheck 120 memcheck.log \
      compute-sanitizer --tool memcheck --error-exitcode 9 "$BUILD/test_cuda_ops" || STATUS=1
  else
    note memcheck absent "compute-sanitizer not installed"
  fi
else
  note test-cuda-cublas skipped "dry run: emulated cuBLAS is a reference GEMM"
  note memcheck skipped "dry run: no compute-sanitizer under emulation"
fi

[ "$MODE" = dry ] && grep -q ' FAILED ' "$SUMMARY" && STATUS=1
note total "$([ $STATUS -eq 0 ] && echo ok || echo FAILED)" "$((SECONDS - START)) s"
exit $STATUS
