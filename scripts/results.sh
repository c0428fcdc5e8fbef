#!/usr/bin/env bash
# results.sh - regenerate the measured parts of RESULTS.md and results/*.png:
# runs the README's main command (scripts/study.sh) on the default study from
# scratch (the old log is moved to runs/default/default.msgpack.old), times it,
# copies the plots and the full report into results/, and replaces each block
# between "<!-- BEGIN x -->" and "<!-- END x -->" in RESULTS.md (x = timing,
# acceptance, ablation). The hand-written notes outside the blocks are kept;
# re-read them against the new numbers.
#
#   scripts/results.sh            # about 5 minutes on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."

log=runs/default/default.msgpack
if [ -f "$log" ]; then
  mv "$log" "$log.old"
  echo "results: previous log kept as $log.old" >&2
fi
rm -f runs/default/bench.json # measure this machine's cost curve again
mkdir -p runs/default results
start=$(date +%s)
scripts/study.sh experiments/default.json > runs/default/study-output.txt
wall=$(( $(date +%s) - start ))

cp runs/default/acceptance_by_position.png runs/default/depth_tau_speedup.png \
   runs/default/phase_latency.png runs/default/cost_model.png results/ 2>/dev/null ||
  echo "results: plots missing (no matplotlib?)" >&2
cp runs/default/report.md results/report.md
cp runs/default/report-by-category.md results/report-by-category.md

gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
# Tables with their headings demoted below RESULTS.md's own sections.
build/mtpbench report "$log" --table acceptance | sed 's/^# /### /' > "$gen/acceptance"
build/mtpbench report "$log" --table ablation | sed 's/^# /### /' > "$gen/ablation"
sed 's/^# /### /' runs/default/cost-model.md > "$gen/costmodel"
{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) CPU cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)):"
  echo "\`scripts/study.sh\` (build, default study, report, plots) took **${wall} s** wall time."
  echo "The build directory already existed (an incremental build); a first build adds its compile time."
} > "$gen/timing"

cp runs/default/bench.txt results/bench-mtp-mini.txt

# A spec's log, from scratch (an old one is kept beside it as .old).
fresh_run() { # SPEC LOG
  if [ -f "$2" ]; then mv "$2" "$2.old"; fi
  build/mtpbench run "$1" > /dev/null
}
# The V3-shaped model: acceptance by category, and its bench (costs, experts
# touched per verification against independent routing).
fresh_run experiments/v3.json runs/v3/v3.msgpack
build/mtpbench report runs/v3/v3.msgpack --table acceptance | sed 's/^# /### /' > "$gen/v3"
build/mtpbench bench --model models/mtp-v3 --threads 1 --repeats 9 --text datasets/prose.jsonl \
  > results/bench-mtp-v3.txt
# The tree ablation and its plot.
fresh_run experiments/tree.json runs/tree/tree.msgpack
build/mtpbench report runs/tree/tree.msgpack --table tree | sed 's/^# /### /' > "$gen/tree"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" analysis/plots.py runs/tree/tree.msgpack --mtpbench build/mtpbench --out runs/tree > /dev/null
cp runs/tree/tree_ablation.png results/

# Replace the blocks in place.
for block in timing acceptance ablation costmodel v3 tree; do
  awk -v name="$block" -v file="$gen/$block" '
    $0 == "<!-- BEGIN " name " -->" { print; while ((getline line < file) > 0) print line; skip = 1; next }
    $0 == "<!-- END " name " -->" { skip = 0 }
    !skip { print }
  ' RESULTS.md > "$gen/RESULTS.md"
  cp "$gen/RESULTS.md" RESULTS.md
done
echo "results: RESULTS.md and results/ updated (${wall} s); now re-check the notes." >&2
