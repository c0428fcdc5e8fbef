#!/usr/bin/env bash
# fuzz.sh - run the libFuzzer targets of tests/fuzz/ (clang, ASan + UBSan).
#
#   scripts/fuzz.sh TARGET|all SECONDS      e.g. scripts/fuzz.sh log 600
#
# Targets: safetensors config tokenizer spec dataset log report costs log_fields. Builds
# build-fuzz/ (CC=clang, -DMTP_FUZZ=ON) when needed. Each target's corpus,
# build-fuzz/corpus/<target>/, starts from the shipped files (models/,
# tests/fixtures/, experiments/*.json, datasets/*.jsonl, small logs) and the
# inputs of tests/fuzz/regressions/<target>/, and keeps growing across runs.
# Crashers land in build-fuzz/findings/<target>/: minimize them and commit them
# to tests/fuzz/regressions/<target>/ with the fix (ctest replays that folder).
# FUZZ_KEEP_GOING=1 keeps fuzzing after a finding (libFuzzer fork mode) for
# long runs; by default the first finding stops the target and the script
# exits 1. Dictionaries: tests/fuzz/dict/ (JSON inputs, MessagePack logs).
# FUZZ_BUILD_DIR=DIR builds and keeps corpora in DIR instead of build-fuzz/.
# Prints one line per target: seconds, executions, findings.
set -euo pipefail
cd "$(dirname "$0")/.."
ALL=(safetensors config tokenizer spec dataset log report costs log_fields)
if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS   (targets: ${ALL[*]})" >&2
  exit 2
fi
if [ "$1" = all ]; then targets=("${ALL[@]}"); else targets=("$1"); fi
for t in "${targets[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t' (targets: ${ALL[*]})" >&2; exit 2; }
done
seconds=$2
B=${FUZZ_BUILD_DIR:-build-fuzz}  # several sessions in one tree: one build folder each

scripts/install-fuzz-deps.sh
if [ ! -f $B/CMakeCache.txt ]; then
  CC=clang cmake -S . -B $B -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMTP_FUZZ=ON -DMTP_CUDA=OFF \
    >/dev/null
fi
cmake --build $B -j"$(nproc)" --target "${targets[@]/#/fuzz_}" >/dev/null

# The shipped files a target starts from, in its input format (tests/fuzz/fuzz_<t>.c).
seed_corpus() {
  local t=$1 dir=$2 f
  case $t in
    safetensors)  # the header of each checkpoint; the target pads the data with zeros
      for f in models/mtp-mini/model.safetensors tests/fixtures/*/model.safetensors; do
        local hlen
        hlen=$(od -An -t u8 -N8 "$f" | tr -d ' ')
        head -c $((8 + hlen)) "$f" >"$dir/seed-$(basename "$(dirname "$f")").safetensors"
      done ;;
    config) for f in models/mtp-mini/config.json tests/fixtures/*/config.json; do
              cp "$f" "$dir/seed-$(basename "$(dirname "$f")").json"; done ;;
    tokenizer) cp tests/fixtures/tokenizer/*tokenizer.json "$dir/"
               { cat tests/fixtures/tokenizer/tiny-tokenizer.json; printf '\0Caf\xc3\xa9 \xe2\x82\xac 12 ab\n'; } \
                 >"$dir/seed-with-text" ;;
    spec) cp experiments/*.json "$dir/" ;;
    dataset) for f in datasets/*.jsonl; do head -n 20 "$f" >"$dir/seed-$(basename "$f")"; done ;;
    log|report) cp tests/fixtures/logs/*.msgpack "$dir/" ;;
    log_fields) printf '\0' >"$dir/seed-no-edit" ;;  # edits of tests/fixtures/logs (fuzz_log_fields.c)
    costs) cp tests/fixtures/costs/*.json "$dir/"
           cp results/*.json "$dir/" 2>/dev/null || true ;;
  esac
  cp tests/fuzz/regressions/"$t"/* "$dir/" 2>/dev/null || true
  rm -f "$dir/README.md"
}

status=0
for t in "${targets[@]}"; do
  corpus=$B/corpus/$t findings=$B/findings/$t
  mkdir -p "$corpus" "$findings"
  [ -n "$(ls -A "$corpus")" ] || seed_corpus "$t" "$corpus"
  log=$B/fuzz-$t.log
  extra=()
  case $t in
    log|report) dict=tests/fuzz/dict/msgpack.dict ;;
    log_fields) dict= ;;  # its input is a list of edits, not a format
    *) dict=tests/fuzz/dict/json.dict ;;
  esac
  [ -z "$dict" ] || extra+=(-dict="$dict")
  if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then
    extra+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  fi
  rc=0
  OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
    $B/fuzz_"$t" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/" "${extra[@]}" \
    >"$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
  found=$(find "$findings" -type f | wc -l)
  echo "fuzz $t: ${seconds}s, ${execs:-?} executions, $found findings (log $log, findings $findings/)"
  if [ $rc -ne 0 ] || [ "$found" -ne 0 ]; then
    status=1
    grep -m3 -E 'ERROR: |SUMMARY: ' "$log" >&2 || true
  fi
done
exit $status
