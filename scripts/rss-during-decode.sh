#!/usr/bin/env bash
# rss-during-decode.sh - resident memory of `mtpbench generate` while it decodes:
# the peak of VmRSS, RssAnon (the engine's own allocations: caches, workspace;
# a float32 copy of any weight would show here) and RssFile (checkpoint pages
# read through the mmap), sampled every 0.2 s, against the checkpoint's bytes.
#
#   scripts/rss-during-decode.sh MODEL_DIR [THREADS] [NEW_TOKENS]
set -euo pipefail
model=${1:?usage: rss-during-decode.sh MODEL_DIR [THREADS] [NEW_TOKENS]}
threads=${2:-2}
n=${3:-32}
bin=${MTPBENCH:-$(dirname "$0")/../build/mtpbench}
"$bin" generate --model "$model" --prompt-ids 11,12,13,14,15,16,17,18 -n "$n" \
    --threads "$threads" >/dev/null 2>"${TMPDIR:-/tmp}/rss-decode.$$.err" &
pid=$!
peak_rss=0 peak_anon=0 peak_file=0
while kill -0 "$pid" 2>/dev/null; do
    if [ -r "/proc/$pid/status" ]; then
        read -r rss anon file < <(awk '/^VmRSS/{r=$2} /^RssAnon/{a=$2} /^RssFile/{f=$2}
                                       END{print r+0, a+0, f+0}' "/proc/$pid/status" 2>/dev/null || echo "0 0 0")
        [ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
        [ "$anon" -gt "$peak_anon" ] && peak_anon=$anon
        [ "$file" -gt "$peak_file" ] && peak_file=$file
    fi
    sleep 0.2
done
if ! wait "$pid"; then
    cat "${TMPDIR:-/tmp}/rss-decode.$$.err" >&2
    exit 1
fi
tail -2 "${TMPDIR:-/tmp}/rss-decode.$$.err" | sed 's/^/  generate: /'
rm -f "${TMPDIR:-/tmp}/rss-decode.$$.err"
weights=$(du -k --apparent-size -c "$model"/*.safetensors | tail -1 | cut -f1)
printf '  peak VmRSS %.2f GiB = RssFile %.2f GiB (checkpoint %.2f GiB) + RssAnon %.3f GiB\n' \
    "$(echo "$peak_rss / 1048576" | bc -l)" "$(echo "$peak_file / 1048576" | bc -l)" \
    "$(echo "$weights / 1048576" | bc -l)" "$(echo "$peak_anon / 1048576" | bc -l)"
