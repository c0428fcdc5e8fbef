#!/usr/bin/env bash
# study.sh - the README's main command: install what the build needs, build,
# run an experiment spec (default: experiments/default.json, the default study
# on models/mtp-v3), and print the acceptance-rate table and the exact-vs-
# chained drafting ablation from its log. Writes the full report (report.md,
# report.json), the cost-model tables (cost-model.md, from `mtpbench bench
# --json` -> bench.json) and every plot (PNG; matplotlib and msgpack come from
# Debian's python3 packages, installed when missing) beside the log.
#
#   scripts/study.sh                       # the default study (minutes on 2 cores)
#   scripts/study.sh experiments/quick.json
#
# A finished log is reused (the run is resumed, which does nothing when every
# request is in the log); an interrupted one is continued. Delete the log (the
# path is printed) to measure again. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

spec="${1:-experiments/default.json}"
[ -f "$spec" ] || { echo "study: no spec file '$spec'" >&2; exit 2; }
start=$(date +%s)

echo "== build (scripts/build.sh)" >&2
scripts/build.sh

# The log is <output_dir>/<name>.msgpack with output_dir relative to the spec's
# directory and name defaulting to the spec's file stem (spec/experiment-spec.md).
spec_field() { # KEY: the string value of a top-level key of the spec, or ""
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json, sys; v = json.load(open(sys.argv[1])).get(sys.argv[2], "")
print(v if isinstance(v, str) else "")' "$spec" "$1"
  else # the first "KEY": "value" line (top-level keys come first in the shipped specs)
    sed -n 's/^[[:space:]]*"'"$1"'"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$spec" | head -n 1
  fi
}
out_rel=$(spec_field output_dir)
name=$(spec_field name)
[ -n "$name" ] || name=$(basename "$spec" .json)
[ -n "$out_rel" ] || { echo "study: cannot find output_dir in $spec" >&2; exit 2; }
case "$out_rel" in
  /*) out_dir="$out_rel" ;;
  *) out_dir="$(dirname "$spec")/$out_rel" ;;
esac
log="$out_dir/$name.msgpack"

echo "== run $spec -> $log" >&2
build/mtpbench run "$spec" --resume

echo >&2
echo "== report" >&2
build/mtpbench report "$log" --table acceptance
echo
build/mtpbench report "$log" --table ablation
build/mtpbench report "$log" --out "$out_dir/report.md"
build/mtpbench report "$log" --by decoder,temperature,category --out "$out_dir/report-by-category.md"
build/mtpbench report "$log" --format json --out "$out_dir/report.json"
echo
echo "full report: $out_dir/report.md (per category: $out_dir/report-by-category.md, json: $out_dir/report.json)"

# The cost model: this machine's cost curve (interleaved rounds), then the
# predicted vs measured speedup and K* from the log's acceptance. A bench file
# already beside the log is reused (delete it to measure again).
bench="$out_dir/bench.json"
echo >&2
echo "== cost model (bench -> $bench)" >&2
model_rel=$(spec_field model)
case "$model_rel" in
  /*) model_dir="$model_rel" ;;
  *) model_dir="$(dirname "$spec")/$model_rel" ;;
esac
[ -f "$bench" ] || build/mtpbench bench --model "$model_dir" --threads 1 --repeats 15 \
  --json "$bench" > "$out_dir/bench.txt"
build/mtpbench report "$log" --table cost-model --costs "$bench" --out "$out_dir/cost-model.md"
# The best-depth table's rows over all categories, under the table's own
# header (its first two lines), so each column says what it is.
awk '/best depth/ { on = 1; next }
     on && /^\|/ { n++; if (n <= 2 || / all /) print; next }
     on && n { exit }' "$out_dir/cost-model.md" || true
echo "cost model: $out_dir/cost-model.md (bench: $out_dir/bench.txt, $bench)"

# Plots: Debian's python3-matplotlib and python3-msgpack (installed here when
# missing, as the build dependencies are), else the project venv.
have_plot_deps() { "$1" -c 'import matplotlib, msgpack' >/dev/null 2>&1; }
py=""
for cand in /usr/bin/python3 python3 .venv/bin/python; do
  if command -v "$cand" >/dev/null 2>&1 && have_plot_deps "$cand"; then py="$cand"; break; fi
done
if [ -z "$py" ] && command -v apt-get >/dev/null 2>&1; then
  echo "== plot dependencies (apt-get install python3-matplotlib python3-msgpack)" >&2
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq python3-matplotlib python3-msgpack >&2
  for cand in /usr/bin/python3 python3; do
    if [ -z "$py" ] && command -v "$cand" >/dev/null 2>&1 && have_plot_deps "$cand"; then py="$cand"; fi
  done
fi
[ -n "$py" ] || { echo "study: no python3 with matplotlib and msgpack, and apt-get could not install them" >&2; exit 1; }
"$py" analysis/plots.py "$log" --mtpbench build/mtpbench --costs "$bench"
echo "plots: $out_dir/*.png"
echo "study: done in $(( $(date +%s) - start )) s" >&2
