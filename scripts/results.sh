#!/usr/bin/env bash
# results.sh - regenerate the measured parts of RESULTS.md and results/:
# each part runs its study from scratch (an old log is kept beside it as
# .old), and replaces the blocks between "<!-- BEGIN x -->" and
# "<!-- END x -->" in RESULTS.md that come from it. The hand-written notes
# outside the blocks are kept; re-read them against the new numbers.
#
#   default  the README's main command (scripts/study.sh) on the default study
#            (experiments/default.json, models/mtp-v3), timed; its plots and
#            full report go to results/; blocks timing, acceptance, ablation,
#            costmodel; then `bench --text` on mtp-v3 (results/bench-mtp-v3.txt)
#            for block experts (experts touched per verification)
#   mini     the same study on mtp-mini (experiments/mini.json): block mini,
#            results/bench-mtp-mini.txt
#   tree     experiments/tree.json: block tree, results/tree_ablation.png
#
#   scripts/results.sh                # all three parts (about 20 minutes on 2 cores)
#   scripts/results.sh default        # only what a retrained mtp-v3 changes
set -euo pipefail
cd "$(dirname "$0")/.."

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(default mini tree)
for p in "${parts[@]}"; do
  case "$p" in default | mini | tree) ;; *) echo "results: unknown part '$p' (default, mini, tree)" >&2; exit 2 ;; esac
done

gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
blocks=()
demote() { sed 's/^# /### /'; } # tables' headings go below RESULTS.md's own sections

fresh_log() { # LOG: move an old log (and the bench beside it) out of the way
  if [ -f "$1" ]; then mv "$1" "$1.old"; echo "results: previous log kept as $1.old" >&2; fi
  rm -f "$(dirname "$1")/bench.json" # measure this machine's cost curve again
  mkdir -p "$(dirname "$1")"
}

part_default() {
  local log=runs/default/default.msgpack
  fresh_log "$log"
  local start wall built load0 load1
  built=$([ -d build ] && echo "already existed (an incremental build; a first build adds its compile time)" ||
          echo "did not exist: the time includes the first build")
  load0=$(cut -d' ' -f1 /proc/loadavg)
  start=$(date +%s)
  scripts/study.sh experiments/default.json > runs/default/study-output.txt
  wall=$(( $(date +%s) - start ))
  load1=$(cut -d' ' -f1 /proc/loadavg)
  cp runs/default/acceptance_by_position.png runs/default/depth_tau_speedup.png \
     runs/default/phase_latency.png runs/default/cost_model.png results/ 2>/dev/null ||
    echo "results: plots missing (no matplotlib?)" >&2
  cp runs/default/report.md results/report.md
  cp runs/default/report-by-category.md results/report-by-category.md
  build/mtpbench report "$log" --table acceptance | demote > "$gen/acceptance"
  build/mtpbench report "$log" --table ablation | demote > "$gen/ablation"
  demote < runs/default/cost-model.md > "$gen/costmodel"
  {
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) CPU cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)):"
    echo "\`scripts/study.sh\` (build, default study, report, plots) took **${wall} s** wall time."
    echo "The build directory ${built}. Load average (1 min) ${load0} at the start, ${load1} at the end."
  } > "$gen/timing"
  # Costs with real tokens: experts touched by a verification of n adjacent
  # tokens, against n tokens of the same text drawn apart (the baseline that
  # separates adjacency from expert popularity) and independent routing
  # (bench --text; the table's header and its last line are indented too).
  build/mtpbench bench --model models/mtp-v3 --threads 1 --repeats 9 --text datasets/prose.jsonl \
    > results/bench-mtp-v3.txt
  awk '/^experts touched per MoE layer/ { on = 1; print; print ""; print "```text"; next }
       on && /^  / { print; next }
       on { print "```"; on = 0 }
       END { if (on) print "```" }' \
    results/bench-mtp-v3.txt > "$gen/experts"
  [ -s "$gen/experts" ] || { echo "results: no experts-touched section in results/bench-mtp-v3.txt" >&2; exit 1; }
  grep -q 'adjacent/apart' "$gen/experts" ||
    { echo "results: the experts-touched section of results/bench-mtp-v3.txt has no apart baseline" >&2; exit 1; }
  blocks+=(timing acceptance ablation costmodel experts)
}

part_mini() {
  local log=runs/mini/mini.msgpack
  fresh_log "$log"
  scripts/study.sh experiments/mini.json > runs/mini/study-output.txt
  build/mtpbench report "$log" --table acceptance | demote > "$gen/mini"
  cp runs/mini/bench.txt results/bench-mtp-mini.txt
  blocks+=(mini)
}

part_tree() {
  local log=runs/tree/tree.msgpack
  fresh_log "$log"
  build/mtpbench run experiments/tree.json > /dev/null
  build/mtpbench report "$log" --table tree | demote > "$gen/tree"
  local py=/usr/bin/python3
  [ -x "$py" ] || py=python3
  "$py" analysis/plots.py "$log" --mtpbench build/mtpbench --out runs/tree > /dev/null
  cp runs/tree/tree_ablation.png results/
  blocks+=(tree)
}

mkdir -p results
for p in "${parts[@]}"; do "part_$p"; done

# Replace the blocks in place; a block missing from RESULTS.md is an error,
# not a silent skip.
for block in "${blocks[@]}"; do
  grep -qx "<!-- BEGIN $block -->" RESULTS.md || { echo "results: RESULTS.md has no block '$block'" >&2; exit 1; }
  awk -v name="$block" -v file="$gen/$block" '
    $0 == "<!-- BEGIN " name " -->" { print; while ((getline line < file) > 0) print line; skip = 1; next }
    $0 == "<!-- END " name " -->" { skip = 0 }
    !skip { print }
  ' RESULTS.md > "$gen/RESULTS.md"
  cp "$gen/RESULTS.md" RESULTS.md
done
echo "results: RESULTS.md blocks updated: ${blocks[*]}; now re-check the notes." >&2
