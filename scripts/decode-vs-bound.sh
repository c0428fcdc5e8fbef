#!/usr/bin/env bash
# decode-vs-bound.sh - decode speed against the bandwidth bound on a real-dimension checkpoint
# (RESULTS.md "At real dimensions"), quick enough to repeat: in the same minutes, `inspect`'s
# bytes per token and triad bound, a plain streaming read of the checkpoint's own mapped pages
# (scripts/mmap-read-bandwidth.c, built here) at 1 and 2 threads, and REPEATS runs of
# `generate -n 32` at 1 and 2 threads, each with the load average and the CPUs the process
# actually got (CPU time / wall time: on a shared machine 2 threads may get one CPU between them,
# and then no thread split can help).
#
#   scripts/decode-vs-bound.sh MODEL_DIR [REPEATS]
#
# MTPBENCH overrides the binary (default build/mtpbench). Run it once before to warm the page cache.
set -euo pipefail
model=${1:?usage: decode-vs-bound.sh MODEL_DIR [REPEATS]}
repeats=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
bin=${MTPBENCH:-$here/../build/mtpbench}
reader=$(mktemp)
trap 'rm -f "$reader" "$reader.err"' EXIT
cc -O2 -mavx2 -pthread "$here/mmap-read-bandwidth.c" -o "$reader"
echo "# $model, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" inspect "$model" | sed -n '/^decode reads per token/,$p'
for t in 1 2; do "$reader" "$model" "$t" 3; done
TIMEFORMAT='%R %U %S'
for _ in $(seq "$repeats"); do
    for t in 1 2; do
        # bash's time goes to stderr after the command's own output
        out=$({ time "$bin" generate --model "$model" --prompt-ids 1,2,3,4,5,6,7,8 -n 32 \
            --threads "$t" >/dev/null 2>"$reader.err"; } 2>&1; grep -o 'decode [0-9.]* tokens/s' "$reader.err")
        read -r wall user sys rate <<<"$(echo "$out" | tr '\n' ' ' | sed 's/decode //; s/ tokens\/s//')"
        cpus=$(awk -v w="$wall" -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", (u + s) / w }')
        echo "threads $t: decode $rate tokens/s, $cpus CPUs used, load $(cut -d' ' -f1 /proc/loadavg)"
    done
done
echo "# end $(date -u '+%H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for t in 1 2; do "$reader" "$model" "$t" 3; done
