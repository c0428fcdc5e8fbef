#!/usr/bin/env bash
# test_quick_plots.sh - the main command's plots on the quick study: run
# experiments/quick.json into a temporary directory, then analysis/plots.py
# (with a cost curve from `bench --json`), and check that every figure the
# README promises was written as a non-empty PNG, and that the figures of this
# real log have unique legend labels and no line across decoder kinds
# (tests/test_plot_labels.py --log). Needs python3 with
# matplotlib and msgpack (scripts/install-deps.sh installs Debian's); fails,
# not skips, without them, because the main command needs them too.
# Usage: tests/test_quick_plots.sh BUILD_DIR
set -euo pipefail
build="${1:?usage: test_quick_plots.sh BUILD_DIR}"
cd "$(dirname "$0")/.."
py=""
for cand in /usr/bin/python3 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import matplotlib, msgpack' 2>/dev/null; then
    py="$cand"; break
  fi
done
[ -n "$py" ] || { echo "no python3 with matplotlib and msgpack (scripts/install-deps.sh)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/mtpbench" run experiments/quick.json --quiet --out "$tmp" > "$tmp/run.txt"
log=$(ls "$tmp"/*.msgpack)
"$build/mtpbench" bench --model models/mtp-mini --threads 1 --repeats 3 --json "$tmp/bench.json" \
  > "$tmp/bench.txt"
MPLBACKEND=Agg "$py" analysis/plots.py "$log" --mtpbench "$build/mtpbench" --costs "$tmp/bench.json" \
  --bootstrap 50
for name in acceptance_by_position depth_tau_speedup phase_latency cost_model; do
  [ -s "$tmp/$name.png" ] || { echo "plot $name.png missing or empty" >&2; exit 1; }
done
"$py" tests/test_plot_labels.py --log "$log" --mtpbench "$build/mtpbench" --costs "$tmp/bench.json"
echo "quick study: acceptance_by_position, depth_tau_speedup, phase_latency, cost_model written"
