#!/usr/bin/env bash
# batch-study.sh - batch size as a study axis (issue 25): build, then for each
# of experiments/batch-mini.json (models/mtp-mini) and experiments/batch.json
# (models/mtp-v3) run the spec (baseline and exact K = 1..3 at B = 1, 2, 4, 8,
# 16, greedy and T = 1), print `report --table batch` (tau, time per output
# token per request, throughput, speedup over the baseline at the same B,
# experts touched per verification), measure the model's batch cost curve
# (`bench --batch --json`, 1 thread) and print the cost model at batch size B
# (`report --table cost-batch`: predicted speedup and K* per B), then draw
# batch_size.png beside each log. About 10 minutes on 2 cores.
#
#   scripts/batch-study.sh            # both models
#   scripts/batch-study.sh mini       # only mtp-mini (about 2 minutes)
#
# Finished logs and bench files are reused (the run is resumed, which does
# nothing when every request is in the log); delete them to measure again.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
echo "== build (scripts/build.sh)" >&2
scripts/build.sh >&2

study() { # NAME MODEL_DIR: one spec, its tables, cost curve and plot
  local name=$1 model=$2 out="runs/$1" log="runs/$1/$1.msgpack"
  echo "== run experiments/$name.json -> $log (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  build/mtpbench run "experiments/$name.json" --resume --quiet
  echo
  echo "### $name: by batch size ($model)"
  build/mtpbench report "$log" --table batch
  build/mtpbench report "$log" --table batch --format json --out "$out/batch.json"
  local bench="$out/bench-batch.json"
  if [ ! -f "$bench" ]; then
    echo "== bench --batch ($model, 1 thread) -> $bench" >&2
    build/mtpbench bench --model "$model" --threads 1 --repeats 5 --text datasets/prose.jsonl \
      --batch --json "$bench" > "$out/bench-batch.txt"
  fi
  echo
  echo "### $name: the cost model at batch size B (costs: $bench)"
  build/mtpbench report "$log" --table cost-batch --costs "$bench"
}

case "${1:-all}" in
  mini) study batch-mini models/mtp-mini ;;
  all) study batch-mini models/mtp-mini; study batch models/mtp-v3 ;;
  *) echo "batch-study: expected 'mini' or nothing, found '$1'" >&2; exit 2 ;;
esac

# batch_size.png: Debian's python3 with matplotlib and msgpack (installed by
# scripts/study.sh's rule when missing: the README's main command).
for py in /usr/bin/python3 python3; do
  if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import matplotlib, msgpack' 2>/dev/null; then
    for log in runs/batch-mini/batch-mini.msgpack runs/batch/batch.msgpack; do
      [ -f "$log" ] && "$py" analysis/plots.py "$log" --mtpbench build/mtpbench --bootstrap 200
    done
    break
  fi
done
echo "batch-study: done in $(( $(date +%s) - start )) s" >&2
