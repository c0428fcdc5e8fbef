#!/usr/bin/env bash
# real-dims-bench.sh - the memory-bound measurements of issue 24 on a real-dimension
# checkpoint (a synthetic one from `mtpbench synth`, docs/synthetic.md, or a downloaded
# release): inspect (bytes per token, bandwidth bound), resident memory while decoding,
# and bench at 1 and 2 threads (prefill at 512 tokens, decode, verify(n)/decode for
# n = 1..16 with experts touched, draft cost per module with the full head and with draft
# vocabularies, roofline fraction). Every step is preceded and followed by `uptime`:
# the machine may be shared, and the load belongs beside every figure.
#
#   scripts/real-dims-bench.sh MODEL_DIR OUT_PREFIX [REPEATS]
#
# Writes OUT_PREFIX.txt (all output) and OUT_PREFIX-t1.json, OUT_PREFIX-t2.json (cost
# files for `mtpbench report --table cost-model --costs`).
set -euo pipefail
model=${1:?usage: real-dims-bench.sh MODEL_DIR OUT_PREFIX [REPEATS]}
out=${2:?usage: real-dims-bench.sh MODEL_DIR OUT_PREFIX [REPEATS]}
repeats=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
bin=${MTPBENCH:-$here/../build/mtpbench}
{
    echo "# $model on $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs," \
         "$(free -g | awk '/^Mem:/{print $2}') GiB"
    echo "## inspect"; uptime
    "$bin" inspect "$model" | sed -n '/^decode reads per token/,$p'
    echo "## resident memory while decoding (2 threads, 24 new tokens)"; uptime
    MTPBENCH=$bin "$here/rss-during-decode.sh" "$model" 2 24
    for t in 1 2; do
        echo "## bench, $t thread(s), context 512, $repeats rounds"; uptime
        "$bin" bench --model "$model" --threads "$t" --context 512 --repeats "$repeats" \
            --json "$out-t$t.json"
        uptime
    done
} 2>&1 | tee "$out.txt"
